"""The REST API for scripts: my roles, credentials for a role, a console URL.

Token or session authentication; a caller gets exactly what its user may use.
Errors are JSON `{"detail": ...}` with a 4xx status (5xx only when AWS fails).
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import IamRole
from brokering import selectors, services
from brokering.models import CredentialIssuance
from iamportal.net import client_ip

ROLE_MAX_LENGTH = 2048


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


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


def _error(message: str, code: int, **extra: Any) -> Response:
    return Response({"detail": message, **extra}, status=code)


def _client(request: Request) -> tuple[str | None, str]:
    return client_ip(request), request.META.get("HTTP_USER_AGENT", "")


class RoleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    arn = serializers.CharField()
    name = serializers.CharField()
    account_id = serializers.CharField()
    account_name = serializers.CharField()
    cli_only = serializers.BooleanField(help_text="Credentials only; no console session.")


class RoleListApi(APIView):
    @extend_schema(
        summary="The roles I may use",
        responses={200: RoleSerializer(many=True), 400: BAD_REQUEST, 401: ErrorSerializer},
        tags=["roles"],
    )
    def get(self, request: Request) -> Response:
        roles = selectors.roles_for_user(request.user)
        return Response(RoleSerializer(roles, many=True).data)


class _RoleRequestSerializer(serializers.Serializer):
    role = serializers.CharField(
        max_length=ROLE_MAX_LENGTH,
        help_text="A role ARN, or a unique part of one (as Weep resolves it).",
    )


def _resolve(
    request: Request, requested: str, *, kind: str, console: bool
) -> tuple[IamRole | None, Response | None]:
    """The eligible role `requested` names, or the error response to send."""
    source_ip, agent = _client(request)
    user = cast(User, request.user)  # the views require authentication

    def refuse(reason: str, response: Response) -> tuple[None, Response]:
        services.issuance_denied(
            user=user,
            requested=requested,
            kind=kind,
            source_ip=source_ip,
            user_agent=agent,
            reason=reason,
        )
        return None, response

    not_found = "None of the roles you may use matches."
    try:
        match = selectors.role_resolve(user, requested)
    except selectors.RoleAmbiguous as exc:
        return refuse(
            "ambiguous",
            _error(
                "Several of your roles match; name one exactly.",
                status.HTTP_409_CONFLICT,
                matches=[role.arn for role in exc.matches],
            ),
        )
    except selectors.RoleNotFound:
        return refuse("no eligible role matches", _error(not_found, status.HTTP_404_NOT_FOUND))
    if console and match.cli_only:
        return refuse(
            "CLI-only role",
            _error(
                f"{match.arn} is for command-line use only; it has no console sign-in.",
                status.HTTP_400_BAD_REQUEST,
            ),
        )
    role = selectors.role_for_user(user, match.id)
    if role is None:  # the index changed between the two reads
        return None, _error(not_found, status.HTTP_404_NOT_FOUND)
    return role, None


def _issue(request: Request, role: IamRole, kind: str) -> services.IssuedCredentials | Response:
    source_ip, agent = _client(request)
    try:
        return services.credentials_issue(
            user=cast(User, request.user),
            role=role,
            kind=kind,
            source_ip=source_ip,
            user_agent=agent,
        )
    except services.RateLimited as exc:
        response = _error(str(exc), status.HTTP_429_TOO_MANY_REQUESTS)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except services.CredentialError as exc:
        return _error(f"AWS did not issue credentials: {exc}", status.HTTP_502_BAD_GATEWAY)


class CredentialIssueApi(APIView):
    class InputSerializer(_RoleRequestSerializer):
        class Meta:
            ref_name = "CredentialIssueInput"

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Credentials"

        access_key_id = serializers.CharField()
        secret_access_key = serializers.CharField()
        session_token = serializers.CharField()
        expiration = serializers.DateTimeField()
        role_arn = serializers.CharField()

    @extend_schema(
        summary="Short-lived credentials for one of my roles",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: BAD_REQUEST,
            401: ErrorSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No role you may use matches."),
            409: OpenApiResponse(AmbiguousSerializer, description="Several roles match."),
            429: OpenApiResponse(
                ErrorSerializer, description="Too many requests; see Retry-After."
            ),
            502: OpenApiResponse(ErrorSerializer, description="AWS refused the credentials."),
        },
        tags=["roles"],
    )
    def post(self, request: Request) -> Response:
        form = self.InputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        role, error = _resolve(
            request, form.validated_data["role"], kind=CredentialIssuance.Kind.API, console=False
        )
        if error is not None or role is None:
            return error or _error("No role.", status.HTTP_404_NOT_FOUND)
        issued = _issue(request, role, CredentialIssuance.Kind.API)
        if isinstance(issued, Response):
            return issued
        data = {
            "access_key_id": issued.access_key_id,
            "secret_access_key": issued.secret_access_key,
            "session_token": issued.session_token,
            "expiration": issued.expiration,
            "role_arn": issued.role_arn,
        }
        response = Response(self.OutputSerializer(data).data)
        response["Cache-Control"] = "no-store"
        return response


class ConsoleUrlApi(APIView):
    class InputSerializer(_RoleRequestSerializer):
        class Meta:
            ref_name = "ConsoleUrlInput"

        redirect = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=4096,
            help_text="An https://…console.aws.amazon.com/ page to land on.",
        )

    @extend_schema(
        summary="A one-click AWS console sign-in URL for one of my roles",
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "ConsoleUrl", {"url": serializers.URLField(), "role_arn": serializers.CharField()}
            ),
            400: BAD_REQUEST,
            401: ErrorSerializer,
            404: ErrorSerializer,
            409: AmbiguousSerializer,
            429: ErrorSerializer,
            502: ErrorSerializer,
        },
        tags=["roles"],
    )
    def post(self, request: Request) -> Response:
        form = self.InputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            destination = services.console_destination(form.validated_data.get("redirect"))
        except services.BadDestination as exc:
            return _error(str(exc), status.HTTP_400_BAD_REQUEST)
        role, error = _resolve(
            request, form.validated_data["role"], kind=CredentialIssuance.Kind.API, console=True
        )
        if error is not None or role is None:
            return error or _error("No role.", status.HTTP_404_NOT_FOUND)
        issued = _issue(request, role, CredentialIssuance.Kind.API)
        if isinstance(issued, Response):
            return issued
        try:
            url = services.console_url(
                credentials=issued, destination=destination, issuer=request.build_absolute_uri("/")
            )
        except services.CredentialError as exc:
            return _error(str(exc), status.HTTP_502_BAD_GATEWAY)
        response = Response({"url": url, "role_arn": role.arn})
        response["Cache-Control"] = "no-store"
        return response
