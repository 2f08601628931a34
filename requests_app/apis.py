"""The REST API of permission requests: generate and lint a policy, submit a
request (or a dry run), list and read requests, and act on one: comment,
cancel, approve, reject, retry.

Token or session authentication. The same services as the wizard and the
review page decide what is acceptable. Every error is JSON with a 4xx status:
`{"detail": ...}`, and `errors` (field -> messages) when the input itself is
wrong.

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
from datetime import date
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
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import IamRole
from iamportal.parsers import BoundedJSONParser, json_load_bounded
from iamportal.permissions import can_view_inventory
from iamportal.serializers import StrictBooleanField, StrictCharField, StrictIntegerField
from requests_app import services
from requests_app.models import Change, PolicyRequest
from requests_app.policy.generate import (
    ACCESS_LEVELS,
    MAX_ACCESS_KEY_CHARS,
    MAX_ACCESS_KEYS,
    MAX_INTENTS,
    MAX_OPTION_CHARS,
    MAX_OPTIONS,
    MAX_SERVICE_CHARS,
    Intent,
    IntentError,
    policy_generate_with_notes,
)
from requests_app.policy.limits import ARN_MAX_LENGTH as MAX_ARN_CHARS
from requests_app.policy.lint import policy_lint
from requests_app.selectors import request_for_user, requests_filtered, requests_listed

LIST_LIMIT = 200
ROLE_MAX_LENGTH = 2048
_STATUS_HELP = "One of " + ", ".join(PolicyRequest.Status.values) + "."


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
        "revision": serializers.CharField(
            required=False,
            help_text="The request's current revision, when an approval named another one: "
            "read the request again and review it.",
        ),
    },
)


class _RequestsApi(APIView):
    parser_classes = [BoundedJSONParser]


def _rate_limited(user: Any) -> Response | None:
    """429 when the caller has linted, generated or dry-run too often this minute."""
    try:
        services.policy_tools_rate_check(user=user)
    except services.PolicyToolsRateLimited as exc:
        return Response(
            {"detail": exc.message},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after)},
        )
    return None


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

    service = StrictCharField(
        max_length=MAX_SERVICE_CHARS,
        help_text="An IAM service prefix: s3, sqs, sns, rds-db, sts, ses, kms, secretsmanager, "
        "dynamodb, logs (plain-language access choices), or any other (access levels).",
    )
    resource = StrictCharField(
        max_length=MAX_ARN_CHARS,
        required=False,
        allow_blank=True,
        default="",
        help_text="The resource ARN.",
    )
    access = serializers.ListField(
        child=StrictCharField(max_length=MAX_ACCESS_KEY_CHARS),
        max_length=MAX_ACCESS_KEYS,
        help_text="Choice keys of the service (e.g. list, read, write, delete for s3), or "
        f"access levels for other services: {', '.join(k for k, _ in ACCESS_LEVELS)}.",
    )
    options = serializers.DictField(
        child=StrictCharField(max_length=MAX_OPTION_CHARS, allow_blank=True),
        required=False,
        default=dict,
        help_text='Refinements, e.g. {"prefix": "reports/"} for s3.',
    )
    include_destructive = StrictBooleanField(
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


class ChangeFindingSerializer(FindingSerializer):
    class Meta:
        ref_name = "RequestFinding"

    change = serializers.IntegerField(
        help_text="The position of the change it is about, in the request's list of changes."
    )
    location = serializers.CharField(
        allow_blank=True,
        help_text="A JSON Pointer into the change's document or payload; empty for findings "
        "about the role as a whole.",
    )


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
        limited = _rate_limited(request.user)
        if limited is not None:
            return limited
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
        limited = _rate_limited(request.user)
        if limited is not None:
            return limited
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

    type = serializers.CharField(help_text="What the change does, e.g. inline_policy_put.")
    target_arn = serializers.CharField()
    account_id = serializers.CharField(help_text="The account the change is applied in.")
    status = serializers.CharField(help_text="One of " + ", ".join(Change.Status.values) + ".")
    automatic = serializers.BooleanField(
        help_text="Added by iamportal, not the requester: the other half of a cross-account grant."
    )
    payload = serializers.JSONField(help_text="What to apply, e.g. the policy name and document.")
    previous = serializers.JSONField(
        allow_null=True, help_text="What was there when the request was made."
    )
    error = serializers.CharField(allow_blank=True)
    applied_at = serializers.DateTimeField(allow_null=True)


class ApprovalSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RequestApproval"

    reviewer = serializers.CharField(source="reviewer.username")
    created_at = serializers.DateTimeField()
    self_approval = serializers.BooleanField(
        help_text="An admin approved their own request, as the settings allow."
    )
    revision = serializers.CharField(help_text="The revision of the request approved.")


class CommentSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RequestComment"

    author = serializers.CharField(source="author.username")
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


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
    approvals_required = serializers.IntegerField(
        help_text="Distinct reviewers who must approve before the request is applied."
    )
    risk = serializers.CharField(
        help_text="The highest severity of its findings: error, warning, info or none; empty "
        "for requests submitted before findings were stored."
    )
    findings = ChangeFindingSerializer(many=True)
    revision = serializers.CharField(
        help_text="Hash of the changes and the expiry; an approval names the revision it "
        "approves, and changes whenever the request is edited."
    )
    approvals = ApprovalSerializer(many=True, source="approvals.all")
    changes = ChangeSerializer(many=True, source="changes.all")
    comments = CommentSerializer(many=True, source="comments.all")
    events = EventSerializer(many=True, source="events.all")


class PolicyRequestSummarySerializer(serializers.Serializer):
    class Meta:
        ref_name = "PolicyRequestSummary"

    id = serializers.IntegerField()
    status = serializers.CharField(help_text=_STATUS_HELP)
    requester = serializers.CharField(source="requester.username")
    role_arn = serializers.CharField()
    account_id = serializers.CharField(source="account.account_id")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    risk = serializers.CharField(help_text="The highest severity of its findings.")
    revision = serializers.CharField(
        help_text="Hash of the changes and the expiry; an approval names the revision it "
        "approves, and changes whenever the request is edited."
    )


def _detailed(request: PolicyRequest) -> PolicyRequest:
    """The request with everything PolicyRequestSerializer shows, in a few queries."""
    prefetch_related_objects(
        [request], "approvals__reviewer", "changes", "comments__author", "events__actor"
    )
    return request


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


def _role_or_404(user: Any, value: str) -> IamRole | Response:
    try:
        return _role(user, value)
    except Http404 as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)


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
        413: ErrorSerializer,
        429: OpenApiResponse(ErrorSerializer, description="Too many dry runs this minute."),
    }


class PolicyRequestCreateApi(_RequestsApi):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PolicyRequestCreateInput"

        role = StrictCharField(
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
        form = self.InputSerializer(data=request.data)
        if not form.is_valid():
            return _invalid(form.errors)
        data = form.validated_data
        role = _role_or_404(request.user, data["role"])
        if isinstance(role, Response):
            return role
        if data["dry_run"]:
            limited = _rate_limited(request.user)
            if limited is not None:
                return limited
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
                "acknowledgement_required": any(f.severity == "error" for f in preview.findings),
            }
            return Response(self.PreviewSerializer(shown).data)
        try:
            created = services.policy_request_submit(
                requester=cast(User, request.user),
                preview=preview,
                findings_acknowledgement=data["findings_acknowledgement"],
            )
        except services.RequestInvalid as exc:
            return _invalid({field: [message] for field, message in exc.errors.items()})
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

        role = StrictCharField(
            max_length=ROLE_MAX_LENGTH, help_text="The role's ARN, or its iamportal id."
        )
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
        form = self.InputSerializer(data=request.data)
        if not form.is_valid():
            return _invalid(form.errors)
        data = form.validated_data
        role = _role_or_404(request.user, data["role"])
        if isinstance(role, Response):
            return role
        if data["dry_run"]:
            limited = _rate_limited(request.user)
            if limited is not None:
                return limited
        try:
            result = services.policy_request_changes_submit(
                requester=cast(User, request.user),
                role=role,
                changes=[dict(change) for change in data["changes"]],
                justification=data["justification"],
                expires_at=data.get("expires_at"),
                dry_run=data["dry_run"],
                findings_acknowledgement=data["findings_acknowledgement"],
            )
        except services.RequestInvalid as exc:
            return _invalid({field: [message] for field, message in exc.errors.items()})
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
            error_messages={"invalid_choice": f'"{{input}}" is not a status. {_STATUS_HELP}'},
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
        form = self.FilterSerializer(data=request.query_params.dict())
        if not form.is_valid():
            return _invalid(form.errors)
        filters = form.validated_data
        try:
            requests = requests_listed(request.user, everyone=filters["scope"] == "all")
        except PermissionDenied as exc:
            return Response({"detail": f"{exc} Use scope=mine."}, status=status.HTTP_403_FORBIDDEN)
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
        try:
            found = request_for_user(request.user, pk)
        except Http404:
            return Response({"detail": "No such request."}, status=status.HTTP_404_NOT_FOUND)
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
    """The access gate, the input, then the service: the updated request, or why not."""
    try:
        request_for_user(request.user, pk)
    except Http404:
        return Response({"detail": "No such request."}, status=status.HTTP_404_NOT_FOUND)
    user = cast(User, request.user)  # the gate lets only signed-in users through
    data: dict[str, Any] = {}
    if form is not None:
        given = form(data=request.data)
        if not given.is_valid():
            return _invalid(given.errors)
        data = given.validated_data
    try:
        perform(user, data)
    except services.FindingsNotAcknowledged as exc:
        return _invalid({"findings_acknowledged": [exc.message]})
    except services.RequestActionRefused as exc:
        if not PolicyRequest.objects.filter(pk=pk).exists():
            return Response({"detail": "No such request."}, status=status.HTTP_404_NOT_FOUND)
        forbidden = isinstance(exc, services.RequestActionForbidden)
        code = status.HTTP_403_FORBIDDEN if forbidden else status.HTTP_409_CONFLICT
        body = {"detail": exc.message}
        if isinstance(exc, services.RequestRevisionStale):
            body["revision"] = exc.current
        return Response(body, status=code)
    updated = request_for_user(user, pk)
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
