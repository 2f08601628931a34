"""Approval policies: which one decides who approves a request, the snapshot of
its requirement stored on the request, automatic approval, and the audit of
every change an admin makes to a policy."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from iamportal.permissions import group_names
from requests_app.changes.access import payload_starts_at
from requests_app.findings import findings_errors, findings_risk
from requests_app.models import (
    Approval,
    ApprovalPolicy,
    ApprovalPolicyChange,
    Change,
    PolicyRequest,
    RequestEvent,
)
from requests_app.services.common import (
    RequestActionForbidden,
    _apply_enqueue,
    _event,
    _notify,
    _revision_refresh,
    _status_claim,
)

# The change type that grants a user a role for a while: a request holding one
# is an access request, any other a permission change.
ACCESS_CHANGE_TYPE = Change.Type.ROLE_ACCESS_GRANT.value

_SEVERITY_RANK = {"none": 0, "info": 1, "warning": 2, "error": 3}


@dataclass(frozen=True)
class RequestFacts:
    """What approval policies look at in a request."""

    account_ids: frozenset[str]
    role_arn: str
    role_tags: dict[str, str]
    change_types: tuple[str, ...]
    expires_at: datetime | None
    risk: str
    now: datetime = field(default_factory=timezone.now)
    # An access request that starts later lasts from then.
    starts_at: datetime | None = None

    @property
    def duration(self) -> timedelta | None:
        if self.expires_at is None:
            return None
        start = max(self.now, self.starts_at) if self.starts_at else self.now
        return self.expires_at - start


def _role_arn_matches(pattern: str, arn: str) -> bool:
    """Shell-style and ignoring case, as the protected-role patterns: on the whole
    ARN when the pattern is one, else on the name (path and name with a "/")."""
    pattern = pattern.strip().lower()
    arn = arn.lower()
    if pattern.startswith("arn:"):
        return fnmatch.fnmatchcase(arn, pattern)
    path_and_name = arn.partition(":role")[2]
    name = path_and_name.rpartition("/")[2]
    return fnmatch.fnmatchcase(path_and_name if "/" in pattern else name, pattern)


def _role_tag_matches(wanted: str, tags: dict[str, str]) -> bool:
    key, has_value, value = wanted.strip().partition("=")
    lowered = {str(k).lower(): str(v).lower() for k, v in (tags or {}).items()}
    if key.strip().lower() not in lowered:
        return False
    return not has_value or lowered[key.strip().lower()] == value.strip().lower()


def _duration_text(duration: timedelta) -> str:
    hours, rest = divmod(int(duration.total_seconds()), 3600)
    return f"{hours}h{rest // 60:02d}" if rest >= 60 else f"{hours}h"


def approval_policy_reasons(
    policy: ApprovalPolicy, facts: RequestFacts, *, accounts: dict[int, str]
) -> list[str] | None:
    """Why `policy` matches the request, one phrase per condition it sets; None
    when it does not. `accounts` maps the policy's account pks to account ids."""
    reasons: list[str] = []
    if accounts:
        if not facts.account_ids or not facts.account_ids <= set(accounts.values()):
            return None
        reasons.append("every account it changes is one of " + ", ".join(sorted(facts.account_ids)))
    if policy.role_arn_pattern:
        if not _role_arn_matches(policy.role_arn_pattern, facts.role_arn):
            return None
        reasons.append(f"the role matches {policy.role_arn_pattern}")
    if policy.role_tag:
        if not _role_tag_matches(policy.role_tag, facts.role_tags):
            return None
        reasons.append(f"the role is tagged {policy.role_tag}")
    access = ACCESS_CHANGE_TYPE in facts.change_types
    if policy.request_kind == ApprovalPolicy.Kind.ACCESS:
        if not access:
            return None
        reasons.append("it asks for access to a role")
    elif policy.request_kind == ApprovalPolicy.Kind.PERMISSION:
        if access:
            return None
        reasons.append("it is a permission change")
    elif policy.request_kind == ApprovalPolicy.Kind.CHANGE_TYPES:
        allowed = {str(t) for t in policy.change_types or []}
        if not facts.change_types or not set(facts.change_types) <= allowed:
            return None
        reasons.append("its changes are all " + ", ".join(sorted(allowed)))
    if policy.max_duration is not None:
        duration = facts.duration
        if duration is None or duration > policy.max_duration:
            return None
        reasons.append(f"it lasts {_duration_text(duration)}, at most {policy.max_duration}")
    if policy.max_severity:
        if _SEVERITY_RANK.get(facts.risk, 3) > _SEVERITY_RANK[policy.max_severity]:
            return None
        reasons.append(f"its highest finding is {facts.risk}, at most {policy.max_severity}")
    if policy.automatic and facts.risk == "error":
        # Error findings always need a person's acknowledgement.
        return None
    return reasons


def _fallback(facts: RequestFacts) -> dict[str, Any]:
    """Today's rule: the highest requirement of the accounts the changes touch."""
    needed = dict(
        AwsAccount.objects.filter(account_id__in=facts.account_ids).values_list(
            "account_id", "approvals_required"
        )
    )
    required = max([1, *needed.values()])
    return {
        "policy_id": None,
        "policy": None,
        "reason": (
            f"No approval policy matched: it needs the approvals its accounts require ({required})."
        ),
        "automatic": False,
        "reviewer_groups": [],
        "approvals_required": required,
    }


def approval_requirement_for(facts: RequestFacts) -> dict[str, Any]:
    """The requirement of the first enabled policy, in order, that matches; the
    accounts' rule when none does. A snapshot: stored on the request as is."""
    policies = ApprovalPolicy.objects.filter(enabled=True).prefetch_related(
        "accounts", "reviewer_groups"
    )
    for policy in policies:
        accounts = {a.pk: a.account_id for a in policy.accounts.all()}
        reasons = approval_policy_reasons(policy, facts, accounts=accounts)
        if reasons is None:
            continue
        return {
            "policy_id": policy.pk,
            "policy": policy.name,
            "reason": (
                f"Approval policy {policy.name!r} (order {policy.order}) is the first that "
                "matches"
                + (": " + "; ".join(reasons) if reasons else ": it matches every request")
                + "."
            ),
            "automatic": policy.automatic,
            "reviewer_groups": sorted(g.name for g in policy.reviewer_groups.all()),
            "approvals_required": 0 if policy.automatic else policy.approvals_required,
        }
    return _fallback(facts)


def request_facts(request: PolicyRequest) -> RequestFacts:
    changes = list(request.changes.values_list("type", "account_id"))
    access = request.changes.filter(type=ACCESS_CHANGE_TYPE).values_list("payload", flat=True)
    starts = [payload_starts_at(p) for p in access]
    role = request.role or IamRole.objects.filter(arn=request.role_arn).first()
    return RequestFacts(
        account_ids=frozenset({request.account.account_id, *(a for _, a in changes)}),
        role_arn=request.role_arn,
        role_tags=dict(role.tags or {}) if role is not None else {},
        change_types=tuple(t for t, _ in changes),
        expires_at=request.expires_at,
        risk=findings_risk(request.findings or []),
        starts_at=next((s for s in starts if s is not None), None),
    )


def _approval_requirement_store(request: PolicyRequest) -> dict[str, Any]:
    requirement = approval_requirement_for(request_facts(request))
    PolicyRequest.objects.filter(pk=request.pk).update(
        approval_policy_id=requirement["policy_id"],
        approval_requirement=requirement,
        approvals_required=max(1, requirement["approvals_required"]),
    )
    request.approval_policy_id = requirement["policy_id"]
    request.approval_requirement = requirement
    request.approvals_required = max(1, requirement["approvals_required"])
    return requirement


def _approval_requirement_decide(request: PolicyRequest) -> None:
    """Choose and store the request's approval requirement (at submit and after
    every edit, in the caller's transaction); a pending request an automatic
    policy matches is approved at once and its apply queued, with no reviewer."""
    requirement = _approval_requirement_store(request)
    if not requirement["automatic"] or findings_errors(request.findings or []):
        return
    current = _revision_refresh(request.pk)
    pending, approved = PolicyRequest.Status.PENDING, PolicyRequest.Status.APPROVED
    if not _status_claim(request.pk, from_status=pending, to_status=approved):
        return
    Approval.objects.create(
        request=request,
        reviewer=None,
        automatic=True,
        policy_name=requirement["policy"],
        revision=current,
    )
    _event(
        request.pk,
        RequestEvent.Kind.APPROVED,
        actor=None,
        message=f"Approved automatically by approval policy {requirement['policy']!r}.",
        data={
            "automatic": True,
            "policy": requirement["policy"],
            "policy_id": requirement["policy_id"],
            "reason": requirement["reason"],
            "revision": current,
        },
    )
    _apply_enqueue(request.pk)
    _notify("approved", request.pk, actor=None)
    request.status = PolicyRequest.Status.APPROVED


def approval_groups_refusal(request: PolicyRequest, reviewer: User) -> str | None:
    """Why `reviewer` may not approve under the request's approval policy; None
    when they may (the policy names no groups, or they are in one)."""
    requirement = request.approval_requirement or {}
    groups = set(requirement.get("reviewer_groups") or [])
    if not groups or group_names(reviewer) & groups:
        return None
    return (
        f"Approval policy {requirement.get('policy')!r} lets only members of "
        f"{', '.join(sorted(groups))} approve this request."
    )


def _refuse_unless_allowed_group(request: PolicyRequest, reviewer: User) -> None:
    refusal = approval_groups_refusal(request, reviewer)
    if refusal:
        raise RequestActionForbidden(refusal)


def approvals_counted(request: PolicyRequest, revision: str) -> tuple[int, bool]:
    """How many approvals of `revision` count toward the request's requirement,
    and whether it is met: distinct reviewers, never the requester unless the
    approval was recorded as an admin's self-approval, each in one of the
    policy's groups now; or, for an automatic policy, its automatic approval
    when the request has no error findings."""
    requirement = request.approval_requirement or {}
    approvals = list(request.approvals.filter(revision=revision).select_related("reviewer"))
    automatic = [a for a in approvals if a.automatic]
    if requirement.get("automatic") and automatic:
        return len(automatic), not findings_errors(request.findings or [])
    groups = set(requirement.get("reviewer_groups") or [])
    reviewers = {
        a.reviewer_id
        for a in approvals
        if a.reviewer is not None
        and (a.reviewer_id != request.requester_id or a.self_approval)
        and (not groups or group_names(a.reviewer) & groups)
    }
    return len(reviewers), len(reviewers) >= request.approvals_required


def _policy_snapshot(
    policy: ApprovalPolicy, *, accounts: Iterable[AwsAccount], groups: Iterable[Group]
) -> dict[str, Any]:
    return {
        "name": policy.name,
        "order": policy.order,
        "enabled": policy.enabled,
        "accounts": sorted(a.account_id for a in accounts),
        "role_arn_pattern": policy.role_arn_pattern,
        "role_tag": policy.role_tag,
        "request_kind": policy.request_kind,
        "change_types": list(policy.change_types or []),
        "max_duration": str(policy.max_duration) if policy.max_duration is not None else None,
        "max_severity": policy.max_severity,
        "automatic": policy.automatic,
        "reviewer_groups": sorted(g.name for g in groups),
        "approvals_required": policy.approvals_required,
    }


def _stored_snapshot(policy_id: int | None) -> dict[str, Any] | None:
    if policy_id is None:
        return None
    stored = ApprovalPolicy.objects.filter(pk=policy_id).first()
    if stored is None:
        return None
    return _policy_snapshot(
        stored, accounts=stored.accounts.all(), groups=stored.reviewer_groups.all()
    )


def approval_policy_save(
    *,
    policy: ApprovalPolicy,
    actor: User,
    accounts: Iterable[AwsAccount],
    reviewer_groups: Iterable[Group],
) -> ApprovalPolicy:
    """Create or change an approval policy and record who did it, with what it
    was before and after. Pending requests keep the requirement they were
    given: only requests submitted or edited afterwards see the change."""
    accounts = list(accounts)
    reviewer_groups = list(reviewer_groups)
    with transaction.atomic():
        before = _stored_snapshot(policy.pk)
        policy.save()
        policy.accounts.set(accounts)
        policy.reviewer_groups.set(reviewer_groups)
        after = _policy_snapshot(policy, accounts=accounts, groups=reviewer_groups)
        if before != after:
            ApprovalPolicyChange.objects.create(
                policy=policy,
                policy_name=policy.name,
                action=(
                    ApprovalPolicyChange.Action.CREATED
                    if before is None
                    else ApprovalPolicyChange.Action.CHANGED
                ),
                actor=actor,
                before=before,
                after=after,
            )
    return policy


def approval_policy_delete(*, policy: ApprovalPolicy, actor: User) -> None:
    """Delete an approval policy, recording who did and what it was. Requests it
    decided keep their snapshot."""
    with transaction.atomic():
        before = _stored_snapshot(policy.pk)
        ApprovalPolicyChange.objects.create(
            policy=None,
            policy_name=policy.name,
            action=ApprovalPolicyChange.Action.DELETED,
            actor=actor,
            before=before,
            after=None,
        )
        policy.delete()


def policy_request_approve_automatically(*, request_id: int, by: str, reason: str) -> bool:
    """Approve a pending request with no reviewer, on behalf of an admin-set
    policy that is not an approval policy (`by` names it: the right-sizing
    policy of an account in `auto` mode), and queue its apply. Refused (False)
    when the request has error findings or is no longer pending. The
    requirement stored on the request says so, so the apply job counts it."""
    with transaction.atomic():
        request = PolicyRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.status != PolicyRequest.Status.PENDING:
            return False
        if findings_errors(request.findings or []):
            return False
        requirement: dict[str, Any] = {
            "policy_id": None,
            "policy": by,
            "reason": reason,
            "automatic": True,
            "reviewer_groups": [],
            "approvals_required": 0,
        }
        PolicyRequest.objects.filter(pk=request_id).update(
            approval_policy_id=None, approval_requirement=requirement, approvals_required=1
        )
        current = _revision_refresh(request_id)
        if not _status_claim(
            request_id,
            from_status=PolicyRequest.Status.PENDING,
            to_status=PolicyRequest.Status.APPROVED,
        ):
            return False
        Approval.objects.create(
            request=request, reviewer=None, automatic=True, policy_name=by, revision=current
        )
        _event(
            request_id,
            RequestEvent.Kind.APPROVED,
            actor=None,
            message=f"Approved automatically by {by}: {reason}",
            data={"automatic": True, "policy": by, "reason": reason, "revision": current},
        )
        _apply_enqueue(request_id)
        _notify("approved", request_id, actor=None)
    return True
