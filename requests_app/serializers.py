"""Serializers shared by the REST API's views of permission requests: the
error body, an intent, lint findings and a request as every action answers it.
Each view's own input and output stay nested in its APIView."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from iamportal.serializers import StrictBooleanField, StrictCharField
from requests_app.models import Change, PolicyRequest
from requests_app.policy.generate import (
    ACCESS_LEVELS,
    MAX_ACCESS_KEY_CHARS,
    MAX_ACCESS_KEYS,
    MAX_OPTION_CHARS,
    MAX_OPTIONS,
    MAX_SERVICE_CHARS,
)
from requests_app.policy.limits import ARN_MAX_LENGTH as MAX_ARN_CHARS

STATUS_HELP = "One of " + ", ".join(PolicyRequest.Status.values) + "."


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

    reviewer = serializers.CharField(
        source="reviewer.username",
        allow_null=True,
        default=None,
        help_text="Null for an automatic approval.",
    )
    created_at = serializers.DateTimeField()
    automatic = serializers.BooleanField(
        help_text="Approved automatically by the approval policy named in `policy`."
    )
    policy = serializers.CharField(source="policy_name", allow_blank=True)
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


class ApprovalRequirementSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ApprovalRequirement"

    policy = serializers.CharField(
        allow_null=True,
        default=None,
        help_text="The approval policy that applies; null: none "
        "matched and the accounts' rule applies.",
    )
    reason = serializers.CharField(default="", help_text="Why it applies.")
    automatic = serializers.BooleanField(default=False)
    reviewer_groups = serializers.ListField(
        child=serializers.CharField(),
        default=list,
        help_text="Reviewers in one of these groups may approve; empty: any reviewer.",
    )
    approvals_required = serializers.IntegerField(default=1)


class PolicyRequestSerializer(serializers.Serializer):
    class Meta:
        ref_name = "PolicyRequest"

    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="permission (a change) or access (to use the role).")
    status = serializers.CharField(help_text=STATUS_HELP)
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
    approval_policy = ApprovalRequirementSerializer(
        source="approval_requirement",
        help_text="Which approval policy applies and why, as decided at submit or at the last "
        "edit; empty for requests submitted before approval policies.",
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
    status = serializers.CharField(help_text=STATUS_HELP)
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
