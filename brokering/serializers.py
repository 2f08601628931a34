"""Serializers shared by the REST API's views of roles and credentials: the
error bodies and the role a call names. Each view's own input and output stay
nested in its APIView."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

ROLE_MAX_LENGTH = 2048


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RoleRefusedSerializer(ErrorSerializer):
    """No role the caller may use matches: where to ask for access to it."""

    request_url = serializers.URLField()


class AmbiguousSerializer(serializers.Serializer):
    detail = serializers.CharField()
    matches = serializers.ListField(child=serializers.CharField())


# A 400 is either `{"detail": ...}` or, when a field of the body is wrong,
# DRF's field name -> messages.
BAD_REQUEST = OpenApiResponse(
    {
        "anyOf": [
            {
                "type": "object",
                "properties": {"detail": {"type": "string"}},
                "required": ["detail"],
            },
            {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "description": "Field name -> what is wrong with it.",
            },
        ]
    },
    description="Bad input.",
)


class RoleRequestSerializer(serializers.Serializer):
    role = serializers.CharField(
        max_length=ROLE_MAX_LENGTH,
        help_text="A role ARN, or a unique part of one (as Weep resolves it).",
    )
