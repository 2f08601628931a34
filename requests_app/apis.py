"""The REST API of permission requests: generate and lint a policy, submit a
request (or a dry run), list and read requests, and act on one: comment,
cancel, approve, reject, retry.

Token or session authentication. The same services as the wizard and the
review page decide what is acceptable. Every error is JSON with a 4xx status:
`{"detail": ...}`, and `errors` (field -> messages) when the input itself is
wrong; the exception handler (`iamportal/api_errors.py`) answers for what the
services refuse.

Status codes of the actions on a request, in the order they are decided:
401 without credentials; 404 when the caller may not see the request (the
access gate); 400 for bad input; 403 when the caller may never do this to
this request (a non-reviewer approving, anyone approving their own request,
someone else cancelling it); 409 when they may, but not in its current state
(approving a request that is no longer pending, approving twice, retrying one
that has not failed, approving another revision than the request's current
one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, cast

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import prefetch_related_objects
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import IamRole
from brokering.serializers import AmbiguousSerializer
from iamportal.api_errors import InputInvalid
from iamportal.parsers import BoundedJSONParser, json_load_bounded
from iamportal.serializers import StrictBooleanField, StrictCharField, StrictIntegerField
from requests_app import services
from requests_app.models import Change, PolicyRequest
from requests_app.policy.generate import (
    MAX_INTENTS,
    Intent,
    policy_generate_with_notes,
)
from requests_app.policy.lint import policy_lint
from requests_app.selectors import (
    request_for_user,
    requestable_role_resolve,
    requests_filtered,
    requests_listed,
)
from requests_app.serializers import (
    STATUS_HELP,
    ChangeFindingSerializer,
    ErrorSerializer,
    FindingSerializer,
    IntentSerializer,
    NoteSerializer,
    PolicyRequestSerializer,
    PolicyRequestSummarySerializer,
)

LIST_LIMIT = 200
ROLE_MAX_LENGTH = 2048
ROLE_HELP = (
    "The role: its ARN, its iamportal id, or a part of its ARN such as its name, when "
    "only one role has it (as for credentials); several answer 409 with the `matches`."
)
CHANGES_ROLE_HELP = ROLE_HELP + " For a role_create change, the ARN the new role will have."


class _RequestsApi(APIView):
    parser_classes = [BoundedJSONParser]


def _rate_check(request: Request) -> None:
    """429 when the caller has linted, generated or dry-run too often this minute."""
    services.policy_tools_rate_check(user=cast(User, request.user))


def _validated(form: serializers.Serializer) -> Any:
    """The form's data, or a 400 naming what is wrong with it."""
    if not form.is_valid():
        raise InputInvalid(form.errors)
    return form.validated_data


def _intents(data: list[dict[str, Any]]) -> list[Intent]:
    return [Intent(**item) for item in data]


_ACKNOWLEDGEMENT_HELP = (
    "Required when the request has error-level findings (see a dry run): why they are "
    "acceptable. Recorded in the request's timeline for the reviewers."
)


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
        examples=[
            OpenApiExample(
                "Read a bucket and send to a queue",
                request_only=True,
                value={
                    "intents": [
                        {
                            "service": "s3",
                            "resource": "arn:aws:s3:::acme-prod-payments-data",
                            "access": ["list", "read"],
                        },
                        {
                            "service": "sqs",
                            "resource": "arn:aws:sqs:us-east-1:111111111111:payments-events",
                            "access": ["send"],
                        },
                    ]
                },
            )
        ],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="Bad input; `field` and `index` name the intent."
            ),
            401: ErrorSerializer,
            413: ErrorSerializer,
            429: OpenApiResponse(ErrorSerializer, description="Too many calls this minute."),
        },
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        _rate_check(request)
        data = _validated(self.InputSerializer(data=request.data))
        generated = policy_generate_with_notes(_intents(data["intents"]))
        data = {"document": generated.document, "notes": generated.notes, "size": generated.size}
        return Response(self.OutputSerializer(data).data)


class PolicyLintApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyLintInput"

        document = serializers.JSONField(
            help_text="The policy document: a JSON object, or a string holding one."
        )
        other_inline_policies_size = StrictIntegerField(
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
            429: OpenApiResponse(ErrorSerializer, description="Too many calls this minute."),
        },
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        _rate_check(request)
        data = _validated(self.InputSerializer(data=request.data))
        document = data["document"]
        if not isinstance(document, dict | str):
            # Anything else is linted as the JSON text it is: "not an object".
            document = json.dumps(document)
        findings = policy_lint(
            document, other_inline_policies_size=data["other_inline_policies_size"]
        )
        return Response(self.OutputSerializer({"findings": findings}).data)


def _detailed(request: PolicyRequest) -> PolicyRequest:
    """The request with everything PolicyRequestSerializer shows, in a few queries."""
    prefetch_related_objects(
        [request], "approvals__reviewer", "changes", "comments__author", "events__actor"
    )
    return request


def _role(user: Any, value: str) -> IamRole:
    """The role named by its id, its ARN or a unique part of it (the requests'
    access gate decides)."""
    return requestable_role_resolve(user=user, requested=value)


def _create_responses(preview: type[serializers.Serializer]) -> dict[int, Any]:
    """What creating a request answers: the request, or with dry_run its preview."""
    return {
        200: OpenApiResponse(preview, description="Dry run: what would be created."),
        201: OpenApiResponse(PolicyRequestSerializer, description="The pending request."),
        400: OpenApiResponse(
            ErrorSerializer,
            description="Bad input, or error findings without findings_acknowledgement; "
            "nothing was created.",
        ),
        401: ErrorSerializer,
        404: OpenApiResponse(ErrorSerializer, description="No such role in the inventory."),
        409: OpenApiResponse(
            AmbiguousSerializer, description="Several roles match the name; `matches` lists them."
        ),
        413: ErrorSerializer,
        429: OpenApiResponse(ErrorSerializer, description="Too many dry runs this minute."),
    }


class PolicyRequestCreateApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestCreateInput"

        role = StrictCharField(max_length=ROLE_MAX_LENGTH, help_text=ROLE_HELP)
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
        justification = StrictCharField(
            max_length=services.JUSTIFICATION_MAX_LENGTH,
            allow_blank=True,
            help_text="Why the access is needed: reviewers decide on it.",
        )
        policy_name = StrictCharField(
            max_length=128, required=False, allow_blank=True, help_text="Default: generated."
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, help_text="Temporary access ends then (max 90 days)."
        )
        dry_run = StrictBooleanField(
            required=False, default=False, help_text="Validate and describe; create nothing."
        )
        findings_acknowledgement = StrictCharField(
            max_length=services.REASON_MAX_LENGTH,
            required=False,
            allow_blank=True,
            default="",
            help_text=_ACKNOWLEDGEMENT_HELP,
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
        findings = ChangeFindingSerializer(
            many=True,
            help_text="Findings on every change the request would hold (change 0 is the "
            "inline policy), including what the role could do together with what it has.",
        )
        acknowledgement_required = serializers.BooleanField(
            help_text="Whether submitting needs findings_acknowledgement (error findings)."
        )

    @extend_schema(
        summary="Ask for permissions on a role (or a dry run)",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "Read a bucket, for a week",
                request_only=True,
                value={
                    "role": "arn:aws:iam::111111111111:role/service/payments-api",
                    "intents": [
                        {
                            "service": "s3",
                            "resource": "arn:aws:s3:::acme-prod-payments-data",
                            "access": ["list", "read"],
                            "options": {"prefix": "reports/"},
                        }
                    ],
                    "justification": "Settlement reports for PAY-1234.",
                    "expires_at": None,
                    "dry_run": False,
                },
            ),
            OpenApiExample(
                "A policy document, dry run",
                request_only=True,
                value={
                    "role": "arn:aws:iam::111111111111:role/service/payments-api",
                    "document": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "sqs:SendMessage",
                                "Resource": "arn:aws:sqs:us-east-1:111111111111:payments-events",
                            }
                        ],
                    },
                    "justification": "Send settlement events.",
                    "policy_name": "payments-events",
                    "dry_run": True,
                },
            ),
        ],
        responses=_create_responses(PreviewSerializer),
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        data = _validated(self.InputSerializer(data=request.data))
        role = _role(request.user, data["role"])
        if data["dry_run"]:
            _rate_check(request)
        if "intents" in data:
            document = policy_generate_with_notes(_intents(data["intents"])).document
        else:
            document = data["document"]
            if isinstance(document, str):
                try:
                    document = json_load_bounded(document)
                except ValueError as exc:
                    raise InputInvalid({"document": [str(exc)]}) from exc
            if not isinstance(document, dict):
                raise InputInvalid({"document": ["A policy document is a JSON object."]})
        preview = services.policy_request_preview(
            role=role,
            document=document,
            justification=data["justification"],
            policy_name=data.get("policy_name") or None,
            expires_at=data.get("expires_at"),
        )
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
                "acknowledgement_required": any(f.severity == "error" for f in preview.findings),
            }
            return Response(self.PreviewSerializer(shown).data)
        created = services.policy_request_submit(
            requester=cast(User, request.user),
            preview=preview,
            findings_acknowledgement=data["findings_acknowledgement"],
        )
        return Response(
            PolicyRequestSerializer(_detailed(created)).data, status=status.HTTP_201_CREATED
        )


class PolicyRequestChangesCreateApi(_RequestsApi):
    """Any change types, not only an inline policy: managed policies, the trust
    policy, tags, the boundary, customer-managed policies, resource policies."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestChangesInput"

        class ChangeInputSerializer(serializers.Serializer):
            class Meta:
                ref_name = "RequestedChange"

            type = serializers.ChoiceField(choices=Change.Type.values)
            target_arn = StrictCharField(
                max_length=ROLE_MAX_LENGTH,
                required=False,
                help_text="What the change is about. Default: the request's role.",
            )
            payload = serializers.JSONField(help_text="What to do; its shape depends on the type.")

        role = StrictCharField(max_length=ROLE_MAX_LENGTH, help_text=CHANGES_ROLE_HELP)
        changes = serializers.ListField(
            child=ChangeInputSerializer(), min_length=1, max_length=services.MAX_CHANGES
        )
        justification = StrictCharField(
            max_length=services.JUSTIFICATION_MAX_LENGTH,
            allow_blank=True,
            help_text="Why the change is needed: reviewers decide on it.",
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, help_text="Temporary: undone then (max 90 days)."
        )
        dry_run = StrictBooleanField(
            required=False, default=False, help_text="Validate and describe; create nothing."
        )
        findings_acknowledgement = StrictCharField(
            max_length=services.REASON_MAX_LENGTH,
            required=False,
            allow_blank=True,
            default="",
            help_text=_ACKNOWLEDGEMENT_HELP,
        )

    class PreviewSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestChangesPreview"

        class PreviewedChangeSerializer(serializers.Serializer):
            class Meta:
                ref_name = "PreviewedChange"

            type = serializers.CharField()
            target_arn = serializers.CharField()
            account_id = serializers.CharField()
            payload = serializers.JSONField()
            previous = serializers.JSONField(allow_null=True)

        dry_run = serializers.BooleanField()
        role_arn = serializers.CharField()
        changes = PreviewedChangeSerializer(many=True)
        findings = ChangeFindingSerializer(many=True)
        acknowledgement_required = serializers.BooleanField(
            help_text="Whether submitting needs findings_acknowledgement (error findings)."
        )

    @extend_schema(
        summary="Ask for any kind of change to a role and its account (or a dry run)",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "Attach a managed policy for a day",
                request_only=True,
                value={
                    "role": "arn:aws:iam::111111111111:role/service/payments-api",
                    "changes": [
                        {
                            "type": "managed_policy_attach",
                            "payload": {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
                        }
                    ],
                    "justification": "Incident 4711.",
                    "expires_at": "2026-12-01T18:00:00Z",
                },
            )
        ],
        responses=_create_responses(PreviewSerializer),
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        data = _validated(self.InputSerializer(data=request.data))
        if any(change["type"] == Change.Type.ROLE_CREATE for change in data["changes"]):
            return self._create(request, data)
        role = _role(request.user, data["role"])
        if data["dry_run"]:
            _rate_check(request)
        result = services.policy_request_changes_submit(
            requester=cast(User, request.user),
            role=role,
            changes=[dict(change) for change in data["changes"]],
            justification=data["justification"],
            expires_at=data.get("expires_at"),
            dry_run=data["dry_run"],
            findings_acknowledgement=data["findings_acknowledgement"],
        )
        if isinstance(result, list):
            findings = services.changes_findings(role=role, specs=result)
            shown = {
                "dry_run": True,
                "role_arn": role.arn,
                "changes": result,
                "findings": findings,
                "acknowledgement_required": any(f.severity == "error" for f in findings),
            }
            return Response(self.PreviewSerializer(shown).data)
        return Response(
            PolicyRequestSerializer(_detailed(result)).data, status=status.HTTP_201_CREATED
        )

    def _create(self, request: Request, data: dict[str, Any]) -> Response:
        """A new role is not in the inventory yet: `role` is the ARN it will have,
        and the creation is the request's only change."""
        [change, *others] = data["changes"]
        if others:
            raise InputInvalid(
                {"changes": ["A role_create change is a request of its own: send it alone."]}
            )
        target_arn = change.get("target_arn") or data["role"]
        if target_arn != data["role"]:
            raise InputInvalid({"changes": ["A role_create change names the request's role."]})
        if data["dry_run"]:
            _rate_check(request)
        result = services.role_create_submit(
            requester=cast(User, request.user),
            target_arn=target_arn,
            payload=change["payload"],
            justification=data["justification"],
            expires_at=data.get("expires_at"),
            dry_run=data["dry_run"],
            findings_acknowledgement=data["findings_acknowledgement"],
        )
        if isinstance(result, PolicyRequest):
            return Response(
                PolicyRequestSerializer(_detailed(result)).data, status=status.HTTP_201_CREATED
            )
        findings = services.role_create_findings(result)
        shown = {
            "dry_run": True,
            "role_arn": result.target_arn,
            "changes": [result],
            "findings": findings,
            "acknowledgement_required": any(f.severity == "error" for f in findings),
        }
        return Response(self.PreviewSerializer(shown).data)


class AccessRequestCreateApi(_RequestsApi):
    """Ask to use a role: for some hours, until a time, or permanently where the
    role's account allows it; reviewed and approved as every request."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AccessRequestInput"

        role = StrictCharField(max_length=ROLE_MAX_LENGTH, help_text=ROLE_HELP)
        justification = StrictCharField(
            max_length=services.JUSTIFICATION_MAX_LENGTH,
            allow_blank=True,
            help_text="Why you need the role: reviewers decide on it.",
        )
        hours = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            max_value=24 * 90,
            help_text="How long, from the start. Give hours, expires_at or permanent.",
        )
        expires_at = serializers.DateTimeField(
            required=False, allow_null=True, help_text="Until when (capped per account)."
        )
        permanent = StrictBooleanField(
            required=False,
            default=False,
            help_text="No end: only where the role's account allows it.",
        )
        starts_at = serializers.DateTimeField(
            required=False,
            allow_null=True,
            help_text="From when (at most 30 days ahead). Default: as soon as it is approved.",
        )
        cli_only = StrictBooleanField(
            required=False, default=False, help_text="Credentials only, no console sign-in."
        )

    @extend_schema(
        summary="Ask to use a role for a while",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "Eight hours of a role",
                request_only=True,
                value={
                    "role": "arn:aws:iam::111111111111:role/ReadOnly",
                    "justification": "Incident 4711.",
                    "hours": 8,
                },
            )
        ],
        responses={
            201: OpenApiResponse(
                PolicyRequestSerializer,
                description="The access request: pending, or approved automatically when an "
                "approval policy says so.",
            ),
            400: OpenApiResponse(ErrorSerializer, description="Bad input; nothing was created."),
            401: ErrorSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No such role in the inventory."),
            409: OpenApiResponse(
                AmbiguousSerializer,
                description="Several roles match the name; `matches` lists them.",
            ),
            413: ErrorSerializer,
        },
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        data = _validated(self.InputSerializer(data=request.data))
        role = _role(request.user, data["role"])
        hours = data.get("hours")
        created = services.access_request_submit(
            requester=cast(User, request.user),
            role=role,
            justification=data["justification"],
            duration=timedelta(hours=hours) if hours else None,
            expires_at=data.get("expires_at"),
            permanent=data["permanent"],
            starts_at=data.get("starts_at"),
            cli_only=data["cli_only"],
        )
        created.refresh_from_db()
        return Response(
            PolicyRequestSerializer(_detailed(created)).data, status=status.HTTP_201_CREATED
        )


# --- list and read ------------------------------------------------------------------

ACCOUNT_ID = re.compile(r"[0-9]{12}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
USERNAME_MAX_LENGTH = 150


@extend_schema_field({"type": "string", "pattern": "^[0-9]{12}$"})
class AccountIdField(serializers.CharField):
    """Exactly twelve ASCII digits, nothing around them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not ACCOUNT_ID.fullmatch(value):
            raise serializers.ValidationError(f"{value[:50]!r} is not a 12-digit account id.")
        return value


@extend_schema_field(OpenApiTypes.DATE)
class IsoDateField(serializers.Field):
    """A calendar date written YYYY-MM-DD, and no other way."""

    def to_internal_value(self, data: Any) -> date:
        text = data if isinstance(data, str) else ""
        try:
            if ISO_DATE.fullmatch(text):
                return date.fromisoformat(text)
        except ValueError:
            pass
        raise serializers.ValidationError(f"{str(data)[:50]!r} is not a date: use YYYY-MM-DD.")

    def to_representation(self, value: date) -> str:
        return value.isoformat()


class PolicyRequestListApi(_RequestsApi):
    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestListFilter"

        scope = serializers.ChoiceField(
            choices=["mine", "all"],
            default="mine",
            help_text="mine (the default, for everyone): the requests I made. all: everyone's "
            "requests, for reviewers only (403 for anyone else).",
            error_messages={"invalid_choice": 'scope is "mine" or "all", not "{input}".'},
        )
        status = serializers.ChoiceField(
            choices=PolicyRequest.Status.values,
            required=False,
            help_text="Only requests in this status.",
            error_messages={"invalid_choice": f'"{{input}}" is not a status. {STATUS_HELP}'},
        )
        account = AccountIdField(
            required=False,
            help_text="Only requests for a role in this account, or changing something in it.",
        )
        requester = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=USERNAME_MAX_LENGTH,
            help_text="Only requests made by the user with this username.",
        )
        role = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=ROLE_MAX_LENGTH,
            help_text="Only requests for a role whose ARN contains this (any case).",
        )
        created_after = IsoDateField(
            required=False, help_text="Only requests made on this day (UTC) or later."
        )
        created_before = IsoDateField(
            required=False, help_text="Only requests made before this day (UTC) began."
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            after, before = attrs.get("created_after"), attrs.get("created_before")
            if after is not None and before is not None and after >= before:
                raise serializers.ValidationError(
                    {"created_before": ["created_before must be a later day than created_after."]}
                )
            return attrs

    @extend_schema(
        summary=f"Requests, newest first (at most {LIST_LIMIT}); mine unless scope=all",
        description="Filters combine: every one given must hold. To see older requests than "
        f"the {LIST_LIMIT} returned, narrow them with created_before.",
        parameters=[FilterSerializer],
        responses={
            200: PolicyRequestSummarySerializer(many=True),
            400: OpenApiResponse(ErrorSerializer, description="A filter has a bad value."),
            401: ErrorSerializer,
            403: OpenApiResponse(ErrorSerializer, description="scope=all from a non-reviewer."),
        },
        tags=["requests"],
    )
    def get(self, request: Request) -> Response:
        # A plain dict: an empty value is then a bad value, not a missing one.
        filters = _validated(self.FilterSerializer(data=request.query_params.dict()))
        try:
            requests = requests_listed(request.user, everyone=filters["scope"] == "all")
        except PermissionDenied as exc:
            # The API's own hint: what the caller may list instead.
            raise exceptions.PermissionDenied(f"{exc} Use scope=mine.") from exc
        requests = requests_filtered(
            requests.select_related("requester"),
            status=filters.get("status"),
            account_id=filters.get("account"),
            requester=filters.get("requester"),
            role=filters.get("role"),
            created_after=filters.get("created_after"),
            created_before=filters.get("created_before"),
        )
        return Response(PolicyRequestSummarySerializer(requests[:LIST_LIMIT], many=True).data)


# Any request may be refused before it reaches the view, e.g. for a NUL character.
_BAD_INPUT = "Bad or malformed input."
_NOT_FOUND = OpenApiResponse(
    ErrorSerializer, description="No such request, or the caller may not see it."
)


class PolicyRequestDetailApi(_RequestsApi):
    @extend_schema(
        summary="One request: its changes, approvals, comments and timeline",
        responses={
            200: PolicyRequestSerializer,
            400: OpenApiResponse(ErrorSerializer, description=_BAD_INPUT),
            401: ErrorSerializer,
            404: _NOT_FOUND,
        },
        tags=["requests"],
    )
    def get(self, request: Request, pk: int) -> Response:
        found = request_for_user(user=request.user, pk=pk)
        return Response(PolicyRequestSerializer(_detailed(found)).data)


# --- actions on a request -----------------------------------------------------------


def _act(
    request: Request,
    pk: int,
    perform: Callable[[User, dict[str, Any]], object],
    *,
    form: type[serializers.Serializer] | None = None,
    created: bool = False,
) -> Response:
    """The access gate, the input, then the service: the updated request; why not
    is the exception handler's answer."""
    request_for_user(user=request.user, pk=pk)
    user = cast(User, request.user)  # the gate lets only signed-in users through
    data = _validated(form(data=request.data)) if form is not None else {}
    try:
        perform(user, data)
    except services.RequestActionRefused:
        # Deleted since the gate let the caller in: as if it had never been.
        if not PolicyRequest.objects.filter(pk=pk).exists():
            raise Http404("No such request.") from None
        raise
    updated = request_for_user(user=user, pk=pk)
    return Response(
        PolicyRequestSerializer(_detailed(updated)).data,
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


def _action_responses(
    success: int, description: str, *, conflict: str, body: bool = False
) -> dict[int, Any]:
    responses: dict[int, Any] = {
        success: OpenApiResponse(PolicyRequestSerializer, description=description),
        400: OpenApiResponse(ErrorSerializer, description=_BAD_INPUT),
        401: ErrorSerializer,
        403: OpenApiResponse(
            ErrorSerializer, description="The caller may see the request but never do this to it."
        ),
        404: _NOT_FOUND,
        409: OpenApiResponse(ErrorSerializer, description=conflict),
    }
    if body:
        responses[413] = ErrorSerializer
    return responses


class PolicyRequestCommentApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestCommentInput"

        body = StrictCharField(max_length=services.COMMENT_MAX_LENGTH)

    @extend_schema(
        summary="Comment on a request (its requester and reviewers)",
        request=InputSerializer,
        responses=_action_responses(
            201,
            "The request, with the comment.",
            conflict="The request takes no comments now.",
            body=True,
        ),
        tags=["requests"],
    )
    def post(self, request: Request, pk: int) -> Response:
        return _act(
            request,
            pk,
            lambda user, data: services.policy_request_comment(
                request_id=pk, author=user, body=data["body"]
            ),
            form=self.InputSerializer,
            created=True,
        )


class PolicyRequestCancelApi(_RequestsApi):
    @extend_schema(
        summary="Withdraw my pending request",
        request=None,
        responses=_action_responses(
            200, "The cancelled request.", conflict="The request is no longer pending."
        ),
        tags=["requests"],
    )
    def post(self, request: Request, pk: int) -> Response:
        return _act(
            request,
            pk,
            lambda user, _: services.policy_request_cancel(request_id=pk, requester=user),
        )


class PolicyRequestApproveApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestApproveInput"

        revision = StrictCharField(
            max_length=services.REVISION_MAX_LENGTH,
            help_text="The `revision` of the request as the caller read and reviewed it.",
        )
        findings_acknowledged = StrictBooleanField(
            required=False,
            default=False,
            help_text="Required (true) when the request has error-level findings (its `risk` "
            "is error): the reviewer has read them. Recorded with the approval.",
        )

    @extend_schema(
        summary="Approve a pending request (reviewers; never one's own)",
        description="Records the caller's approval of the revision given. The request stays "
        "pending until it has `approvals_required` distinct approvals; then it is approved and "
        "applied in AWS by a background job. If the request changed since the caller read it, "
        "nothing is approved: 409, with the current `revision` to review. A request with error "
        "findings needs `findings_acknowledged: true` (400 without it).",
        request=InputSerializer,
        responses=_action_responses(
            200,
            "The request, with the approval.",
            conflict="The request is no longer pending, the caller approved it already, or it "
            "changed since the caller read it (the body then gives its current `revision`).",
            body=True,
        ),
        tags=["requests"],
    )
    def post(self, request: Request, pk: int) -> Response:
        return _act(
            request,
            pk,
            lambda user, data: services.policy_request_approve(
                request_id=pk,
                reviewer=user,
                revision=data["revision"],
                findings_acknowledged=data["findings_acknowledged"],
            ),
            form=self.InputSerializer,
        )


class PolicyRequestRejectApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestRejectInput"

        reason = StrictCharField(
            max_length=services.REASON_MAX_LENGTH, help_text="Shown to the requester."
        )

    @extend_schema(
        summary="Reject a pending request (reviewers)",
        request=InputSerializer,
        responses=_action_responses(
            200, "The rejected request.", conflict="The request is no longer pending.", body=True
        ),
        tags=["requests"],
    )
    def post(self, request: Request, pk: int) -> Response:
        return _act(
            request,
            pk,
            lambda user, data: services.policy_request_reject(
                request_id=pk, reviewer=user, reason=data["reason"]
            ),
            form=self.InputSerializer,
        )


class PolicyRequestRetryApi(_RequestsApi):
    @extend_schema(
        summary="Apply a failed request again (reviewers; never one's own)",
        description="Changes already applied stay applied and are skipped.",
        request=None,
        responses=_action_responses(
            200, "The request, approved again.", conflict="The request has not failed."
        ),
        tags=["requests"],
    )
    def post(self, request: Request, pk: int) -> Response:
        return _act(
            request,
            pk,
            lambda user, _: services.policy_request_retry(request_id=pk, reviewer=user),
        )
