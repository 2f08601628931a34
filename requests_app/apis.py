"""The REST API of permission requests: generate and lint a policy, submit a
request (or a dry run), list my requests, read one.

Token or session authentication. The same services as the wizard decide what
is acceptable. Every error is JSON with a 4xx status: `{"detail": ...}`, and
`errors` (field -> messages) when the input itself is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from django.contrib.auth.models import User
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import IamRole
from iamportal.permissions import can_view_inventory
from requests_app import services
from requests_app.forms import JSON_MAX_DEPTH, json_load_bounded
from requests_app.lint import policy_lint
from requests_app.models import PolicyRequest
from requests_app.policy import (
    ACCESS_LEVELS,
    MAX_ACCESS_KEY_CHARS,
    MAX_ACCESS_KEYS,
    MAX_ARN_CHARS,
    MAX_INTENTS,
    MAX_OPTION_CHARS,
    MAX_OPTIONS,
    MAX_SERVICE_CHARS,
    Intent,
    IntentError,
    policy_generate_with_notes,
)
from requests_app.selectors import request_for_user, requests_of

# A policy IAM accepts is at most 10,240 characters; a body ten times that
# holds any honest request with room to spare.
BODY_MAX_BYTES = 100_000
LIST_LIMIT = 200
ROLE_MAX_LENGTH = 2048
_STATUS_HELP = "One of " + ", ".join(PolicyRequest.Status.values) + "."


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"The request body is larger than {BODY_MAX_BYTES:,} bytes."
    default_code = "payload_too_large"


class BoundedJSONParser(JSONParser):
    """JSON bodies of bounded size and depth: a deeply nested body would make
    the parser recurse until it fails, which must be a 400, not a 500."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = stream.read(BODY_MAX_BYTES + 1) if stream is not None else b""
        if len(raw) > BODY_MAX_BYTES:
            raise PayloadTooLarge()
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"The body is not {encoding} text.") from exc
        try:
            return json_load_bounded(text, max_depth=JSON_MAX_DEPTH)
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from exc


# Every error answer: `detail` always; `errors` when the input is wrong;
# `field` and `index` when an intent is.
ErrorSerializer = inline_serializer(
    "RequestsError",
    fields={
        "detail": serializers.CharField(),
        "errors": serializers.DictField(
            child=serializers.JSONField(),
            required=False,
            help_text="Field name -> what is wrong with it (a list of messages, or for a "
            "list of objects, the same per position).",
        ),
        "field": serializers.CharField(required=False, help_text="The intent field at fault."),
        "index": serializers.IntegerField(
            required=False, allow_null=True, help_text="The position of the intent at fault."
        ),
    },
)


class _RequestsApi(APIView):
    parser_classes = [BoundedJSONParser]


def _invalid(errors: dict[str, Any]) -> Response:
    """A 400 naming the first problem in `detail` and all of them in `errors`."""
    field, messages = next(iter(errors.items()))
    first = messages
    while isinstance(first, list | dict) and first:
        first = first[0] if isinstance(first, list) else next(iter(first.values()))
    return Response(
        {"detail": f"{field}: {first}", "errors": errors}, status=status.HTTP_400_BAD_REQUEST
    )


def _intent_error(exc: IntentError) -> Response:
    return Response(
        {
            "detail": exc.message,
            "field": exc.field,
            "index": exc.index,
            "errors": {exc.field: [exc.message]},
        },
        status=status.HTTP_400_BAD_REQUEST,
    )


class IntentSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Intent"

    service = serializers.CharField(
        max_length=MAX_SERVICE_CHARS,
        help_text="An IAM service prefix: s3, sqs, sns, rds-db, sts, ses, kms, secretsmanager, "
        "dynamodb, logs (plain-language access choices), or any other (access levels).",
    )
    resource = serializers.CharField(
        max_length=MAX_ARN_CHARS,
        required=False,
        allow_blank=True,
        default="",
        help_text="The resource ARN.",
    )
    access = serializers.ListField(
        child=serializers.CharField(max_length=MAX_ACCESS_KEY_CHARS),
        max_length=MAX_ACCESS_KEYS,
        help_text="Choice keys of the service (e.g. list, read, write, delete for s3), or "
        f"access levels for other services: {', '.join(k for k, _ in ACCESS_LEVELS)}.",
    )
    options = serializers.DictField(
        child=serializers.CharField(max_length=MAX_OPTION_CHARS, allow_blank=True),
        required=False,
        default=dict,
        help_text='Refinements, e.g. {"prefix": "reports/"} for s3.',
    )
    include_destructive = serializers.BooleanField(
        required=False, default=False, help_text="Grant destructive actions too."
    )

    def validate_options(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_OPTIONS:
            raise serializers.ValidationError(f"At most {MAX_OPTIONS} options.")
        return value


def _intents(data: list[dict[str, Any]]) -> list[Intent]:
    return [Intent(**item) for item in data]


class NoteSerializer(serializers.Serializer):
    class Meta:
        ref_name = "PolicyNote"

    kind = serializers.ChoiceField(choices=["destructive", "wildcard-only"])
    service = serializers.CharField()
    resource = serializers.CharField()
    actions = serializers.ListField(child=serializers.CharField())
    message = serializers.CharField()


class FindingSerializer(serializers.Serializer):
    class Meta:
        ref_name = "LintFinding"

    severity = serializers.ChoiceField(choices=["error", "warning", "info"])
    code = serializers.CharField()
    title = serializers.CharField()
    detail = serializers.CharField()
    location = serializers.CharField(help_text="A JSON Pointer into the document.")


class PolicyGenerateApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyGenerateInput"

        intents = serializers.ListField(
            child=IntentSerializer(), min_length=1, max_length=MAX_INTENTS
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyGenerateOutput"

        document = serializers.JSONField(help_text="The IAM policy document.")
        notes = NoteSerializer(many=True, help_text="What was asked for but left out, and why.")
        size = serializers.IntegerField(help_text="Characters of the compact JSON.")

    @extend_schema(
        summary="A least-privilege policy for permissions asked in plain terms",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="Bad input; `field` and `index` name the intent."
            ),
            401: ErrorSerializer,
            413: ErrorSerializer,
        },
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        form = self.InputSerializer(data=request.data)
        if not form.is_valid():
            return _invalid(form.errors)
        try:
            generated = policy_generate_with_notes(_intents(form.validated_data["intents"]))
        except IntentError as exc:
            return _intent_error(exc)
        data = {"document": generated.document, "notes": generated.notes, "size": generated.size}
        return Response(self.OutputSerializer(data).data)


class PolicyLintApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyLintInput"

        document = serializers.JSONField(
            help_text="The policy document: a JSON object, or a string holding one."
        )
        other_inline_policies_size = serializers.IntegerField(
            required=False,
            default=0,
            min_value=0,
            max_value=1_000_000,
            help_text="Characters of the role's other inline policies (they share IAM's limit).",
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyLintOutput"

        findings = FindingSerializer(many=True)

    @extend_schema(
        summary="Lint findings for an identity policy",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: ErrorSerializer,
            401: ErrorSerializer,
            413: ErrorSerializer,
        },
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        form = self.InputSerializer(data=request.data)
        if not form.is_valid():
            return _invalid(form.errors)
        document = form.validated_data["document"]
        if not isinstance(document, dict | str):
            # Anything else is linted as the JSON text it is: "not an object".
            document = json.dumps(document)
        findings = policy_lint(
            document, other_inline_policies_size=form.validated_data["other_inline_policies_size"]
        )
        return Response(self.OutputSerializer({"findings": findings}).data)


class ChangeSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RequestChange"

    type = serializers.CharField()
    target_arn = serializers.CharField()
    status = serializers.CharField()
    payload = serializers.JSONField(help_text="The policy name and document to apply.")
    previous = serializers.JSONField(
        allow_null=True, help_text="The role's policy of that name when the request was made."
    )
    error = serializers.CharField(allow_blank=True)
    applied_at = serializers.DateTimeField(allow_null=True)


class EventSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RequestEvent"

    kind = serializers.CharField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    message = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class PolicyRequestSerializer(serializers.Serializer):
    class Meta:
        ref_name = "PolicyRequest"

    id = serializers.IntegerField()
    status = serializers.CharField(help_text=_STATUS_HELP)
    requester = serializers.CharField(source="requester.username")
    role_arn = serializers.CharField()
    account_id = serializers.CharField(source="account.account_id")
    justification = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    changes = ChangeSerializer(many=True, source="changes.all")
    events = EventSerializer(many=True, source="events.all")


class PolicyRequestSummarySerializer(serializers.Serializer):
    class Meta:
        ref_name = "PolicyRequestSummary"

    id = serializers.IntegerField()
    status = serializers.CharField(help_text=_STATUS_HELP)
    role_arn = serializers.CharField()
    account_id = serializers.CharField(source="account.account_id")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)


def _role(user: Any, value: str) -> IamRole:
    """The role named by its id or its ARN, from the inventory; 404 otherwise.
    Anyone signed in may ask for changes to any role: reviewers decide."""
    if not can_view_inventory(user):
        raise Http404("No such role.")
    roles = IamRole.objects.select_related("account").filter(account__enabled=True)
    value = value.strip()
    role = None
    if value.isdigit():
        role = roles.filter(pk=int(value)).first()
    elif value:
        role = roles.filter(arn=value).first() or roles.filter(arn__iexact=value).first()
    if role is None:
        raise Http404("No role in the inventory has this id or ARN.")
    return role


class PolicyRequestCreateApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestCreateInput"

        role = serializers.CharField(
            max_length=ROLE_MAX_LENGTH, help_text="The role's ARN, or its iamportal id."
        )
        document = serializers.JSONField(
            required=False, help_text="The policy document (an object, or a string holding one)."
        )
        intents = serializers.ListField(
            child=IntentSerializer(),
            required=False,
            min_length=1,
            max_length=MAX_INTENTS,
            help_text="Permissions in plain terms, instead of a document.",
        )
        justification = serializers.CharField(
            max_length=services.JUSTIFICATION_MAX_LENGTH,
            allow_blank=True,
            help_text="Why the access is needed: reviewers decide on it.",
        )
        policy_name = serializers.CharField(
            max_length=128, required=False, allow_blank=True, help_text="Default: generated."
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, help_text="Temporary access ends then (max 90 days)."
        )
        dry_run = serializers.BooleanField(
            required=False, default=False, help_text="Validate and describe; create nothing."
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("document" in attrs) == ("intents" in attrs):
                raise serializers.ValidationError(
                    {"document": ["Give either a document or intents (exactly one of them)."]}
                )
            return attrs

    class PreviewSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestPreview"

        dry_run = serializers.BooleanField()
        role_arn = serializers.CharField()
        policy_name = serializers.CharField()
        document = serializers.JSONField()
        previous = serializers.JSONField(allow_null=True)
        justification = serializers.CharField()
        expires_at = serializers.DateTimeField(allow_null=True)
        inline_size_after = serializers.IntegerField(
            help_text="Characters of the role's inline policies once applied (limit 10,240)."
        )
        findings = FindingSerializer(many=True)

    @extend_schema(
        summary="Ask for permissions on a role (or a dry run)",
        request=InputSerializer,
        responses={
            200: OpenApiResponse(PreviewSerializer, description="Dry run: what would be created."),
            201: OpenApiResponse(PolicyRequestSerializer, description="The pending request."),
            400: OpenApiResponse(ErrorSerializer, description="Bad input; nothing was created."),
            401: ErrorSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No such role in the inventory."),
            413: ErrorSerializer,
        },
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        form = self.InputSerializer(data=request.data)
        if not form.is_valid():
            return _invalid(form.errors)
        data = form.validated_data
        try:
            role = _role(request.user, data["role"])
        except Http404 as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
        if "intents" in data:
            try:
                document = policy_generate_with_notes(_intents(data["intents"])).document
            except IntentError as exc:
                return _intent_error(exc)
        else:
            document = data["document"]
            if isinstance(document, str):
                try:
                    document = json_load_bounded(document)
                except ValueError as exc:
                    return _invalid({"document": [str(exc)]})
            if not isinstance(document, dict):
                return _invalid({"document": ["A policy document is a JSON object."]})
        try:
            preview = services.policy_request_preview(
                role=role,
                document=document,
                justification=data["justification"],
                policy_name=data.get("policy_name") or None,
                expires_at=data.get("expires_at"),
            )
        except services.RequestInvalid as exc:
            return _invalid({field: [message] for field, message in exc.errors.items()})
        if data["dry_run"]:
            shown = {
                "dry_run": True,
                "role_arn": role.arn,
                "policy_name": preview.policy_name,
                "document": preview.document,
                "previous": preview.previous,
                "justification": preview.justification,
                "expires_at": preview.expires_at,
                "inline_size_after": preview.inline_size_after,
                "findings": preview.findings,
            }
            return Response(self.PreviewSerializer(shown).data)
        created = services.policy_request_submit(
            requester=cast(User, request.user), preview=preview
        )
        return Response(PolicyRequestSerializer(created).data, status=status.HTTP_201_CREATED)


class PolicyRequestListApi(_RequestsApi):
    @extend_schema(
        summary="My requests, newest first",
        responses={200: PolicyRequestSummarySerializer(many=True), 401: ErrorSerializer},
        tags=["requests"],
    )
    def get(self, request: Request) -> Response:
        requests = requests_of(request.user)[:LIST_LIMIT]
        return Response(PolicyRequestSummarySerializer(requests, many=True).data)


class PolicyRequestDetailApi(_RequestsApi):
    @extend_schema(
        summary="One request: its changes and its timeline",
        responses={
            200: PolicyRequestSerializer,
            401: ErrorSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No such request, or not yours."),
        },
        tags=["requests"],
    )
    def get(self, request: Request, pk: int) -> Response:
        try:
            found = request_for_user(request.user, pk)
        except Http404:
            return Response({"detail": "No such request."}, status=status.HTTP_404_NOT_FOUND)
        return Response(PolicyRequestSerializer(found).data)
