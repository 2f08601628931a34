"""Submitting a permission request: the wizard's preview (a dry run), the
general form of any change types, validation, findings and creation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from iamportal.ratelimit import rate_limit_hit, retry_after_seconds
from requests_app.changes import (
    ChangeInvalid,
    ChangeSpec,
    change_slots,
    change_type,
    change_validate,
    cross_account_changes,
    protected_role_refusal,
    reserved_policy_name,
    role_protected,
)
from requests_app.findings import findings_errors, findings_risk, request_findings
from requests_app.models import Change, PolicyRequest, RequestEvent
from requests_app.policy.limits import compact_size, inline_policies_size
from requests_app.policy.lint import policy_lint
from requests_app.policy.lint_rules import BLOCKING_LINT_CODES
from requests_app.policy.names import POLICY_NAME, POLICY_NAME_MAX_LENGTH, policy_name_describe
from requests_app.services.approval import _approval_requirement_decide
from requests_app.services.common import (
    OPEN_STATUSES,
    REASON_MAX_LENGTH,
    RequestInvalid,
    _event,
    _notify,
    _revision_refresh,
)

JUSTIFICATION_MAX_LENGTH = 5000


MAX_EXPIRY = timedelta(days=90)


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
    if rate_limit_hit(
        scope="policy-tools",
        key=str(user.pk),
        limit=settings.IAMPORTAL_POLICY_TOOLS_RATE_LIMIT,
    ):
        raise PolicyToolsRateLimited(retry_after_seconds())


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


def default_policy_name(role: IamRole, *, document: dict[str, Any] | None = None) -> str:
    """A name that says what `document` grants (`iamportal-s3-read-acme-reports`)
    and that no inline policy of the role has, nor one an open request would
    add: two requests must not overwrite each other's policy. A name taken
    gets -2, -3 ... (IAM compares names ignoring case, and so does this)."""
    base = policy_name_describe(document)
    taken = {name.lower() for name in role.inline_policies or {}}
    taken |= {
        str(payload.get("policy_name")).lower()
        for payload in Change.objects.filter(
            target_arn=role.arn,
            type=Change.Type.INLINE_POLICY_PUT,
            request__status__in=OPEN_STATUSES,
        ).values_list("payload", flat=True)
        if isinstance(payload, dict)
    }
    for n in range(1, 1000):
        suffix = f"-{n}" if n > 1 else ""
        name = base[: POLICY_NAME_MAX_LENGTH - len(suffix)].rstrip("-") + suffix
        if name.lower() not in taken:
            return name
    stamp = f"-{timezone.now():%Y%m%d%H%M%S}"
    return base[: POLICY_NAME_MAX_LENGTH - len(stamp)].rstrip("-") + stamp


def _role_errors(role: IamRole) -> dict[str, str]:
    """A request about one of iamportal's own roles is refused whatever it
    changes: nothing a reviewer approves may be filed about them."""
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
    justification = (justification or "").strip()
    errors = _role_errors(role) | _justification_errors(justification) | _expiry_errors(expires_at)
    name = (policy_name or "").strip() or default_policy_name(role, document=document)
    if not POLICY_NAME.fullmatch(name):
        errors["policy_name"] = "A policy name is 1-128 letters, digits or +=,.@_- characters."
    elif refusal := reserved_policy_name(name):
        errors["policy_name"] = refusal
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
    return request_findings(role=role, changes=specs)


def _acknowledgement(findings: list[dict[str, Any]], reason: str) -> dict[str, Any] | None:
    """The record of the requester's acknowledgement of error findings; None when
    there are none. Raises RequestInvalid when they are not acknowledged."""
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


def changes_validate(*, role: IamRole, changes: Any) -> list[ChangeSpec]:
    """Validate the changes a requester describes (type, target_arn, payload) for a
    request about `role`. Raises RequestInvalid with keys such as changes[1].payload."""
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
        if item.get("type") == Change.Type.ROLE_ACCESS_GRANT:
            errors[f"{where}.type"] = (
                "Access to a role is asked for with an access request "
                "(POST /api/v1/requests/access), not as a change."
            )
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
        if change_type(spec.type).targets_role and spec.target_arn != role.arn:
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
        wanted |= change_slots(type=spec.type, target_arn=spec.target_arn, payload=spec.payload)
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
        if wanted & change_slots(
            type=change.type, target_arn=change.target_arn, payload=change.payload
        ):
            return (
                f"Request #{other.pk} ({other.status}) changes the same "
                f"{change_type(change.type).noun}"
                + (f" until {other.expires_at:%Y-%m-%d %H:%M} UTC" if other.expires_at else "")
                + ". Wait for it to finish (or expire), or ask to extend it, so that "
                "removing one never undoes the other."
            )
    return None


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
    role: IamRole | None,
    specs: list[ChangeSpec],
    justification: str,
    expires_at: datetime | None,
    findings: list[dict[str, Any]],
    acknowledgement: dict[str, Any] | None = None,
    extends: PolicyRequest | None = None,
    new_role: tuple[str, AwsAccount] | None = None,
    kind: str = PolicyRequest.Kind.PERMISSION,
) -> PolicyRequest:
    """`new_role`: (ARN, account) of the role a request creates, for a request
    about a role that is not in the inventory yet (`role` None)."""
    role_arn, account = (role.arn, role.account) if role is not None else new_role or ("", None)
    assert account is not None, "a request is about a role of the inventory or a new one"
    with transaction.atomic():
        request = PolicyRequest.objects.create(
            kind=kind,
            requester=requester,
            role=role,
            role_arn=role_arn,
            account=account,
            justification=justification,
            expires_at=expires_at,
            extends=extends,
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
        _approval_requirement_decide(request)
    return request
