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
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import IamRole
from iamportal import jobs
from requests_app import notifications
from requests_app.changes import ChangeSpec
from requests_app.models import (
    Approval,
    Change,
    Comment,
    Notification,
    PolicyRequest,
    RequestEvent,
)
from requests_app.policy.lint import policy_lint
from requests_app.revision import revision_of_request, revision_short

log = logging.getLogger(__name__)

JUSTIFICATION_MAX_LENGTH = 5000
MAX_EXPIRY = timedelta(days=90)
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


class PolicyToolsRateLimited(Exception):
    """Too many lint, generate or dry-run calls by one user this minute."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many policy checks this minute (at most "
            f"{settings.IAMPORTAL_POLICY_TOOLS_RATE_LIMIT} lint, generate and dry-run calls "
            f"per minute): try again in {retry_after} seconds."
        )
        self.message = str(self)
        self.retry_after = retry_after


def policy_tools_rate_check(*, user: User) -> None:
    """Count one lint, generation or dry run by `user`; raises PolicyToolsRateLimited
    beyond IAMPORTAL_POLICY_TOOLS_RATE_LIMIT a minute. Linting is CPU work on
    the web process: one client must not keep the workers busy."""
    from iamportal.ratelimit import rate_limit_hit, retry_after_seconds

    if rate_limit_hit(
        scope="policy-tools",
        key=str(user.pk),
        limit=settings.IAMPORTAL_POLICY_TOOLS_RATE_LIMIT,
    ):
        raise PolicyToolsRateLimited(retry_after_seconds())


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
    # The other half of cross-account grants, added by iamportal.
    automatic: list[ChangeSpec] = field(default_factory=list)

    @property
    def inline_size_after(self) -> int:
        current = self.role.inline_policies or {}
        others = {k: v for k, v in current.items() if k != self.policy_name}
        return inline_policies_size(others) + compact_size(self.document)

    @property
    def specs(self) -> list[ChangeSpec]:
        inline = ChangeSpec(
            type=Change.Type.INLINE_POLICY_PUT,
            target_arn=self.role.arn,
            account_id=self.role.account.account_id,
            payload={"policy_name": self.policy_name, "document": self.document},
            previous=self.previous,
        )
        return [inline, *self.automatic]


def compact_size(document: Any) -> int:
    return len(json.dumps(document, separators=(",", ":")))


def inline_policies_size(policies: dict[str, Any]) -> int:
    return sum(compact_size(doc) for doc in policies.values())


# Requests whose changes may still reach AWS.
OPEN_STATUSES = (
    PolicyRequest.Status.PENDING,
    PolicyRequest.Status.APPROVED,
    PolicyRequest.Status.APPLYING,
    PolicyRequest.Status.FAILED,
)


def default_policy_name(role: IamRole) -> str:
    """A name no inline policy of the role has, nor one an open request would
    add: two requests of the same day must not overwrite each other's policy."""
    stamp = timezone.now().strftime("%Y%m%d")
    taken = set(role.inline_policies or {})
    taken |= {
        str(payload.get("policy_name"))
        for payload in Change.objects.filter(
            target_arn=role.arn,
            type=Change.Type.INLINE_POLICY_PUT,
            request__status__in=OPEN_STATUSES,
        ).values_list("payload", flat=True)
        if isinstance(payload, dict)
    }
    for n in range(1, 1000):
        name = f"iamportal-{stamp}-{n}"
        if name not in taken:
            return name
    return f"iamportal-{stamp}-{timezone.now():%H%M%S}"


def _role_errors(role: IamRole) -> dict[str, str]:
    """A request about one of iamportal's own roles is refused whatever it
    changes: nothing a reviewer approves may be filed about them."""
    from requests_app.changes import protected_role_refusal, role_protected

    if role_protected(role.arn):
        return {"role": protected_role_refusal(role.name)}
    return {}


def _justification_errors(justification: str) -> dict[str, str]:
    if not justification:
        return {"justification": "Say why you need this access: reviewers decide on it."}
    if len(justification) > JUSTIFICATION_MAX_LENGTH:
        return {
            "justification": f"Keep the justification under {JUSTIFICATION_MAX_LENGTH} characters."
        }
    return {}


def _expiry_errors(expires_at: datetime | None) -> dict[str, str]:
    if expires_at is None:
        return {}
    now = timezone.now()
    if expires_at <= now:
        return {"expires_at": "The expiry must be in the future."}
    if expires_at > now + MAX_EXPIRY:
        return {"expires_at": "Temporary access lasts at most 90 days."}
    return {}


def policy_request_preview(
    *,
    role: IamRole,
    document: dict[str, Any],
    justification: str,
    policy_name: str | None = None,
    expires_at: datetime | None = None,
) -> RequestPreview:
    """Validate a request and describe what it would create. Raises RequestInvalid."""
    from requests_app.crossaccount import cross_account_changes

    justification = (justification or "").strip()
    errors = _role_errors(role) | _justification_errors(justification) | _expiry_errors(expires_at)
    name = (policy_name or "").strip() or default_policy_name(role)
    if not _POLICY_NAME.match(name):
        errors["policy_name"] = "A policy name is 1-128 letters, digits or +=,.@_- characters."
    others = {k: v for k, v in (role.inline_policies or {}).items() if k != name}
    findings = policy_lint(document, other_inline_policies_size=inline_policies_size(others))
    blocking = [f for f in findings if f.severity == "error" and f.code in BLOCKING_LINT_CODES]
    if blocking:
        errors["document"] = "; ".join(f"{f.title}: {f.detail}" for f in blocking[:5])
    if errors:
        raise RequestInvalid(errors)
    preview = RequestPreview(
        role=role,
        policy_name=name,
        document=document,
        previous=(role.inline_policies or {}).get(name),
        justification=justification,
        expires_at=expires_at,
        automatic=cross_account_changes(role=role, document=document),
    )
    overlap = _overlap_error(preview.specs, temporary=expires_at is not None)
    if overlap:
        raise RequestInvalid({"policy_name": overlap})
    preview.findings = changes_findings(role=role, specs=preview.specs)
    return preview


def policy_request_submit(
    *, requester: User, preview: RequestPreview, findings_acknowledgement: str = ""
) -> PolicyRequest:
    """Create the pending request and its changes from a validated preview. Error
    findings need `findings_acknowledgement`, the requester's reason for asking
    anyway. Raises RequestInvalid."""
    findings = [f.as_dict() for f in preview.findings]
    return _request_create(
        requester=requester,
        role=preview.role,
        specs=preview.specs,
        justification=preview.justification,
        expires_at=preview.expires_at,
        findings=findings,
        acknowledgement=_acknowledgement(findings, findings_acknowledgement),
    )


def changes_findings(*, role: IamRole, specs: list[ChangeSpec]) -> list[Any]:
    """The findings on a request's changes before it exists (a dry run shows them)."""
    from requests_app.findings import request_findings

    return request_findings(role=role, changes=specs)


def _acknowledgement(findings: list[dict[str, Any]], reason: str) -> dict[str, Any] | None:
    """The record of the requester's acknowledgement of error findings; None when
    there are none. Raises RequestInvalid when they are not acknowledged."""
    from requests_app.findings import findings_errors

    errors = findings_errors(findings)
    if not errors:
        return None
    reason = (reason or "").strip()
    if not reason:
        titles = sorted({str(f.get("title")) for f in errors})
        raise RequestInvalid(
            {
                "findings_acknowledgement": (
                    f"This request has {len(errors)} error-level finding(s) ("
                    + "; ".join(titles[:5])
                    + "). Acknowledge them, with the reason they are acceptable, to submit it: "
                    "reviewers see the reason."
                )
            }
        )
    if len(reason) > REASON_MAX_LENGTH:
        raise RequestInvalid(
            {"findings_acknowledgement": f"Keep the reason under {REASON_MAX_LENGTH} characters."}
        )
    return {
        "reason": reason,
        "findings": [
            {key: f.get(key) for key in ("change", "code", "title", "location")} for f in errors
        ],
    }


MAX_CHANGES = 20
# Changes to the principal itself: they must name the request's role.
ROLE_CHANGE_TYPES = frozenset(
    {
        Change.Type.INLINE_POLICY_PUT,
        Change.Type.INLINE_POLICY_DELETE,
        Change.Type.MANAGED_POLICY_ATTACH,
        Change.Type.MANAGED_POLICY_DETACH,
        Change.Type.TRUST_POLICY_UPDATE,
        Change.Type.TAGS_PUT,
        Change.Type.TAGS_DELETE,
        Change.Type.PERMISSIONS_BOUNDARY_PUT,
        Change.Type.PERMISSIONS_BOUNDARY_DELETE,
    }
)


def changes_validate(*, role: IamRole, changes: Any) -> list[ChangeSpec]:
    """Validate the changes a requester describes (type, target_arn, payload) for a
    request about `role`. Raises RequestInvalid with keys such as changes[1].payload."""
    from requests_app.changes import ChangeInvalid, change_validate

    if not isinstance(changes, list) or not changes:
        raise RequestInvalid({"changes": "Give a list of at least one change."})
    if len(changes) > MAX_CHANGES:
        raise RequestInvalid({"changes": f"A request holds at most {MAX_CHANGES} changes."})
    errors: dict[str, str] = {}
    specs: list[ChangeSpec] = []
    for i, item in enumerate(changes):
        where = f"changes[{i}]"
        if not isinstance(item, dict):
            errors[where] = "Each change is an object with type, target_arn and payload."
            continue
        unknown = sorted(str(k) for k in item if k not in {"type", "target_arn", "payload"})
        if unknown:
            errors[where] = f"Unknown keys: {', '.join(unknown)[:200]}."
            continue
        try:
            spec = change_validate(
                type=item.get("type"),  # type: ignore[arg-type]
                target_arn=item.get("target_arn", role.arn),
                payload=item.get("payload", {}),
            )
        except ChangeInvalid as exc:
            for key, message in exc.errors.items():
                errors[f"{where}.{key}"] = message
            continue
        if spec.type in ROLE_CHANGE_TYPES and spec.target_arn != role.arn:
            errors[f"{where}.target_arn"] = (
                f"This change is about a role: it must name the request's role {role.arn}."
            )
            continue
        if spec.account_id != role.account.account_id:
            # Everything a request changes is in its role's account, where the
            # reviewers look; iamportal alone adds the other half of a
            # cross-account grant, marked as such.
            errors[f"{where}.target_arn"] = (
                f"This is in account {spec.account_id}; a request changes only its role's "
                f"account {role.account.account_id}."
            )
            continue
        specs.append(spec)
    if errors:
        raise RequestInvalid(errors)
    return specs


def policy_request_changes_submit(
    *,
    requester: User,
    role: IamRole,
    changes: Any,
    justification: str,
    expires_at: datetime | None = None,
    dry_run: bool = False,
    findings_acknowledgement: str = "",
) -> PolicyRequest | list[ChangeSpec]:
    """Submit a request made of any change types (the API's general form). With
    dry_run, return the validated changes and create nothing. Error findings
    need `findings_acknowledgement`. Raises RequestInvalid."""
    justification = (justification or "").strip()
    errors = _role_errors(role) | _justification_errors(justification) | _expiry_errors(expires_at)
    try:
        specs = changes_validate(role=role, changes=changes)
    except RequestInvalid as exc:
        errors |= exc.errors
    if errors:
        raise RequestInvalid(errors)
    overlap = _overlap_error(specs, temporary=expires_at is not None)
    if overlap:
        raise RequestInvalid({"changes": overlap})
    if dry_run:
        return specs
    findings = [f.as_dict() for f in changes_findings(role=role, specs=specs)]
    return _request_create(
        requester=requester,
        role=role,
        specs=specs,
        justification=justification,
        expires_at=expires_at,
        findings=findings,
        acknowledgement=_acknowledgement(findings, findings_acknowledgement),
    )


def _slots(type: str, target_arn: str, payload: Any) -> set[tuple[str, str, str]]:
    """What of a principal or resource a change sets: an inline policy by name, a
    tag by key, an attachment, the boundary, a whole policy document. Statements
    merged by Sid take no slot: each request's Sids are its own."""
    payload = payload if isinstance(payload, dict) else {}
    kind = Change.Type
    if type in (kind.INLINE_POLICY_PUT, kind.INLINE_POLICY_DELETE):
        return {("inline", target_arn, str(payload.get("policy_name", "")))}
    if type in (kind.MANAGED_POLICY_ATTACH, kind.MANAGED_POLICY_DETACH):
        return {("attachment", target_arn, str(payload.get("policy_arn", "")))}
    if type == kind.TAGS_PUT and isinstance(payload.get("tags"), dict):
        return {("tag", target_arn, str(key).lower()) for key in payload["tags"]}
    if type == kind.TAGS_DELETE and isinstance(payload.get("keys"), list):
        return {("tag", target_arn, str(key).lower()) for key in payload["keys"]}
    if type in (kind.PERMISSIONS_BOUNDARY_PUT, kind.PERMISSIONS_BOUNDARY_DELETE):
        return {("boundary", target_arn, "")}
    if "statements" in payload:
        return set()
    return {("document", target_arn, "")}


# Requests whose changes are, or may yet be, in AWS.
_HOLDING = (*OPEN_STATUSES, PolicyRequest.Status.APPLIED, PolicyRequest.Status.EXPIRING)


def _overlap_error(
    specs: list[ChangeSpec], *, temporary: bool, exclude: int | None = None
) -> str | None:
    """Temporary access is taken away by putting back what was there before. So
    no two live requests may set the same thing when either is temporary: the
    one expiring would undo the other, or restore what the other replaced."""
    wanted: set[tuple[str, str, str]] = set()
    for spec in specs:
        wanted |= _slots(spec.type, spec.target_arn, spec.payload)
    if not wanted:
        return None
    others = Change.objects.filter(
        target_arn__in={slot[1] for slot in wanted}, request__status__in=_HOLDING
    ).select_related("request")
    if exclude is not None:
        others = others.exclude(request_id=exclude)
    for change in others:
        other = change.request
        if not temporary and other.expires_at is None:
            continue
        if other.expires_at is None and other.status == PolicyRequest.Status.APPLIED:
            continue  # permanent and done: part of what a temporary change restores
        if wanted & _slots(change.type, change.target_arn, change.payload):
            return (
                f"Request #{other.pk} ({other.status}) changes the same "
                f"{_slot_noun(change.type)}"
                + (f" until {other.expires_at:%Y-%m-%d %H:%M} UTC" if other.expires_at else "")
                + ". Wait for it to finish (or expire), or ask to extend it, so that "
                "removing one never undoes the other."
            )
    return None


def _slot_noun(type: str) -> str:
    kind = Change.Type
    return {
        kind.INLINE_POLICY_PUT: "inline policy",
        kind.INLINE_POLICY_DELETE: "inline policy",
        kind.TAGS_PUT: "tag",
        kind.TAGS_DELETE: "tag",
        kind.MANAGED_POLICY_ATTACH: "managed policy attachment",
        kind.MANAGED_POLICY_DETACH: "managed policy attachment",
        kind.PERMISSIONS_BOUNDARY_PUT: "permissions boundary",
        kind.PERMISSIONS_BOUNDARY_DELETE: "permissions boundary",
    }.get(Change.Type(type), "policy")


def _approvals_required(specs: list[ChangeSpec]) -> int:
    """The highest requirement of the accounts the changes touch."""
    from accounts.models import AwsAccount

    ids = {spec.account_id for spec in specs}
    needed = AwsAccount.objects.filter(account_id__in=ids).values_list(
        "approvals_required", flat=True
    )
    return max([1, *needed])


def _statements_of_request(payload: dict[str, Any], request_id: int) -> dict[str, Any]:
    """Statements iamportal adds to another account's policy get the request's
    number in their Sid: each grant is then removed on its own, and one request's
    expiry never takes away what another granted. (An extension keeps the Sids of
    the request it extends: it takes over the same statements.)"""
    statements = payload.get("statements")
    if not isinstance(statements, list):
        return payload
    return {
        **payload,
        "statements": [
            {**st, "Sid": f"{st.get('Sid', 'Iamportal')}R{request_id}"}
            if isinstance(st, dict)
            else st
            for st in statements
        ],
    }


def _change_row(
    request: PolicyRequest, position: int, spec: ChangeSpec, *, renumber: bool
) -> Change:
    return Change(
        request=request,
        position=position,
        type=spec.type,
        target_arn=spec.target_arn,
        account_id=spec.account_id,
        payload=(
            _statements_of_request(spec.payload, request.pk)
            if spec.automatic and renumber
            else spec.payload
        ),
        previous=spec.previous,
        automatic=spec.automatic,
        note=spec.note[:500],
    )


def _request_create(
    *,
    requester: User,
    role: IamRole,
    specs: list[ChangeSpec],
    justification: str,
    expires_at: datetime | None,
    findings: list[dict[str, Any]],
    acknowledgement: dict[str, Any] | None = None,
    extends: PolicyRequest | None = None,
) -> PolicyRequest:
    from requests_app.findings import findings_risk

    with transaction.atomic():
        request = PolicyRequest.objects.create(
            requester=requester,
            role=role,
            role_arn=role.arn,
            account=role.account,
            justification=justification,
            expires_at=expires_at,
            extends=extends,
            approvals_required=_approvals_required(specs),
            risk=findings_risk(findings),
            findings=findings,
        )
        Change.objects.bulk_create(
            _change_row(request, position, spec, renumber=extends is None)
            for position, spec in enumerate(specs)
        )
        request.revision = _revision_refresh(request.pk)
        _event(
            request.pk,
            RequestEvent.Kind.SUBMITTED,
            actor=requester,
            message=justification,
            data={
                "findings": findings,
                "acknowledgement": acknowledgement,
                "extends": extends.pk if extends else None,
            },
        )
        _notify("submitted", request.pk, actor=requester)
    return request


# --- review and apply -----------------------------------------------------------------

REASON_MAX_LENGTH = 5000
COMMENT_MAX_LENGTH = 5000


class RequestActionRefused(Exception):
    """An action on a request that its rules do not allow; nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestActionForbidden(RequestActionRefused):
    """Refused because of who asks, whatever state the request is in (the API's
    403; the other refusals are about the request's state, its 409)."""


class FindingsNotAcknowledged(RequestActionRefused):
    """Approving a request with error findings without acknowledging them."""


REVISION_MAX_LENGTH = 64
REVISION_STALE_MESSAGE = "The request changed since you opened it: review the new version."
REVISION_MISSING_MESSAGE = (
    "An approval names the revision it approves: open the request and review its current version."
)


class RequestRevisionStale(RequestActionRefused):
    """An approval for another revision than the request's current one (or for
    none): the reviewer did not see what would be applied. `current` is the
    revision to review."""

    def __init__(self, message: str, *, current: str) -> None:
        super().__init__(message)
        self.current = current


def _revision_refresh(request_id: int) -> str:
    """Store the revision recomputed from the request's rows; returns it. Every
    service that changes a request's changes or expiry calls it."""
    revision = revision_of_request(request_id)
    PolicyRequest.objects.filter(pk=request_id).exclude(revision=revision).update(revision=revision)
    return revision


def _request_get(request_id: int, *, lock: bool = False) -> PolicyRequest:
    rows = PolicyRequest.objects.filter(pk=request_id)
    if lock:
        rows = rows.select_for_update(of=("self",))
    found = rows.select_related("account", "role").first()
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
        raise RequestActionForbidden(f"Only reviewers {verb} requests.")


def _self_approval(request: PolicyRequest, reviewer: User) -> bool:
    """Whether `reviewer` is approving their own request; refused unless the
    setting lets admins do so."""
    from iamportal.permissions import is_admin

    if request.requester_id != reviewer.pk:
        return False
    if is_admin(reviewer) and settings.IAMPORTAL_ALLOW_ADMIN_SELF_APPROVAL:
        return True
    raise RequestActionForbidden("Nobody approves their own request: another reviewer must.")


def _apply_enqueue(request_id: int) -> None:
    """Hand the apply to the broker once the caller's transaction commits; the
    sweep hands it over again if no worker picks it up."""
    from requests_app.tasks import enqueue_policy_request_apply

    PolicyRequest.objects.filter(pk=request_id).update(enqueued_at=timezone.now(), attempts=1)
    transaction.on_commit(lambda: enqueue_policy_request_apply(request_id))


def _notify(
    kind: str, request_id: int, *, actor: User | None = None, comment_id: int | None = None
) -> None:
    """Email the people concerned: recorded in the outbox with the action (in
    the caller's transaction) and sent by a worker once that commits."""
    notifications.notification_queue(
        kind=kind,
        request_id=request_id,
        actor_id=actor.pk if actor is not None else None,
        comment_id=comment_id,
    )


def policy_request_approve(
    *, request_id: int, reviewer: User, revision: str, findings_acknowledged: bool = False
) -> PolicyRequest:
    """Record one reviewer's approval of `revision` of a pending request: the
    revision the reviewer was shown. Another revision, or none, is refused with
    RequestRevisionStale: the request changed since they opened it. A request
    with error findings is approved only with `findings_acknowledged`, recorded
    with the approval. When the request has as many distinct approvals as its
    accounts require, it becomes approved and its apply is queued (after the
    commit).

    The request row is locked while the revision is compared and approvals are
    counted, so an edit cannot slip in between, and two reviewers approving at
    once are counted one after the other and the request is approved, and
    applied, once.
    """
    _refuse_unless_reviewer(reviewer, "approve")
    with transaction.atomic():
        request = _request_get(request_id, lock=True)
        if request.status != PolicyRequest.Status.PENDING:
            raise RequestActionRefused(
                f"Request #{request_id} is {request.status}: only pending requests can be approved."
            )
        self_approval = _self_approval(request, reviewer)
        # From the rows, not the stored field: what will be applied is what counts.
        current = _revision_refresh(request_id)
        if not revision:
            raise RequestRevisionStale(REVISION_MISSING_MESSAGE, current=current)
        if revision != current:
            raise RequestRevisionStale(REVISION_STALE_MESSAGE, current=current)
        stale = _approvals_stale_withdraw(request_id, current)
        if stale:
            _event(
                request_id,
                RequestEvent.Kind.WITHDRAWN,
                actor=None,
                message=_withdrawn_text(stale, current),
                data={"reviewers": stale, "revision": current},
            )
        if request.approvals.filter(reviewer=reviewer).exists():
            raise RequestActionRefused(
                f"You have already approved request #{request_id}; another reviewer must "
                "approve it too."
            )
        acknowledged = _approval_acknowledgement(request, findings_acknowledged)
        Approval.objects.create(
            request=request, reviewer=reviewer, self_approval=self_approval, revision=current
        )
        given = request.approvals.count()
        needed = request.approvals_required
        complete = given >= needed
        _event(
            request_id,
            RequestEvent.Kind.APPROVED,
            actor=reviewer,
            message=(
                ("Approved by the requester, an admin. " if self_approval else "")
                + (f"Approval {given} of {needed}. " if needed > 1 else "")
                + (
                    f"Acknowledged {len(acknowledged)} error-level finding(s)."
                    if acknowledged
                    else ""
                )
            ).strip(),
            data={
                "self_approval": self_approval,
                "approvals": given,
                "required": needed,
                **({"findings_acknowledged": acknowledged} if acknowledged else {}),
                "revision": current,
            },
        )
        if complete:
            _refuse_unless_claimed(
                request_id,
                from_status=PolicyRequest.Status.PENDING,
                to_status=PolicyRequest.Status.APPROVED,
                verb="approved",
            )
            _apply_enqueue(request_id)
        _notify("approved", request_id, actor=reviewer)
    request.refresh_from_db()
    return request


def _approval_acknowledgement(
    request: PolicyRequest, acknowledged: bool
) -> list[dict[str, Any]] | None:
    """The error findings the reviewer acknowledges by approving; None when the
    request has none. Refused when it has some and they are not acknowledged."""
    from requests_app.findings import findings_errors

    errors = findings_errors(request.findings or [])
    if not errors:
        return None
    if not acknowledged:
        raise FindingsNotAcknowledged(
            f"Request #{request.pk} has {len(errors)} error-level finding(s): approving it "
            "needs an acknowledgement that you have read them (the checkbox on the review "
            'page, or "findings_acknowledged": true).'
        )
    return [{key: f.get(key) for key in ("change", "code", "title", "location")} for f in errors]


def _approvals_stale_withdraw(request_id: int, current: str) -> list[str]:
    """Drop the approvals given for another revision than `current` (the content
    changed by some path that did not withdraw them); returns their reviewers."""
    stale = Approval.objects.filter(request_id=request_id).exclude(revision=current)
    reviewers = list(stale.values_list("reviewer__username", flat=True))
    if reviewers:
        stale.delete()
    return reviewers


def _withdrawn_text(reviewers: list[str], current: str) -> str:
    return (
        f"Approval(s) by {', '.join(reviewers)} withdrawn: they were given for another "
        f"version of the request than the current one ({revision_short(current)})."
    )


def _text_bounded(value: str, *, what: str, limit: int) -> str:
    value = (value or "").strip()
    if not value:
        raise RequestActionRefused(f"{what} is required.")
    if len(value) > limit:
        raise RequestActionRefused(f"{what} is at most {limit} characters.")
    return value


def _pending_close(request_id: int, *, to_status: PolicyRequest.Status, verb: str) -> None:
    """End a pending request without applying it: none of its changes will be."""
    _refuse_unless_claimed(
        request_id, from_status=PolicyRequest.Status.PENDING, to_status=to_status, verb=verb
    )
    Change.objects.filter(request_id=request_id, status=Change.Status.PENDING).update(
        status=Change.Status.CANCELLED
    )


def policy_request_reject(*, request_id: int, reviewer: User, reason: str) -> PolicyRequest:
    _refuse_unless_reviewer(reviewer, "reject")
    reason = _text_bounded(reason, what="A reason for the rejection", limit=REASON_MAX_LENGTH)
    with transaction.atomic():
        request = _request_get(request_id)
        _pending_close(request_id, to_status=PolicyRequest.Status.REJECTED, verb="rejected")
        _event(request_id, RequestEvent.Kind.REJECTED, actor=reviewer, message=reason)
        _notify("rejected", request_id, actor=reviewer)
    request.refresh_from_db()
    return request


def policy_request_cancel(*, request_id: int, requester: User) -> PolicyRequest:
    with transaction.atomic():
        request = _request_get(request_id)
        if request.requester_id != requester.pk:
            raise RequestActionForbidden("Only the requester can cancel a request.")
        _pending_close(request_id, to_status=PolicyRequest.Status.CANCELLED, verb="cancelled")
        _event(request_id, RequestEvent.Kind.CANCELLED, actor=requester)
    request.refresh_from_db()
    return request


def policy_request_comment(*, request_id: int, author: User, body: str) -> Comment:
    from iamportal.permissions import is_reviewer

    body = _text_bounded(body, what="A comment", limit=COMMENT_MAX_LENGTH)
    with transaction.atomic():
        request = _request_get(request_id)
        if request.requester_id != author.pk and not is_reviewer(author):
            raise RequestActionForbidden("Only the requester and reviewers comment on a request.")
        comment = Comment.objects.create(request=request, author=author, body=body)
        _event(
            request_id,
            RequestEvent.Kind.COMMENTED,
            actor=author,
            message=body,
            data={"comment_id": comment.pk},
        )
        _notify("commented", request_id, actor=author, comment_id=comment.pk)
    return comment


def change_edit(
    *, change_id: int, editor: User, payload: Any, findings_acknowledgement: str = ""
) -> Change:
    """The requester replaces what a change of their pending request does. Its type
    and target stay; the request gets a new revision and approvals given so far
    are withdrawn, since reviewers approved something else; the reviewers who
    approved or commented are told, with the new diff. The request's findings
    are judged again; error findings need `findings_acknowledgement` as at
    submit. Raises RequestInvalid or
    RequestActionRefused."""
    from requests_app.changes import ChangeInvalid, change_validate

    with transaction.atomic():
        change = Change.objects.select_related("request").filter(pk=change_id).first()
        if change is None:
            raise RequestActionRefused(f"Change {change_id} does not exist.")
        request = _request_get(change.request_id, lock=True)
        if request.requester_id != editor.pk:
            raise RequestActionForbidden("Only the requester edits the changes of a request.")
        if request.status != PolicyRequest.Status.PENDING:
            raise RequestActionRefused(
                f"Request #{request.pk} is {request.status}: only pending requests can be edited."
            )
        if change.automatic:
            raise RequestActionRefused(
                "iamportal added this change for a cross-account grant: edit the change it "
                "follows from instead."
            )
        if request.extends_id is not None:
            raise RequestActionRefused(
                "An extension keeps the access it extends as it is: cancel it and make a new "
                "request to change what is granted."
            )
        try:
            spec = change_validate(type=change.type, target_arn=change.target_arn, payload=payload)
        except ChangeInvalid as exc:
            raise RequestInvalid(exc.errors) from None
        overlap = _overlap_error(
            [spec], temporary=request.expires_at is not None, exclude=request.pk
        )
        if overlap:
            raise RequestInvalid({"payload": overlap})
        before = change.payload
        change.payload = spec.payload
        change.previous = spec.previous
        change.save(update_fields=["payload", "previous"])
        _automatic_changes_renew(request)
        findings = _findings_store(request)
        acknowledgement = _acknowledgement(findings, findings_acknowledgement)
        revision = _revision_refresh(request.pk)
        withdrawn = request.approvals.count()
        request.approvals.all().delete()
        _event(
            request.pk,
            RequestEvent.Kind.EDITED,
            actor=editor,
            message=(
                f"Changed {change.get_type_display().lower()}"
                + (f"; {withdrawn} approval(s) withdrawn." if withdrawn else ".")
                + f" New revision {revision_short(revision)}."
            ),
            data={
                "change_id": change.pk,
                "before": before,
                "approvals_withdrawn": withdrawn,
                "findings": findings,
                "acknowledgement": acknowledgement,
                "revision": revision,
            },
        )
        _notify("edited", request.pk, actor=editor)
    return change


def _findings_store(request: PolicyRequest) -> list[dict[str, Any]]:
    """Judge the request's changes as they are now and store the findings and
    their highest severity on the request."""
    from requests_app.findings import findings_risk, request_findings

    changes = list(request.changes.all())
    findings = [
        f.as_dict()
        for f in request_findings(role=request.role, changes=changes, exclude_request_id=request.pk)
    ]
    request.findings = findings
    request.risk = findings_risk(findings)
    request.save(update_fields=["findings", "risk", "updated_at"])
    return findings


def _automatic_changes_renew(request: PolicyRequest) -> None:
    """After an edit, the other halves of cross-account grants follow the edited
    identity policies: what they no longer name is dropped, what is new is added."""
    from requests_app.crossaccount import cross_account_changes

    if request.role is None:
        return
    request.changes.filter(automatic=True).delete()
    specs: list[ChangeSpec] = []
    for change in request.changes.filter(type=Change.Type.INLINE_POLICY_PUT):
        document = change.payload.get("document") if isinstance(change.payload, dict) else None
        if isinstance(document, dict):
            specs += cross_account_changes(role=request.role, document=document)
    last = request.changes.count()
    Change.objects.bulk_create(
        _change_row(request, position, spec, renumber=True)
        for position, spec in enumerate(specs, start=last)
    )
    required = _approvals_required(
        [
            *specs,
            *(ChangeSpec(c.type, c.target_arn, c.account_id, {}) for c in request.changes.all()),
        ]
    )
    PolicyRequest.objects.filter(pk=request.pk).update(approvals_required=required)
    _revision_refresh(request.pk)


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


def _change_failed(change: Change, error: str) -> None:
    Change.objects.filter(pk=change.pk).update(status=Change.Status.FAILED, error=error[:5000])


class _Sessions:
    """Spoke sessions by account id, assumed once per apply."""

    def __init__(self) -> None:
        self._sessions: dict[str, Any] = {}

    def get(self, account_id: str) -> Any:
        from accounts.models import AwsAccount
        from iamportal import aws

        if account_id not in self._sessions:
            account = AwsAccount.objects.filter(account_id=account_id).first()
            if account is None:
                raise RequestActionRefused(f"Account {account_id} is not known to iamportal.")
            if not account.enabled:
                raise RequestActionRefused(
                    f"Account {account} is disabled in iamportal: enable it to apply changes."
                )
            try:
                self._sessions[account_id] = aws.spoke_session(account)
            except (ClientError, BotoCoreError) as exc:
                from accounts.fetch import describe_error

                raise RequestActionRefused(
                    f"Could not assume the spoke role {account.spoke_role_arn}: "
                    + describe_error(exc)
                ) from None
        return self._sessions[account_id]


def _change_run(change: Change, sessions: _Sessions, *, revert: bool) -> tuple[str, dict[str, Any]]:
    """Apply (or revert) one change; returns (error, outcome), error empty on success."""
    from accounts.fetch import describe_error
    from requests_app.changes import ChangeRefused, change_apply, change_revert

    try:
        session = sessions.get(change.account_id)
        if revert:
            change_revert(change=change, session=session)
            return "", {}
        return "", change_apply(change=change, session=session) or {}
    except (RequestActionRefused, ChangeRefused) as exc:
        return exc.message, {}
    except (ClientError, BotoCoreError) as exc:
        return describe_error(exc), {}
    except Exception as exc:
        # Never leave the request claimed: fail it, keep the details in the log.
        log.exception("change %s of request #%s failed", change.pk, change.request_id)
        return f"Could not {'undo' if revert else 'apply'} this change: {type(exc).__name__}", {}


def _changes_refused(changes: list[Change], sessions: _Sessions, lease: _WorkLease) -> str:
    """Check every change against iamportal's own roles as AWS has them now,
    before any is written: a refused change fails (its error recorded) and the
    request applies nothing. Returns the error, empty when all may go ahead."""
    from accounts.fetch import describe_error
    from requests_app.changes import ChangeRefused, change_guard

    for change in changes:
        try:
            change_guard(change=change, session=sessions.get(change.account_id))
            continue
        except (RequestActionRefused, ChangeRefused) as exc:
            error = exc.message
        except (ClientError, BotoCoreError) as exc:
            error = "Could not check which roles use it: " + describe_error(exc)
        except Exception as exc:
            # Never leave the request claimed: fail it, keep the details in the log.
            log.exception("check of change %s of request #%s failed", change.pk, change.request_id)
            error = f"Could not check this change: {type(exc).__name__}"
        with transaction.atomic():
            lease.renew()
            _change_failed(change, error)
        return error
    return ""


def _roles_refresh(request: PolicyRequest, changes: list[Change]) -> None:
    """Bring the inventory of the touched roles up to date; the next sync catches
    up if this fails."""
    from accounts.fetch import describe_error
    from accounts.services import role_refresh

    arns = {c.target_arn for c in changes if ":role/" in c.target_arn}
    for role in IamRole.objects.filter(arn__in=arns).select_related("account"):
        try:
            role_refresh(role=role)
        except (ClientError, BotoCoreError) as exc:
            log.warning("refresh of %s failed: %s", role.arn, describe_error(exc))


def _approvals_hold(request_id: int, lease: _WorkLease) -> bool:
    """Whether the claimed request's approvals are all for its current revision,
    recomputed from the rows, and from enough distinct reviewers. If not, nothing
    is applied: the stale approvals are withdrawn and the request is pending
    again, the reason in its timeline. Edits withdraw approvals themselves; this
    guards against any other way the content could have changed. Checked at
    every claim, a take-over's too. False also when the lease was lost."""
    with transaction.atomic():
        request = _request_get(request_id, lock=True)
        if request.status != lease.status or request.lease_owner != lease.owner:
            return False
        current = _revision_refresh(request_id)
        approvals = list(request.approvals.values_list("reviewer_id", "revision"))
        valid = {reviewer for reviewer, revision in approvals if revision == current}
        if len(valid) == len(approvals) and len(valid) >= request.approvals_required:
            return True
        stale = _approvals_stale_withdraw(request_id, current)
        lease.release(to_status=PolicyRequest.Status.PENDING)
        reason = _withdrawn_text(stale, current) + " " if stale else ""
        _event(
            request_id,
            RequestEvent.Kind.WITHDRAWN,
            actor=None,
            message=(
                f"Not applied: {reason}It is pending again and needs "
                f"{request.approvals_required} approval(s) of revision {revision_short(current)}; "
                f"it has {len(valid)}."
            ),
            data={"reviewers": stale, "revision": current, "approvals": len(valid)},
        )
    log.warning("request #%s was not applied: its approvals are not for its content", request_id)
    return False


def policy_request_apply(*, request_id: int) -> PolicyRequest:
    """Apply an approved request in AWS through the spoke role of each change's account.

    The request is claimed first (approved -> applying, with a lease), so a
    second delivery of the task, or a second approval, finds nothing to do while
    the lease is alive. Once it has expired (the worker died, or its task was
    lost), a redelivered or re-enqueued task takes the apply over. Then the
    approvals are checked against the content (see _approvals_hold). Changes are
    applied in order, each claimed by the lease holder and recording its own
    outcome; an applied change is skipped, so a take-over never applies twice.
    The lease is renewed between changes; a worker that lost it stops without
    writing further. The first failure stops the apply and fails the request.
    """
    claim = _work_claim(
        request_id,
        from_statuses=(PolicyRequest.Status.APPROVED,),
        to_status=PolicyRequest.Status.APPLYING,
    )
    if claim is None:
        return _request_get(request_id)
    lease, previous = claim
    if not _approvals_hold(request_id, lease):
        return _request_get(request_id)
    if previous:
        _event(
            request_id,
            RequestEvent.Kind.RECOVERED,
            actor=None,
            message=f"Taken over from the worker {previous}, which stopped: changes it had "
            "applied are skipped, the others applied now.",
            data={"worker": previous},
        )
    else:
        _event(request_id, RequestEvent.Kind.APPLYING, actor=None)
    request = _request_get(request_id)
    pending = list(request.changes.filter(status__in=APPLICABLE))
    sessions = _Sessions()
    applied: list[int] = []
    try:
        error = _changes_refused(pending, sessions, lease)
        for change in pending:
            if error:
                break
            if not lease.change_claim(change.pk, statuses=APPLICABLE):
                continue  # applied by the worker this one took over from
            error, outcome = _change_run(change, sessions, revert=False)
            if error:
                lease.change_record(change.pk, status=Change.Status.FAILED, error=error[:5000])
                break
            lease.change_record(
                change.pk,
                status=Change.Status.APPLIED,
                error="",
                applied_at=timezone.now(),
                outcome=outcome,
            )
            applied.append(change.pk)
        outcome_status = PolicyRequest.Status.FAILED if error else PolicyRequest.Status.APPLIED
        with transaction.atomic():
            lease.release(to_status=outcome_status)
            _event(
                request_id,
                RequestEvent.Kind.FAILED if error else RequestEvent.Kind.APPLIED,
                actor=None,
                message=error,
                data={"applied_changes": applied},
            )
            if not error and request.extends_id is not None:
                _extension_hand_over(request)
            _notify("failed" if error else "applied", request_id)
    except WorkLeaseLost as exc:
        log.warning("%s; stopping", exc)
        return _request_get(request_id)
    if applied or previous:
        _roles_refresh(request, list(request.changes.filter(status=Change.Status.APPLIED)))
    request.refresh_from_db()
    return request


# --- leases on background work ----------------------------------------------------------

# Changes an apply still has to make; a retry sends failed ones back as well.
APPLICABLE = (Change.Status.PENDING, Change.Status.FAILED)


class WorkLeaseLost(Exception):
    """Another worker took the request's work over (this one's lease had
    expired): this one must stop without writing anything more."""


def _lease_duration() -> timedelta:
    return timedelta(seconds=settings.IAMPORTAL_WORK_LEASE_SECONDS)


def _lapsed(now: datetime) -> Q:
    return Q(lease_expires_at__lt=now) | Q(lease_expires_at=None)


@dataclass
class _WorkLease:
    """A worker's hold on a request's apply or expiry: renewed between changes,
    and every write the worker makes is conditional on still holding it."""

    request_id: int
    owner: str
    status: PolicyRequest.Status

    def _held(self) -> Any:
        return PolicyRequest.objects.filter(
            pk=self.request_id, status=self.status, lease_owner=self.owner
        )

    def renew(self) -> None:
        now = timezone.now()
        if not self._held().update(heartbeat_at=now, lease_expires_at=now + _lease_duration()):
            raise WorkLeaseLost(f"request #{self.request_id} is no longer held by {self.owner}")

    def change_claim(self, change_id: int, *, statuses: tuple[str, ...]) -> bool:
        """Claim one change to run. Inside the renewal's row lock: only the lease
        holder claims, so two workers never run a change at once. False when the
        change is no longer in `statuses` (done by an earlier holder): skip it."""
        with transaction.atomic():
            self.renew()
            return bool(
                Change.objects.filter(pk=change_id, status__in=statuses).update(
                    claimed_by=self.owner
                )
            )

    def change_record(self, change_id: int, **fields: Any) -> None:
        """Record the outcome of a change this worker ran, unless a worker that
        took over has claimed it since (then that one records it)."""
        if not Change.objects.filter(pk=change_id, claimed_by=self.owner).update(**fields):
            raise WorkLeaseLost(f"change {change_id} is no longer held by {self.owner}")

    def release(self, *, to_status: PolicyRequest.Status, **fields: Any) -> None:
        """The final status write, only while still holding the lease."""
        released = self._held().update(
            status=to_status,
            lease_owner="",
            heartbeat_at=None,
            lease_expires_at=None,
            updated_at=timezone.now(),
            **fields,
        )
        if not released:
            raise WorkLeaseLost(f"request #{self.request_id} is no longer held by {self.owner}")


def _work_claim(
    request_id: int,
    *,
    from_statuses: tuple[PolicyRequest.Status, ...],
    to_status: PolicyRequest.Status,
    **fresh: Any,
) -> tuple[_WorkLease, str] | None:
    """Claim a request's work in one conditional UPDATE: from one of
    `from_statuses` (`fresh` fields are set too), or already in `to_status`
    under an expired lease (its worker died: this one takes over). Returns the
    lease and the worker taken over from (empty for a fresh claim); None when
    there is nothing to do or another worker holds it."""
    now = timezone.now()
    owner = jobs.worker_id()
    row = PolicyRequest.objects.filter(pk=request_id).values("status", "lease_owner").first()
    if row is None:
        return None
    lease = {
        "status": to_status,
        "lease_owner": owner,
        "heartbeat_at": now,
        "lease_expires_at": now + _lease_duration(),
        "updated_at": now,
    }
    rows = PolicyRequest.objects.filter(pk=request_id, status=row["status"])
    if row["status"] in from_statuses:
        claimed = rows.update(**lease, **fresh)
        previous = ""
    elif row["status"] == to_status:
        claimed = rows.filter(_lapsed(now), lease_owner=row["lease_owner"]).update(**lease)
        previous = row["lease_owner"] or "unknown"
    else:
        return None
    if not claimed:
        return None
    return _WorkLease(request_id=request_id, owner=owner, status=to_status), previous


# --- temporary access -----------------------------------------------------------------


def _extension_hand_over(extension: PolicyRequest) -> None:
    """The extension now holds the access: the request it extends must not take it
    away when its own expiry comes."""
    if extension.extends_id is None:
        return
    if _status_claim(
        extension.extends_id,
        from_status=PolicyRequest.Status.APPLIED,
        to_status=PolicyRequest.Status.EXPIRED,
    ):
        _event(
            extension.extends_id,
            RequestEvent.Kind.EXTENDED,
            actor=None,
            message=f"Extended by request #{extension.pk}, which keeps the access until "
            f"{extension.expires_at:%Y-%m-%d %H:%M} UTC.",
            data={"extension": extension.pk},
        )


def policy_request_extend(
    *, request_id: int, requester: User, expires_at: datetime | None, justification: str
) -> PolicyRequest:
    """Ask to keep temporary access longer: a new pending request, linked to the old
    one, with the same changes and a later expiry. Reviewers decide on it as on any
    request; until it is applied the old expiry stands."""
    justification = (justification or "").strip()
    errors = _justification_errors(justification) | _expiry_errors(expires_at)
    if expires_at is None:
        errors["expires_at"] = "Give the new expiry."
    with transaction.atomic():
        old = _request_get(request_id, lock=True)
        if old.requester_id != requester.pk:
            raise RequestActionForbidden("Only the requester asks to extend their access.")
        if old.status != PolicyRequest.Status.APPLIED or old.expires_at is None:
            raise RequestActionRefused(
                "Only applied temporary access can be extended, before it expires."
            )
        if expires_at is not None and expires_at <= old.expires_at:
            errors["expires_at"] = "The new expiry must be later than the current one."
        if errors:
            raise RequestInvalid(errors)
        if old.extensions.filter(status=PolicyRequest.Status.PENDING).exists():
            raise RequestActionRefused(
                "An extension of this request is already waiting for review."
            )
        role = old.role
        if role is None:
            raise RequestActionRefused("The role of this request is no longer in the inventory.")
        specs = [
            ChangeSpec(
                type=c.type,
                target_arn=c.target_arn,
                account_id=c.account_id,
                payload=c.payload,
                # What was there before the access was first granted, so that
                # expiry restores it rather than the granted state.
                previous=c.previous,
                automatic=c.automatic,
                note=c.note,
            )
            for c in old.changes.filter(status=Change.Status.APPLIED)
        ]
        overlap = _overlap_error(specs, temporary=True, exclude=old.pk)
        if overlap:
            raise RequestInvalid({"expires_at": overlap})
        # The same changes, judged again on the role as it is now; their error
        # findings were acknowledged when first submitted, and approving the
        # extension needs its own acknowledgement.
        return _request_create(
            requester=requester,
            role=role,
            specs=specs,
            justification=justification,
            expires_at=expires_at,
            findings=[f.as_dict() for f in changes_findings(role=role, specs=specs)],
            extends=old,
        )


EXPIRABLE = (PolicyRequest.Status.APPLIED, PolicyRequest.Status.FAILED)


def _status_after_expiry_failure(request_id: int) -> PolicyRequest.Status:
    """Where a request goes back to when its access could not be removed (yet)."""
    failed = Change.objects.filter(request_id=request_id, status=Change.Status.FAILED).exists()
    return PolicyRequest.Status.FAILED if failed else PolicyRequest.Status.APPLIED


def policy_request_expire(*, request_id: int) -> PolicyRequest:
    """Take temporary access away: undo the applied changes, last first (a failed
    request may have some). Claimed (-> expiring, with a lease, as an apply) so
    two sweeps never both undo; a worker that died mid-way is taken over once
    its lease expired, and reverted changes are skipped. When AWS refuses, the
    request goes back to where it was and the next sweep tries again."""
    status = PolicyRequest.objects.filter(pk=request_id).values_list("status", flat=True).first()
    claim = _work_claim(
        request_id,
        from_statuses=EXPIRABLE,
        to_status=PolicyRequest.Status.EXPIRING,
        attempts=1,
        enqueued_at=timezone.now(),
    )
    if claim is None:
        return _request_get(request_id)
    lease, previous = claim
    back = (
        PolicyRequest.Status(status)
        if status in EXPIRABLE
        else _status_after_expiry_failure(request_id)
    )
    request = _request_get(request_id)
    applied = list(request.changes.filter(status=Change.Status.APPLIED).order_by("-position"))
    sessions = _Sessions()
    error = ""
    try:
        for change in applied:
            if not lease.change_claim(change.pk, statuses=(Change.Status.APPLIED,)):
                continue
            error, _ = _change_run(change, sessions, revert=True)
            if error:
                lease.change_record(change.pk, error=f"Not removed: {error}"[:5000])
                break
            lease.change_record(change.pk, status=Change.Status.REVERTED, error="")
        with transaction.atomic():
            if error:
                lease.release(to_status=back)
                _event(request_id, RequestEvent.Kind.EXPIRY_FAILED, actor=None, message=error)
            else:
                lease.release(to_status=PolicyRequest.Status.EXPIRED)
                _event(
                    request_id,
                    RequestEvent.Kind.EXPIRED,
                    actor=None,
                    message=f"Taken over from the worker {previous}, which stopped."
                    if previous
                    else "",
                )
                _notify("expired", request_id)
    except WorkLeaseLost as exc:
        log.warning("%s; stopping", exc)
        return _request_get(request_id)
    _roles_refresh(request, applied)
    request.refresh_from_db()
    return request


def policy_requests_due_to_expire(*, now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    return list(
        PolicyRequest.objects.filter(status__in=EXPIRABLE, expires_at__lte=now).values_list(
            "pk", flat=True
        )
    )


# --- the sweep: work whose task was lost or whose worker died ---------------------------


def requests_work_recover() -> dict[str, int]:
    """The sweep (every minute): hand work no worker is doing to the broker again.

    - applying or expiring under an expired lease: its worker died, so its task
      is gone: re-enqueued at once, once per expiry (the task takes it over);
    - approved (or re-enqueued and still not picked up) for longer than
      IAMPORTAL_WORK_REQUEUE_SECONDS while the broker holds nothing else (with a
      backlog, its task may simply be waiting its turn);
    - after IAMPORTAL_APPLY_MAX_ATTEMPTS hand-overs, it gives up: an apply fails
      (a reviewer can Retry), an expiry goes back for the next expiry sweep;
    - emails of the outbox likewise, up to IAMPORTAL_NOTIFICATION_MAX_ATTEMPTS.
    """
    now = timezone.now()
    backlog = jobs.broker_backlog()
    outcome = {"requeued": 0, "failed": 0, "returned": 0, "emails_requeued": 0, "emails_failed": 0}
    due = _work_due(now=now, backlog=backlog)
    for pk in PolicyRequest.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:1000]:
        result = _request_work_recover(request_id=pk, due=due, now=now)
        if result:
            outcome[result] += 1
    due = _emails_due(now=now, backlog=backlog)
    for pk in Notification.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:1000]:
        result = _notification_recover(notification_id=pk, due=due, now=now)
        if result:
            outcome[result] += 1
    return outcome


def _requeue_due(*, now: datetime, backlog: int | None, waiting: Q, running: Q, since: str) -> Q:
    """Rows whose task must be handed over again: `running` ones whose lease
    expired since their last hand-over (at once), and, while the broker has no
    backlog, `waiting` or lapsed ones handed over longer ago than the requeue
    delay (rows from before hand-overs were recorded: `since` stands in)."""
    requeue = now - timedelta(seconds=settings.IAMPORTAL_WORK_REQUEUE_SECONDS)
    lapsed = running & (
        Q(lease_expires_at__lt=now)
        # Claimed before leases existed: judged by the last change of the row.
        | Q(lease_expires_at=None, **{f"{since}__lt": now - _lease_duration()})
    )
    never_requeued = Q(enqueued_at=None) | Q(enqueued_at__lt=F("lease_expires_at"))
    due = lapsed & never_requeued
    if backlog == 0:
        stale = Q(enqueued_at__lt=requeue) | Q(enqueued_at=None, **{f"{since}__lt": requeue})
        due |= (waiting | lapsed) & stale
    return due


def _work_due(*, now: datetime, backlog: int | None) -> Q:
    return _requeue_due(
        now=now,
        backlog=backlog,
        waiting=Q(status=PolicyRequest.Status.APPROVED) & _lapsed(now),
        running=Q(status__in=[PolicyRequest.Status.APPLYING, PolicyRequest.Status.EXPIRING]),
        since="updated_at",
    )


def _emails_due(*, now: datetime, backlog: int | None) -> Q:
    pending = Q(status=Notification.Status.PENDING)
    return _requeue_due(
        now=now,
        backlog=backlog,
        waiting=pending & Q(lease_expires_at=None),
        running=pending & Q(lease_expires_at__isnull=False),
        since="created_at",
    )


def _request_work_recover(*, request_id: int, due: Q, now: datetime) -> str | None:
    from requests_app.tasks import enqueue_policy_request_apply, enqueue_policy_request_expire

    with transaction.atomic():
        # skip_locked: a request being claimed or written right now is not lost.
        request = (
            PolicyRequest.objects.select_for_update(skip_locked=True)
            .filter(due, pk=request_id)
            .only("pk", "status", "attempts", "lease_owner")
            .first()
        )
        if request is None:
            return None
        expiring = request.status == PolicyRequest.Status.EXPIRING
        if request.attempts >= settings.IAMPORTAL_APPLY_MAX_ATTEMPTS:
            if expiring:
                _expiry_give_up(request, now=now)
                return "returned"
            _apply_give_up(request, now=now)
            return "failed"
        PolicyRequest.objects.filter(pk=request_id).update(
            attempts=F("attempts") + 1, enqueued_at=now
        )
        enqueue = enqueue_policy_request_expire if expiring else enqueue_policy_request_apply
        transaction.on_commit(lambda: enqueue(request_id))
    log.info(
        "request #%s handed to the broker again (attempt %s)", request_id, request.attempts + 1
    )
    return "requeued"


def _give_up_cause(request: PolicyRequest, doing: str) -> str:
    if request.status == PolicyRequest.Status.APPROVED:
        return (
            f"no worker started it within {settings.IAMPORTAL_WORK_REQUEUE_SECONDS} s "
            "(is a qcluster running?)"
        )
    return f"the worker {doing} ({request.lease_owner or 'unknown'}) stopped without finishing"


def _apply_give_up(request: PolicyRequest, *, now: datetime) -> None:
    """Fail an apply no worker could finish, for a reviewer to retry."""
    cause = _give_up_cause(request, "applying it")
    message = (
        f"Gave up after {request.attempts} attempts: {cause}. Changes not marked as applied "
        "can be applied again with Retry; applying a change twice is harmless."
    )
    PolicyRequest.objects.filter(pk=request.pk, status=request.status).update(
        status=PolicyRequest.Status.FAILED,
        lease_owner="",
        heartbeat_at=None,
        lease_expires_at=None,
        updated_at=now,
    )
    Change.objects.filter(request_id=request.pk, status=Change.Status.PENDING).update(
        status=Change.Status.FAILED, error="Not applied: the worker stopped."
    )
    _event(
        request.pk,
        RequestEvent.Kind.FAILED,
        actor=None,
        message=message,
        data={"attempts": request.attempts, "worker": request.lease_owner},
    )
    _notify("failed", request.pk)
    log.warning("request #%s: %s", request.pk, message)


def _expiry_give_up(request: PolicyRequest, *, now: datetime) -> None:
    """Send an expiry no worker could finish back, for the next expiry sweep."""
    cause = _give_up_cause(request, "removing this access")
    message = f"Gave up after {request.attempts} attempts: {cause}; the next sweep tries again."
    PolicyRequest.objects.filter(pk=request.pk, status=request.status).update(
        status=_status_after_expiry_failure(request.pk),
        lease_owner="",
        heartbeat_at=None,
        lease_expires_at=None,
        attempts=0,
        updated_at=now,
    )
    _event(request.pk, RequestEvent.Kind.RECOVERED, actor=None, message=message)
    log.warning("request #%s: %s", request.pk, message)


def _notification_recover(*, notification_id: int, due: Q, now: datetime) -> str | None:
    from requests_app.tasks import enqueue_notification_send

    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(due, pk=notification_id)
            .only("pk", "attempts", "last_error", "lease_owner", "lease_expires_at")
            .first()
        )
        if notification is None:
            return None
        if notification.attempts >= settings.IAMPORTAL_NOTIFICATION_MAX_ATTEMPTS:
            cause = notification.last_error or "no worker sent it"
            Notification.objects.filter(pk=notification_id).update(
                status=Notification.Status.FAILED,
                last_error=f"Gave up after {notification.attempts} attempts: {cause}"[:2000],
                lease_owner="",
                lease_expires_at=None,
            )
            log.warning(
                "email %s: gave up after %s attempts", notification_id, notification.attempts
            )
            return "emails_failed"
        Notification.objects.filter(pk=notification_id).update(
            attempts=F("attempts") + 1, enqueued_at=now
        )
        transaction.on_commit(lambda: enqueue_notification_send(notification_id))
    return "emails_requeued"
