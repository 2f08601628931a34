"""Business actions on permission requests: submitting one (or a dry run), review
(approve, reject, cancel, comment) and applying it in AWS."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.models import IamRole
from requests_app.models import Change, Comment, PolicyRequest, RequestEvent

log = logging.getLogger(__name__)

JUSTIFICATION_MAX_LENGTH = 5000
MAX_EXPIRY = timedelta(days=90)
INLINE_POLICIES_LIMIT = 10_240  # IAM's limit for all of a role's inline policies together
_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
# Lint findings that make a document unusable, as opposed to risky: these block a
# submission; everything else is shown to the requester and the reviewers.
BLOCKING_LINT_CODES = frozenset(
    {
        "invalid-json",
        "duplicate-key",
        "document-not-object",
        "unknown-document-key",
        "version-invalid",
        "statement-missing",
        "statement-wrong-type",
        "statement-empty",
        "statement-not-object",
        "unknown-statement-key",
        "sid-invalid",
        "duplicate-sid",
        "effect-missing",
        "effect-invalid",
        "action-missing",
        "action-and-notaction",
        "resource-missing",
        "resource-and-notresource",
        "principal-in-identity-policy",
        "wrong-type",
        "condition-malformed",
        "unknown-condition-operator",
        "malformed-action",
        "unknown-service",
        "malformed-arn",
        "policy-too-large",
    }
)


class RequestInvalid(ValueError):
    """Bad input for a request: `errors` maps a field to its user-facing message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class RequestPreview:
    """Exactly what a submission would create; a dry run stops here."""

    role: IamRole
    policy_name: str
    document: dict[str, Any]
    previous: dict[str, Any] | None
    justification: str
    expires_at: datetime | None
    findings: list[Any] = field(default_factory=list)

    @property
    def inline_size_after(self) -> int:
        current = self.role.inline_policies or {}
        others = {k: v for k, v in current.items() if k != self.policy_name}
        return inline_policies_size(others) + compact_size(self.document)


def compact_size(document: Any) -> int:
    return len(json.dumps(document, separators=(",", ":")))


def inline_policies_size(policies: dict[str, Any]) -> int:
    return sum(compact_size(doc) for doc in policies.values())


def default_policy_name(role: IamRole) -> str:
    stamp = timezone.now().strftime("%Y%m%d")
    taken = set(role.inline_policies or {})
    for n in range(1, 1000):
        name = f"iamportal-{stamp}-{n}"
        if name not in taken:
            return name
    return f"iamportal-{stamp}-{timezone.now():%H%M%S}"


def policy_request_preview(
    *,
    role: IamRole,
    document: dict[str, Any],
    justification: str,
    policy_name: str | None = None,
    expires_at: datetime | None = None,
) -> RequestPreview:
    """Validate a request and describe what it would create. Raises RequestInvalid."""
    from requests_app.lint import policy_lint

    errors: dict[str, str] = {}
    justification = (justification or "").strip()
    if not justification:
        errors["justification"] = "Say why you need this access: reviewers decide on it."
    elif len(justification) > JUSTIFICATION_MAX_LENGTH:
        errors["justification"] = (
            f"Keep the justification under {JUSTIFICATION_MAX_LENGTH} characters."
        )
    name = (policy_name or "").strip() or default_policy_name(role)
    if not _POLICY_NAME.match(name):
        errors["policy_name"] = "A policy name is 1-128 letters, digits or +=,.@_- characters."
    if expires_at is not None:
        now = timezone.now()
        if expires_at <= now:
            errors["expires_at"] = "The expiry must be in the future."
        elif expires_at > now + MAX_EXPIRY:
            errors["expires_at"] = "Temporary access lasts at most 90 days."
    others = {k: v for k, v in (role.inline_policies or {}).items() if k != name}
    findings = policy_lint(document, other_inline_policies_size=inline_policies_size(others))
    blocking = [f for f in findings if f.severity == "error" and f.code in BLOCKING_LINT_CODES]
    if blocking:
        errors["document"] = "; ".join(f"{f.title}: {f.detail}" for f in blocking[:5])
    if errors:
        raise RequestInvalid(errors)
    return RequestPreview(
        role=role,
        policy_name=name,
        document=document,
        previous=(role.inline_policies or {}).get(name),
        justification=justification,
        expires_at=expires_at,
        findings=findings,
    )


def policy_request_submit(*, requester: User, preview: RequestPreview) -> PolicyRequest:
    """Create the pending request and its change from a validated preview."""
    role = preview.role
    with transaction.atomic():
        request = PolicyRequest.objects.create(
            requester=requester,
            role=role,
            role_arn=role.arn,
            account=role.account,
            justification=preview.justification,
            expires_at=preview.expires_at,
        )
        Change.objects.create(
            request=request,
            position=0,
            type=Change.Type.INLINE_POLICY_PUT,
            target_arn=role.arn,
            account_id=role.account.account_id,
            payload={"policy_name": preview.policy_name, "document": preview.document},
            previous=preview.previous,
        )
        RequestEvent.objects.create(
            request=request,
            actor=requester,
            kind=RequestEvent.Kind.SUBMITTED,
            message=preview.justification,
            data={"findings": [f.as_dict() for f in preview.findings]},
        )
    return request


# --- review and apply -----------------------------------------------------------------

REASON_MAX_LENGTH = 5000
COMMENT_MAX_LENGTH = 5000


class RequestActionRefused(Exception):
    """An action on a request that its rules do not allow; nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _request_get(request_id: int) -> PolicyRequest:
    found = PolicyRequest.objects.select_related("account", "role").filter(pk=request_id).first()
    if found is None:
        raise RequestActionRefused(f"Request #{request_id} does not exist.")
    return found


def _status_claim(
    request_id: int, *, from_status: PolicyRequest.Status, to_status: PolicyRequest.Status
) -> bool:
    """Move the request from one status to another in one conditional UPDATE:
    of two callers racing, exactly one gets True."""
    claimed = PolicyRequest.objects.filter(pk=request_id, status=from_status).update(
        status=to_status, updated_at=timezone.now()
    )
    return claimed == 1


def _refuse_unless_claimed(
    request_id: int,
    *,
    from_status: PolicyRequest.Status,
    to_status: PolicyRequest.Status,
    verb: str,
) -> None:
    if not _status_claim(request_id, from_status=from_status, to_status=to_status):
        current = PolicyRequest.objects.filter(pk=request_id).values_list("status", flat=True)
        raise RequestActionRefused(
            f"Request #{request_id} is {current.first() or 'gone'}: only {from_status} "
            f"requests can be {verb}."
        )


def _event(
    request_id: int,
    kind: RequestEvent.Kind,
    *,
    actor: User | None,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> RequestEvent:
    return RequestEvent.objects.create(
        request_id=request_id, actor=actor, kind=kind, message=message, data=data or {}
    )


def _refuse_unless_reviewer(user: User, verb: str) -> None:
    from iamportal.permissions import is_reviewer

    if not is_reviewer(user):
        raise RequestActionRefused(f"Only reviewers {verb} requests.")


def _self_approval(request: PolicyRequest, reviewer: User) -> bool:
    """Whether `reviewer` is approving their own request; refused unless the
    setting lets admins do so."""
    from iamportal.permissions import is_admin

    if request.requester_id != reviewer.pk:
        return False
    if is_admin(reviewer) and settings.IAMPORTAL_ALLOW_ADMIN_SELF_APPROVAL:
        return True
    raise RequestActionRefused("Nobody approves their own request: another reviewer must.")


def _apply_enqueue(request_id: int) -> None:
    from requests_app.tasks import enqueue_policy_request_apply

    transaction.on_commit(lambda: enqueue_policy_request_apply(request_id))


def policy_request_approve(*, request_id: int, reviewer: User) -> PolicyRequest:
    """Approve a pending request and queue its apply (after the commit)."""
    _refuse_unless_reviewer(reviewer, "approve")
    with transaction.atomic():
        request = _request_get(request_id)
        self_approval = _self_approval(request, reviewer)
        _refuse_unless_claimed(
            request_id,
            from_status=PolicyRequest.Status.PENDING,
            to_status=PolicyRequest.Status.APPROVED,
            verb="approved",
        )
        _event(
            request_id,
            RequestEvent.Kind.APPROVED,
            actor=reviewer,
            message="Approved by the requester, an admin." if self_approval else "",
            data={"self_approval": True} if self_approval else {},
        )
        _apply_enqueue(request_id)
    request.refresh_from_db()
    return request


def _text_bounded(value: str, *, what: str, limit: int) -> str:
    value = (value or "").strip()
    if not value:
        raise RequestActionRefused(f"{what} is required.")
    if len(value) > limit:
        raise RequestActionRefused(f"{what} is at most {limit} characters.")
    return value


def policy_request_reject(*, request_id: int, reviewer: User, reason: str) -> PolicyRequest:
    _refuse_unless_reviewer(reviewer, "reject")
    reason = _text_bounded(reason, what="A reason for the rejection", limit=REASON_MAX_LENGTH)
    with transaction.atomic():
        request = _request_get(request_id)
        _refuse_unless_claimed(
            request_id,
            from_status=PolicyRequest.Status.PENDING,
            to_status=PolicyRequest.Status.REJECTED,
            verb="rejected",
        )
        _event(request_id, RequestEvent.Kind.REJECTED, actor=reviewer, message=reason)
    request.refresh_from_db()
    return request


def policy_request_cancel(*, request_id: int, requester: User) -> PolicyRequest:
    with transaction.atomic():
        request = _request_get(request_id)
        if request.requester_id != requester.pk:
            raise RequestActionRefused("Only the requester can cancel a request.")
        _refuse_unless_claimed(
            request_id,
            from_status=PolicyRequest.Status.PENDING,
            to_status=PolicyRequest.Status.CANCELLED,
            verb="cancelled",
        )
        Change.objects.filter(request_id=request_id, status=Change.Status.PENDING).update(
            status=Change.Status.CANCELLED
        )
        _event(request_id, RequestEvent.Kind.CANCELLED, actor=requester)
    request.refresh_from_db()
    return request


def policy_request_comment(*, request_id: int, author: User, body: str) -> Comment:
    from iamportal.permissions import is_reviewer

    body = _text_bounded(body, what="A comment", limit=COMMENT_MAX_LENGTH)
    with transaction.atomic():
        request = _request_get(request_id)
        if request.requester_id != author.pk and not is_reviewer(author):
            raise RequestActionRefused("Only the requester and reviewers comment on a request.")
        comment = Comment.objects.create(request=request, author=author, body=body)
        _event(
            request_id,
            RequestEvent.Kind.COMMENTED,
            actor=author,
            message=body,
            data={"comment_id": comment.pk},
        )
    return comment


def policy_request_retry(*, request_id: int, reviewer: User) -> PolicyRequest:
    """Send a failed request back to apply; what was already applied stays applied
    and is skipped."""
    _refuse_unless_reviewer(reviewer, "retry")
    with transaction.atomic():
        request = _request_get(request_id)
        _self_approval(request, reviewer)
        _refuse_unless_claimed(
            request_id,
            from_status=PolicyRequest.Status.FAILED,
            to_status=PolicyRequest.Status.APPROVED,
            verb="retried",
        )
        Change.objects.filter(request_id=request_id, status=Change.Status.FAILED).update(
            status=Change.Status.PENDING, error=""
        )
        _event(request_id, RequestEvent.Kind.RETRIED, actor=reviewer)
        _apply_enqueue(request_id)
    request.refresh_from_db()
    return request


def _role_name(arn: str) -> str:
    # arn:aws:iam::111111111111:role/some/path/name: the name is the last segment.
    return arn.rsplit("/", 1)[-1]


def _change_apply(iam: Any, change: Change) -> None:
    payload = change.payload if isinstance(change.payload, dict) else {}
    name = str(payload.get("policy_name", ""))
    if change.type == Change.Type.INLINE_POLICY_PUT:
        iam.put_role_policy(
            RoleName=_role_name(change.target_arn),
            PolicyName=name,
            PolicyDocument=json.dumps(payload["document"]),
        )
    elif change.type == Change.Type.INLINE_POLICY_DELETE:
        iam.delete_role_policy(RoleName=_role_name(change.target_arn), PolicyName=name)
    else:
        raise RequestActionRefused(f"Changes of type {change.type} cannot be applied yet.")


def _change_failed(change: Change, error: str) -> None:
    Change.objects.filter(pk=change.pk).update(status=Change.Status.FAILED, error=error[:5000])


def policy_request_apply(*, request_id: int) -> PolicyRequest:
    """Apply an approved request in AWS through the spoke role of its account.

    The request is claimed first (approved -> applying), so a second delivery of
    the task, or a second approval, finds nothing to do. Changes are applied in
    order and each records its own outcome; an applied change is never applied
    again. The first failure stops the apply and fails the request.
    """
    from accounts.fetch import describe_error
    from accounts.services import role_refresh
    from iamportal import aws

    if not _status_claim(
        request_id,
        from_status=PolicyRequest.Status.APPROVED,
        to_status=PolicyRequest.Status.APPLYING,
    ):
        return _request_get(request_id)
    _event(request_id, RequestEvent.Kind.APPLYING, actor=None)
    request = _request_get(request_id)
    pending = list(request.changes.filter(status__in=[Change.Status.PENDING, Change.Status.FAILED]))
    applied: list[int] = []
    error = ""
    try:
        iam = aws.client("iam", session=aws.spoke_session(request.account))
    except (ClientError, BotoCoreError) as exc:
        error = f"Could not assume the spoke role {request.account.spoke_role_arn}: "
        error += describe_error(exc)
        for change in pending:
            _change_failed(change, error)
        pending = []
    for change in pending:
        if change.account_id != request.account.account_id:
            error = "Changes in another account than the role's are not applied yet."
            _change_failed(change, error)
            break
        try:
            _change_apply(iam, change)
        except (ClientError, BotoCoreError) as exc:
            error = describe_error(exc)
            _change_failed(change, error)
            break
        except Exception as exc:
            # Never leave the request claimed: fail it, keep the details in the log.
            log.exception("applying change %s of request #%s failed", change.pk, request_id)
            error = str(exc) if isinstance(exc, RequestActionRefused) else type(exc).__name__
            error = f"Could not apply this change: {error}"
            _change_failed(change, error)
            break
        Change.objects.filter(pk=change.pk).update(
            status=Change.Status.APPLIED, error="", applied_at=timezone.now()
        )
        applied.append(change.pk)
    outcome = PolicyRequest.Status.FAILED if error else PolicyRequest.Status.APPLIED
    _status_claim(request_id, from_status=PolicyRequest.Status.APPLYING, to_status=outcome)
    _event(
        request_id,
        RequestEvent.Kind.FAILED if error else RequestEvent.Kind.APPLIED,
        actor=None,
        message=error,
        data={"applied_changes": applied},
    )
    if not error and request.role is not None:
        try:
            role_refresh(role=request.role)
        except (ClientError, BotoCoreError) as exc:
            # The change is in AWS; the next sync brings the inventory up to date.
            log.warning(
                "refresh of %s after apply failed: %s", request.role_arn, describe_error(exc)
            )
    request.refresh_from_db()
    return request
