"""The Weep-compatible CLI API and the challenge login.

Paths, field names, types and status codes follow what the Weep client reads,
so Weep works against iamportal unchanged:

- credential and role-list errors are `{"code": "<string>", "message", ...,
  "request_id"}`; Weep switches on `code` ("900" no match, "901" several,
  "902" credential error, "903" not eligible, "904" malformed request,
  "invalid_jwt" sign in again);
- the v2 endpoints answer in an envelope `{"status", "status_code", "data"}`;
  their errors carry both `errors` (what Weep prints for them) and `code`;
- the challenge poller always answers 200 with a JSON `status`.
"""

from __future__ import annotations

import json
import re
import uuid
from functools import cached_property
from typing import Any, ClassVar, cast

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.request import RawPostDataException
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.entries import entry_url
from accounts.models import AwsAccount, CloudResource, IamRole, InventoryEntry, ManagedPolicy
from accounts.selectors import SEARCH_MAX_LENGTH, roles_search
from brokering import cli_auth, selectors, services
from brokering.models import CliChallenge, CredentialIssuance
from iamportal.auth import ApiTokenAuthentication
from iamportal.net import client_ip
from iamportal.parsers import json_load_bounded
from iamportal.serializers import StrictBooleanField, StrictCharField
from requests_app.policy.limits import ARN_MAX_LENGTH, PARTITION_PATTERN

ROLE_MAX_LENGTH = 2048
BODY_MAX_BYTES = 64 * 1024
TYPEAHEAD_DEFAULT_LIMIT = 20
TYPEAHEAD_MAX_LIMIT = 100
AMBIGUOUS_LIST_MAX = 20
_FULL_ROLE_ARN = re.compile(rf"arn:{PARTITION_PATTERN}:iam::\d{{12}}:role/.+", re.IGNORECASE)

NO_MATCH_MESSAGE = "No matching roles"
NOT_ELIGIBLE_MESSAGE = "Requested role not found in eligible roles"


def _client(request: Request | HttpRequest) -> tuple[str | None, str]:
    return client_ip(request), request.META.get("HTTP_USER_AGENT", "")[:512]


def _detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail:
        return _detail_text(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return f"{key}: {_detail_text(value)}"
    return str(detail)


def _failure(exc: Exception) -> tuple[int, str, str] | None:
    """(status, Weep code, message) for a failure before or outside a view's own
    logic; None for an unexpected exception (a real 500)."""
    if isinstance(exc, cli_auth.InvalidCliToken):
        return (
            403,
            "invalid_jwt",
            "JWT is invalid or has expired. Weep starts a new challenge login on its next run.",
        )
    if isinstance(exc, cli_auth.InvalidCertificateIdentity):
        return 403, "403", _detail_text(exc.detail)
    if isinstance(exc, exceptions.NotAuthenticated):
        # Weep discards its stored login on "invalid_jwt" and signs in again next time.
        return 401, "invalid_jwt", "Authentication required: sign in to iamportal again."
    if isinstance(exc, exceptions.AuthenticationFailed):
        return 401, "401", _detail_text(exc.detail)
    if isinstance(exc, (exceptions.ParseError, exceptions.UnsupportedMediaType)):
        return 400, "904", _detail_text(exc.detail)
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, str(exc.status_code), _detail_text(exc.detail)
    if isinstance(exc, Http404):
        return 404, "404", "Not found."
    if isinstance(exc, PermissionDenied):
        return 403, "403", "You may not do this."
    return None


# --- serializers shared by the views --------------------------------------------------------


class WeepErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text='"900" … "904", "invalid_jwt", or an HTTP status.')
    message = serializers.CharField()
    request_id = serializers.CharField()


class WeepCredentialErrorSerializer(WeepErrorSerializer):
    requested_role = serializers.CharField()


class WebErrorSerializer(serializers.Serializer):
    status = serializers.CharField(help_text='Always "error".')
    status_code = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    # Declared fields leave the class body, so these do not hide Serializer.errors/.data.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    request_id = serializers.CharField()


# --- the base of every authenticated Weep endpoint ----------------------------------------------

# Paths answered in Weep's own error shapes, before any view runs (e.g. for a NUL
# character in the request): the v1 calls in {"code", "message", ...}, the rest in
# the v2 envelope.
_WEEP_V1_PATHS = ("/api/v1/get_credentials", "/api/v1/get_roles")
_WEEP_WEB_PATHS = (
    "/api/v2/get_roles",
    "/api/v2/get_resource_url",
    "/api/v1/policies/typeahead",
    "/noauth/v1/challenge_",
)


def weep_malformed(path: str, message: str) -> JsonResponse | None:
    """The 400 ("904", malformed) a Weep path answers with, in that path's shape;
    None for any other path."""
    request_id = str(uuid.uuid4())
    if path in _WEEP_V1_PATHS:
        body: dict[str, Any] = {"code": "904", "message": message, "request_id": request_id}
        if path == "/api/v1/get_credentials":
            body["requested_role"] = ""
        return JsonResponse(body, status=400)
    if path.startswith(_WEEP_WEB_PATHS):
        return JsonResponse(
            {
                "status": "error",
                "status_code": 400,
                "code": "904",
                "message": message,
                "errors": [message],
                "request_id": request_id,
            },
            status=400,
        )
    return None


class _WeepApi(APIView):
    authentication_classes = cli_auth.CLI_AUTHENTICATION
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    # "weep": {"code", "message", "request_id"}; "web": the v2 envelope.
    error_style: ClassVar[str] = "weep"

    @cached_property
    def request_id(self) -> str:
        return str(uuid.uuid4())

    def error(self, *, status: int, code: str, message: str) -> Response:
        if self.error_style == "web":
            body: dict[str, Any] = {
                "status": "error",
                "status_code": status,
                "code": code,
                "message": message,
                "errors": [message],
                "request_id": self.request_id,
            }
        else:
            body = {"code": code, "message": message, "request_id": self.request_id}
        return Response(body, status=status)

    def handle_exception(self, exc: Exception) -> Response:
        failure = _failure(exc)
        if failure is None:
            return super().handle_exception(exc)
        status, code, message = failure
        response = self.error(status=status, code=code, message=message)
        if status == 401:
            response["WWW-Authenticate"] = ApiTokenAuthentication().authenticate_header(
                self.request
            )
        return response


# --- credentials ---------------------------------------------------------------------------------


class CliCredentialIssueApi(_WeepApi):
    """POST /api/v1/get_credentials: what `weep credential_process`, `export`,
    `file` and `serve` call."""

    @extend_schema_serializer(component_name="CliCredentialRequest")
    class InputSerializer(serializers.Serializer):
        requested_role = StrictCharField(
            max_length=ROLE_MAX_LENGTH,
            help_text="A role ARN, or a unique part of one; an exact ARN wins.",
        )
        no_ip_restrictions = StrictBooleanField(
            required=False,
            default=False,
            help_text="Ask for credentials usable outside the allowed networks "
            "(honoured only when the server allows it).",
        )
        metadata = serializers.DictField(
            required=False, allow_null=True, help_text="Client details; accepted and ignored."
        )

    @extend_schema_serializer(component_name="CliCredentials")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="CliCredentialsBody")
        class CredentialsSerializer(serializers.Serializer):
            AccessKeyId = serializers.CharField()
            SecretAccessKey = serializers.CharField()
            SessionToken = serializers.CharField()
            Expiration = serializers.IntegerField(help_text="Unix time, in seconds.")
            RoleArn = serializers.CharField()

        Credentials = CredentialsSerializer()

    requested_role = ""

    def error(self, *, status: int, code: str, message: str) -> Response:
        body = {
            "code": code,
            "message": message,
            "requested_role": self.requested_role,
            "request_id": self.request_id,
        }
        return Response(body, status=status)

    def refuse(self, request: Request, *, status: int, code: str, message: str) -> Response:
        source_ip, agent = _client(request)
        services.issuance_denied(
            user=cast(User, request.user),
            requested=self.requested_role,
            kind=CredentialIssuance.Kind.CLI,
            source_ip=source_ip,
            user_agent=agent,
            reason=f"{code}: {message}",
            request_id=self.request_id,
        )
        return self.error(status=status, code=code, message=message)

    def _payload(self, request: Request) -> tuple[Any, str]:
        """The decoded body, or why it could not be decoded. Any content type is
        read as JSON, as ConsoleMe did."""
        try:
            raw = request.body
        except RequestDataTooBig:
            return None, "The request body is too large."
        except RawPostDataException:  # already consumed as a form upload
            return None, "The request body must be JSON."
        if len(raw) > BODY_MAX_BYTES:
            return None, "The request body is too large."
        try:
            return json_load_bounded(raw), ""
        except ValueError as exc:
            return None, f"Invalid JSON sent to the server: {exc}"

    @extend_schema(
        operation_id="weep_get_credentials",
        summary="Credentials for one of my roles (Weep)",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(WeepCredentialErrorSerializer, description='"904": malformed.'),
            401: OpenApiResponse(
                WeepCredentialErrorSerializer, description='"invalid_jwt": not signed in.'
            ),
            403: OpenApiResponse(
                WeepCredentialErrorSerializer,
                description='"900" no matching role, "901" several match, "902" AWS refused, '
                '"903" not one of your roles, "invalid_jwt" expired login.',
            ),
            429: OpenApiResponse(
                WeepCredentialErrorSerializer, description="Too many requests; see Retry-After."
            ),
        },
        tags=["weep"],
    )
    def post(self, request: Request) -> Response:
        payload, problem = self._payload(request)
        if isinstance(payload, dict) and isinstance(payload.get("requested_role"), str):
            self.requested_role = payload["requested_role"][:ROLE_MAX_LENGTH]
        if problem:
            return self.refuse(request, status=400, code="904", message=problem)
        form = self.InputSerializer(data=payload)
        if not isinstance(payload, dict) or not form.is_valid():
            errors = form.errors if isinstance(payload, dict) else {"body": ["must be an object"]}
            return self.refuse(
                request,
                status=400,
                code="904",
                message=f"Invalid JSON sent to the server: {json.dumps(errors, sort_keys=True)}",
            )
        requested = form.validated_data["requested_role"]
        user = cast(User, request.user)
        try:
            match = selectors.role_resolve(user, requested)
        except selectors.RoleAmbiguous as exc:
            arns = [role.arn for role in exc.matches]
            listed = ", ".join(arns[:AMBIGUOUS_LIST_MAX])
            more = len(arns) - AMBIGUOUS_LIST_MAX
            if more > 0:
                listed += f" and {more} more"
            return self.refuse(
                request,
                status=403,
                code="901",
                message=f"More than one matching role: {listed}. Name one exactly.",
            )
        except selectors.RoleNotFound:
            # The same answer whether the role exists or not: only the shape of the
            # request decides between "not one of yours" and "nothing matches".
            # Weep prints the message: it names the way forward.
            ask = request.build_absolute_uri(selectors.access_request_path(requested))
            if _FULL_ROLE_ARN.fullmatch(requested.strip()):
                return self.refuse(
                    request,
                    status=403,
                    code="903",
                    message=f"{NOT_ELIGIBLE_MESSAGE}. Request access: {ask}",
                )
            return self.refuse(
                request,
                status=403,
                code="900",
                message=f"{NO_MATCH_MESSAGE}. Request access: {ask}",
            )
        try:
            role = selectors.usable_role_for_user(user=user, role_id=match.id)
        except Http404:  # the access index moved between the two reads
            return self.refuse(request, status=403, code="900", message=NO_MATCH_MESSAGE)
        source_ip, agent = _client(request)
        try:
            issued = services.credentials_issue(
                user=user,
                role=role,
                kind=CredentialIssuance.Kind.CLI,
                source_ip=source_ip,
                user_agent=agent,
                no_ip_restrictions=form.validated_data["no_ip_restrictions"],
            )
        except services.RateLimited as exc:
            response = self.error(status=429, code="rate_limited", message=str(exc))
            response["Retry-After"] = str(exc.retry_after)
            return response
        except services.CredentialError as exc:
            return self.error(status=403, code="902", message=f"Unable to get credentials: {exc}")
        data = {
            "Credentials": {
                "AccessKeyId": issued.access_key_id,
                "SecretAccessKey": issued.secret_access_key,
                "SessionToken": issued.session_token,
                "Expiration": issued.expiration_epoch,
                "RoleArn": issued.role_arn,
            }
        }
        # Built in the OutputSerializer's shape, order and types (the serializer
        # describes the answer in the schema); running it on every request would
        # only copy the same values.
        response = Response(data)
        response["Cache-Control"] = "no-store"
        return response


# --- role lists ---------------------------------------------------------------------------------


def _all_roles(request: Request) -> bool:
    """`all=true` adds the command-line-only roles; without it, console roles only."""
    return request.query_params.get("all", "").strip().lower() == "true"


_ALL_PARAMETER = OpenApiParameter(
    "all",
    OpenApiTypes.STR,
    required=False,
    description='"true" (any case) adds the roles for command-line use only; anything else '
    "lists the console roles.",
)


class CliRoleListApi(_WeepApi):
    """GET /api/v1/get_roles: what `weep list` prints."""

    @extend_schema(
        operation_id="weep_get_roles",
        summary="The ARNs of my roles (Weep)",
        parameters=[_ALL_PARAMETER],
        responses={
            200: {"type": "array", "items": {"type": "string"}},
            400: OpenApiResponse(WeepErrorSerializer, description='"904": malformed request.'),
            401: WeepErrorSerializer,
            403: WeepErrorSerializer,
        },
        tags=["weep"],
    )
    def get(self, request: Request) -> Response:
        roles = selectors.roles_for_user(request.user, include_cli_only=_all_roles(request))
        return Response(sorted(role.arn for role in roles))


class CliRoleDetailListApi(_WeepApi):
    """GET /api/v2/get_roles: the roles with their account, for Weep's role picker."""

    error_style = "web"

    @extend_schema_serializer(component_name="CliRoleDetails")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="CliRoleDetailsData")
        class DataSerializer(serializers.Serializer):
            @extend_schema_serializer(component_name="CliRoleDetail")
            class RoleSerializer(serializers.Serializer):
                @extend_schema_serializer(component_name="CliRoleApps")
                class AppsSerializer(serializers.Serializer):
                    app_details = serializers.ListField(child=serializers.DictField())

                arn = serializers.CharField()
                account_id = serializers.CharField()
                account_friendly_name = serializers.CharField()
                role_name = serializers.CharField()
                apps = AppsSerializer()

            roles = RoleSerializer(many=True)

        status = serializers.CharField(help_text='Always "success".')
        status_code = serializers.IntegerField()
        data = DataSerializer()  # type: ignore[assignment]

    @extend_schema(
        operation_id="weep_get_roles_v2",
        summary="My roles with their accounts (Weep)",
        parameters=[_ALL_PARAMETER],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(WebErrorSerializer, description='"904": malformed request.'),
            401: WebErrorSerializer,
            403: WebErrorSerializer,
        },
        tags=["weep"],
    )
    def get(self, request: Request) -> Response:
        roles = selectors.roles_for_user(request.user, include_cli_only=_all_roles(request))
        data = {
            "status": "success",
            "status_code": 200,
            "data": {
                "roles": [
                    {
                        "arn": role.arn,
                        "account_id": role.account_id,
                        "account_friendly_name": role.account_name,
                        "role_name": role.name,
                        "apps": {"app_details": []},
                    }
                    for role in sorted(roles, key=lambda role: role.arn)
                ]
            },
        }
        # In the OutputSerializer's shape, order and types already: hundreds of roles
        # through it would cost more than the rest of the request.
        return Response(data)


# --- links to inventory pages ---------------------------------------------------------------------


class _UnknownResource(Exception):
    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def _resource_path(arn: str) -> str:
    """The iamportal page for an ARN in the inventory: a role, a managed policy,
    an S3 bucket, SQS queue or SNS topic."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[1] or not parts[2] or not parts[5]:
        raise _UnknownResource(f"{arn[:200]!r} is not an ARN.", status=400)
    partition, service, _region, _account, resource = parts[1:]
    if service == "iam" and resource.startswith("role/"):
        role = IamRole.objects.select_related("account").filter(arn=arn).first()
        if role is None:
            role = IamRole.objects.select_related("account").filter(arn__iexact=arn).first()
        if role is None:
            raise _UnknownResource("Resource not found in the inventory.", status=404)
        return reverse(
            "role_detail",
            kwargs={"account_id": role.account.account_id, "role_name": role.name},
        )
    if service == "iam" and resource.startswith("policy/"):
        policy = ManagedPolicy.objects.filter(arn=arn).only("pk").first()
        if policy is None:
            raise _UnknownResource("Resource not found in the inventory.", status=404)
        return reverse("policy_detail", kwargs={"pk": policy.pk})
    if service in ("s3", "sqs", "sns"):
        if service == "s3":  # an object ARN opens its bucket
            arn = f"arn:{partition}:s3:::{resource.split('/', 1)[0]}"
        found = CloudResource.objects.filter(arn=arn, type=service).only("pk").first()
        if found is None:
            raise _UnknownResource("Resource not found in the inventory.", status=404)
        return reverse("resource_detail", kwargs={"pk": found.pk})
    # IAM users, databases and any other item of the Policies page.
    entry = InventoryEntry.objects.select_related("account").filter(arn=arn).first()
    if entry is not None:
        return entry_url(entry, entry.account.account_id)
    raise _UnknownResource("This resource type is currently not supported.", status=404)


class CliResourceUrlGetApi(_WeepApi):
    """GET /api/v2/get_resource_url: what `weep open` and `weep link` call."""

    error_style = "web"

    @extend_schema_serializer(component_name="CliResourceUrl")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="CliResourceUrlData")
        class DataSerializer(serializers.Serializer):
            url = serializers.CharField(help_text="A path on this server, such as /roles/…")

        status = serializers.CharField(help_text='Always "success".')
        status_code = serializers.IntegerField()
        data = DataSerializer()  # type: ignore[assignment]

    @extend_schema(
        operation_id="weep_get_resource_url",
        summary="The iamportal page of an ARN (Weep)",
        parameters=[OpenApiParameter("arn", OpenApiTypes.STR, required=True)],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(WebErrorSerializer, description="Missing or malformed ARN."),
            401: WebErrorSerializer,
            404: OpenApiResponse(
                WebErrorSerializer, description="Not in the inventory, or no page for its type."
            ),
        },
        tags=["weep"],
    )
    def get(self, request: Request) -> Response:
        arn = request.query_params.get("arn", "").strip()
        if not arn:
            return self.error(status=400, code="400", message="arn is a required parameter.")
        if len(arn) > ARN_MAX_LENGTH:
            return self.error(
                status=400, code="400", message=f"arn is longer than {ARN_MAX_LENGTH} characters."
            )
        try:
            url = _resource_path(arn)
        except _UnknownResource as exc:
            return self.error(status=exc.status, code=str(exc.status), message=str(exc))
        data = {"status": "success", "status_code": 200, "data": {"url": url}}
        return Response(self.OutputSerializer(data).data)


# --- typeahead ------------------------------------------------------------------------------------


class CliTypeaheadSearchApi(_WeepApi):
    """GET /api/v1/policies/typeahead: accounts and role ARNs, as Weep's pickers search them."""

    error_style = "web"
    resources = ("account", "iam_arn")

    @extend_schema_serializer(component_name="CliTypeaheadItem")
    class OutputSerializer(serializers.Serializer):
        title = serializers.CharField(
            help_text='"Name (123456789012)" for accounts, the ARN for roles.'
        )

    @extend_schema(
        operation_id="weep_typeahead",
        summary="Search accounts or role ARNs (Weep)",
        parameters=[
            OpenApiParameter("resource", OpenApiTypes.STR, enum=list(resources), required=True),
            OpenApiParameter("search", OpenApiTypes.STR, required=False),
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                required=False,
                description=f"Default {TYPEAHEAD_DEFAULT_LIMIT}; larger values are "
                f"treated as {TYPEAHEAD_MAX_LIMIT}.",
            ),
        ],
        responses={
            200: OutputSerializer(many=True),
            400: WebErrorSerializer,
            401: WebErrorSerializer,
        },
        tags=["weep"],
    )
    def get(self, request: Request) -> Response:
        resource = request.query_params.get("resource", "")
        if resource not in self.resources:
            return self.error(
                status=400,
                code="400",
                message=f"resource must be one of {', '.join(self.resources)}, "
                f"not {resource[:50]!r}.",
            )
        search = request.query_params.get("search", "").strip()
        if len(search) > SEARCH_MAX_LENGTH:
            return self.error(
                status=400,
                code="400",
                message=f"search is longer than {SEARCH_MAX_LENGTH} characters.",
            )
        # Absent means the default; present must be a number (an empty one is a caller's bug).
        raw_limit = request.query_params.get("limit", str(TYPEAHEAD_DEFAULT_LIMIT)).strip()
        if (
            not (raw_limit.isascii() and raw_limit.isdigit())
            or len(raw_limit) > 9
            or int(raw_limit) < 1
        ):
            return self.error(status=400, code="400", message="limit must be a positive number.")
        # Weep asks for 1000 or 5000 at once; a picker never needs that many.
        limit = min(int(raw_limit), TYPEAHEAD_MAX_LIMIT)
        if resource == "account":
            titles = [
                f"{account.name} ({account.account_id})"
                for account in AwsAccount.objects.only("name", "account_id").order_by(
                    "name", "account_id"
                )
            ]
            wanted = search.lower()
            found = [title for title in titles if wanted in title.lower()][:limit]
        else:
            found = list(
                roles_search(query=search, account_id=None)
                .order_by("arn")
                .values_list("arn", flat=True)[:limit]
            )
        return Response(self.OutputSerializer([{"title": t} for t in found], many=True).data)


# --- the challenge login --------------------------------------------------------------------------


class _PublicWeepApi(_WeepApi):
    """The two endpoints the CLI calls before it has any credentials."""

    authentication_classes = []
    permission_classes = [AllowAny]
    error_style = "web"


class CliChallengeCreateApi(_PublicWeepApi):
    """GET /noauth/v1/challenge_generator/<user>: the first step of `weep`'s challenge login."""

    @extend_schema_serializer(component_name="CliChallenge")
    class OutputSerializer(serializers.Serializer):
        challenge_url = serializers.URLField(help_text="Open in a browser signed in to iamportal.")
        polling_url = serializers.URLField(help_text="Poll until the status is success.")

    @extend_schema(
        operation_id="weep_challenge_generator",
        summary="Start a CLI sign-in (Weep challenge login)",
        auth=[],
        responses={200: OutputSerializer, 400: WebErrorSerializer, 429: WebErrorSerializer},
        tags=["weep"],
    )
    def get(self, request: Request, user: str) -> Response:
        source_ip, _ = _client(request)
        try:
            challenge = cli_auth.cli_challenge_create(requested_user=user, requesting_ip=source_ip)
        except cli_auth.ChallengeRefused as exc:
            refusal = self.error(status=exc.status, code=str(exc.status), message=str(exc))
            if exc.retry_after is not None:
                refusal["Retry-After"] = str(exc.retry_after)
            return refusal
        data = {
            "challenge_url": request.build_absolute_uri(
                reverse("cli_challenge_validate", kwargs={"token": challenge.token})
            ),
            "polling_url": request.build_absolute_uri(
                reverse("cli_challenge_poll", kwargs={"token": challenge.token})
            ),
        }
        response = Response(self.OutputSerializer(data).data)
        response["Cache-Control"] = "no-store"
        return response


class CliChallengePollApi(_PublicWeepApi):
    """GET /noauth/v1/challenge_poller/<token>: always 200, the state in `status`."""

    @extend_schema_serializer(component_name="CliChallengePoll")
    class OutputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=["pending", "expired", "unauthorized", "unknown", "success"]
        )
        cookie_name = serializers.CharField(required=False, help_text="Only on success.")
        encoded_jwt = serializers.CharField(required=False, help_text="Only on success.")
        expiration = serializers.IntegerField(
            required=False, help_text="Unix time, in seconds; only on success."
        )
        user = serializers.CharField(required=False, help_text="Only on success.")
        secure = serializers.BooleanField(
            required=False, help_text="Send the cookie over HTTPS only."
        )
        http_only = serializers.BooleanField(required=False)

    @extend_schema(
        operation_id="weep_challenge_poller",
        summary="Collect the CLI token once the sign-in is approved",
        auth=[],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(WebErrorSerializer, description='"904": malformed request.'),
        },
        tags=["weep"],
    )
    def get(self, request: Request, token: str) -> Response:
        source_ip, _ = _client(request)
        poll = cli_auth.cli_challenge_claim(token=token, polling_ip=source_ip)
        data: dict[str, Any] = {"status": poll.status}
        if poll.token is not None and poll.user is not None:
            data.update(
                {
                    "cookie_name": settings.IAMPORTAL_CLI_COOKIE_NAME,
                    "encoded_jwt": poll.token.encoded,
                    "expiration": poll.token.expiration_epoch,
                    "user": poll.user.email or poll.user.get_username(),
                    "secure": request.is_secure(),
                    "http_only": True,
                }
            )
        response = Response(self.OutputSerializer(data).data)
        response["Cache-Control"] = "no-store"
        return response


_PAGE_STATUS = {"unknown": 404, "expired": 410}


@login_required
@require_http_methods(["GET", "POST"])
def cli_challenge_validate(request: HttpRequest, token: str) -> HttpResponse:
    """The page a CLI sign-in opens: who asks, from where, and an Approve button."""
    challenge = cli_auth.cli_challenge_for_token(token)
    user = cast(User, request.user)
    if challenge is not None and not challenge.is_expired:
        is_open = challenge.status in (CliChallenge.Status.PENDING, CliChallenge.Status.APPROVED)
        if is_open and not cli_auth.challenge_is_for(challenge, user):
            # Someone else's sign-in: it can never be approved from here, so close it.
            cli_auth.cli_challenge_refuse(challenge=challenge)
        elif request.method == "POST":
            if request.POST.get("action") == "refuse":
                cli_auth.cli_challenge_refuse(challenge=challenge)
            else:
                cli_auth.cli_challenge_approve(challenge=challenge, user=user)
            return redirect("cli_challenge_validate", token=token)
    state = _page_state(challenge, user)
    source_ip, _ = _client(request)
    context = {
        "challenge": challenge,
        "state": state,
        "other_address": challenge is not None
        and not cli_auth.same_address(source_ip or "", challenge.requesting_ip),
        "browser_address": source_ip,
        "token_hours": settings.IAMPORTAL_CLI_TOKEN_HOURS,
    }
    return render(request, "brokering/challenge.html", context, status=_PAGE_STATUS.get(state, 200))


def _page_state(challenge: CliChallenge | None, user: User) -> str:
    if challenge is None:
        return "unknown"
    if challenge.status == CliChallenge.Status.USED:
        return "used"
    if challenge.status == CliChallenge.Status.UNAUTHORIZED:
        return "mismatch" if not cli_auth.challenge_is_for(challenge, user) else "refused"
    if challenge.is_expired:
        return "expired"
    if challenge.status == CliChallenge.Status.APPROVED:
        return "approved"
    return "pending"
