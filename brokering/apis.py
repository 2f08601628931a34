"""The REST API for scripts: my roles, credentials for a role, a console URL.

Token or session authentication; a caller gets exactly what its user may use.
Errors are JSON `{"detail": ...}` with a 4xx status (5xx only when AWS fails),
answered by the exception handler (`iamportal/api_errors.py`).
"""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import IamRole
from brokering import selectors, services
from brokering.forms import DB_USER_PATTERN
from brokering.models import CredentialIssuance
from brokering.serializers import (
    BAD_REQUEST,
    ROLE_MAX_LENGTH,
    AmbiguousSerializer,
    ErrorSerializer,
    RoleRefusedSerializer,
    RoleRequestSerializer,
)
from iamportal.net import client_ip


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


class CliOnlyRole(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST


def _resolve(request: Request, requested: str, *, kind: str, console: bool) -> IamRole:
    """The role `requested` names among those the caller may use; each refusal is
    audited, then answered by the exception handler."""
    source_ip, agent = _client(request)
    user = cast(User, request.user)  # the views require authentication

    def deny(reason: str) -> None:
        services.issuance_denied(
            user=user,
            requested=requested,
            kind=kind,
            source_ip=source_ip,
            user_agent=agent,
            reason=reason,
        )

    try:
        match = selectors.role_resolve(user, requested)
    except selectors.RoleAmbiguous:
        deny("ambiguous")
        raise
    except selectors.RoleNotFound:
        deny("no eligible role matches")
        raise
    if console and match.cli_only:
        deny("CLI-only role")
        raise CliOnlyRole(
            {
                "detail": f"{match.arn} is for command-line use only; it has no console sign-in.",
                # Console access to it is asked for with an access request.
                "request_url": request.build_absolute_uri(selectors.access_request_path(match.arn)),
            }
        )
    try:
        return selectors.usable_role_for_user(user=user, role_id=match.id)
    except Http404:  # the index changed between the two reads
        raise selectors.RoleNotFound(requested) from None


def _issue(request: Request, role: IamRole, kind: str) -> services.IssuedCredentials:
    source_ip, agent = _client(request)
    try:
        return services.credentials_issue(
            user=cast(User, request.user),
            role=role,
            kind=kind,
            source_ip=source_ip,
            user_agent=agent,
        )
    except services.CredentialError as exc:
        raise services.CredentialError(f"AWS did not issue credentials: {exc}") from exc


class CredentialIssueApi(APIView):
    class InputSerializer(RoleRequestSerializer):
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
            404: OpenApiResponse(
                RoleRefusedSerializer,
                description="No role you may use matches; `request_url` is where to ask for it.",
            ),
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
        role = _resolve(
            request, form.validated_data["role"], kind=CredentialIssuance.Kind.API, console=False
        )
        issued = _issue(request, role, CredentialIssuance.Kind.API)
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
    class InputSerializer(RoleRequestSerializer):
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
            404: RoleRefusedSerializer,
            409: AmbiguousSerializer,
            429: ErrorSerializer,
            502: ErrorSerializer,
        },
        tags=["roles"],
    )
    def post(self, request: Request) -> Response:
        form = self.InputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        destination = services.console_destination(form.validated_data.get("redirect"))
        role = _resolve(
            request, form.validated_data["role"], kind=CredentialIssuance.Kind.API, console=True
        )
        issued = _issue(request, role, CredentialIssuance.Kind.API)
        url = services.console_url(
            credentials=issued, destination=destination, issuer=request.build_absolute_uri("/")
        )
        response = Response({"url": url, "role_arn": role.arn})
        response["Cache-Control"] = "no-store"
        return response


# --- databases ---------------------------------------------------------------------


class DatabaseAccessSerializer(serializers.Serializer):
    role_id = serializers.IntegerField(source="role.id")
    role_arn = serializers.CharField(source="role.arn")
    db_users = serializers.ListField(
        child=serializers.CharField(), help_text="Database users the role may connect as."
    )
    patterns = serializers.ListField(
        child=serializers.CharField(),
        help_text="Patterns of database users the role may connect as (name one exactly).",
    )


class DatabaseSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="database.pk")
    arn = serializers.CharField(source="database.arn")
    name = serializers.CharField(source="database.name")
    type = serializers.CharField(source="database.type")
    account_id = serializers.CharField(source="database.account.account_id")
    region = serializers.CharField(source="database.region")
    engine = serializers.CharField(source="database.engine")
    endpoint = serializers.CharField(source="database.endpoint")
    port = serializers.IntegerField(source="database.port", allow_null=True)
    iam_auth = serializers.BooleanField(source="database.iam_auth", allow_null=True)
    token_supported = serializers.BooleanField(
        help_text="Whether iamportal makes IAM authentication tokens for it (RDS instances "
        "and Aurora clusters with IAM database authentication; not Redshift)."
    )
    access = DatabaseAccessSerializer(many=True)


class DatabaseListApi(APIView):
    @extend_schema(
        summary="The databases in the accounts where I may use a role",
        responses={200: DatabaseSerializer(many=True), 400: BAD_REQUEST, 401: ErrorSerializer},
        tags=["databases"],
    )
    def get(self, request: Request) -> Response:
        return Response(
            DatabaseSerializer(selectors.databases_for_user(request.user), many=True).data
        )


class DatabaseTokenApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DatabaseTokenInput"

        role = serializers.CharField(
            max_length=ROLE_MAX_LENGTH,
            help_text="A role ARN, or a unique part of one (as Weep resolves it).",
        )
        db_user = serializers.RegexField(
            DB_USER_PATTERN, max_length=63, help_text="The database user to connect as."
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DatabaseToken"

        token = serializers.CharField(help_text="The password: an IAM authentication token.")
        expiration = serializers.DateTimeField()
        role_arn = serializers.CharField()
        host = serializers.CharField()
        port = serializers.IntegerField()
        db_user = serializers.CharField()
        commands = serializers.DictField(
            child=serializers.CharField(), help_text="Ready-to-paste commands, by label."
        )

    @extend_schema(
        summary="A password (IAM authentication token, 15 minutes) for a database",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: BAD_REQUEST,
            401: ErrorSerializer,
            404: OpenApiResponse(
                ErrorSerializer, description="No such database, or no role you may use matches."
            ),
            409: OpenApiResponse(AmbiguousSerializer, description="Several roles match."),
            429: OpenApiResponse(
                ErrorSerializer, description="Too many requests; see Retry-After."
            ),
            502: OpenApiResponse(ErrorSerializer, description="AWS refused the credentials."),
        },
        tags=["databases"],
    )
    def post(self, request: Request, pk: int) -> Response:
        form = self.InputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        database = selectors.database_for_connect(user=request.user, pk=pk)
        kind = CredentialIssuance.Kind.DATABASE
        role = _resolve(request, form.validated_data["role"], kind=kind, console=False)
        db_user = form.validated_data["db_user"]
        source_ip, agent = _client(request)
        user = cast(User, request.user)
        try:
            selectors.database_role_check(role=role, database=database, db_user=db_user)
        except selectors.DatabaseUserRefused as exc:
            services.issuance_denied(
                user=user,
                requested=role.arn,
                kind=kind,
                source_ip=source_ip,
                user_agent=agent,
                reason=exc.message,
                target=services.database_target(database=database, db_user=db_user),
            )
            raise exceptions.ValidationError({"db_user": [exc.message]}) from None
        try:
            password = services.database_password_issue(
                user=user,
                role=role,
                database=database,
                db_user=db_user,
                source_ip=source_ip,
                user_agent=agent,
            )
        except services.CredentialError as exc:
            raise services.CredentialError(f"AWS did not issue credentials: {exc}") from exc
        data = {
            "token": password.token,
            "expiration": password.expiration,
            "role_arn": password.role_arn,
            "host": password.host,
            "port": password.port,
            "db_user": password.db_user,
            "commands": dict(services.database_connect_commands(password)),
        }
        response = Response(self.OutputSerializer(data).data)
        response["Cache-Control"] = "no-store"
        return response
