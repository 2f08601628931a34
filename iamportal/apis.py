"""The REST API of the identity noun: who am I."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from iamportal import permissions

_ErrorSerializer = inline_serializer("MeError", {"detail": serializers.CharField()})


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Me"

        username = serializers.CharField()
        email = serializers.EmailField(allow_blank=True)
        groups = serializers.ListField(child=serializers.CharField())
        permission_role = serializers.ChoiceField(choices=["admin", "reviewer", "engineer"])

    @extend_schema(
        responses={
            200: OutputSerializer,
            # e.g. a NUL character anywhere in the request
            400: _ErrorSerializer,
            401: _ErrorSerializer,
        },
        summary="The signed-in user",
    )
    def get(self, request: Request) -> Response:
        user = request.user
        data = {
            "username": user.get_username(),
            "email": getattr(user, "email", ""),
            "groups": sorted(permissions.group_names(user)),
            "permission_role": permissions.permission_role(user),
        }
        return Response(self.OutputSerializer(data).data)
