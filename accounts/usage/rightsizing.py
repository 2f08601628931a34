"""Right-sizing: what a role has not used past its account's window, the notice
that tells its users and owners what will be removed and when, and the
ordinary removal request filed when the notice runs out.

Judged right after each Access Advisor pass, on the data that pass read:
stale data (an old pass, a role the pass could not read) is never acted on.
Exempt, always: roles tagged with the policy's exemption tag, roles younger
than the window, service-linked roles, iamportal's own roles, and permissions
granted less than the grace period ago (from the role's history). Using a
service again, or an exemption, cancels a pending notice."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.forms.models import model_to_dict
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, IamRole, RoleVersion
from accounts.selectors import protected_role_ids
from accounts.usage import enqueue
from accounts.usage.models import (
    RemovalNotice,
    RightsizingPolicy,
    RightsizingPolicyChange,
    ServiceUsage,
)
from accounts.usage.selectors import (
    Grant,
    latest_pass,
    rightsizing_policy_for,
    role_freshness,
    role_grants,
    unused_days,
)
from brokering.selectors import users_for_role
from requests_app.models import Change, PolicyRequest
from requests_app.notifications import site_url
from requests_app.policy.usage import (
    document_only,
    document_without,
    granted_actions,
    granted_namespaces,
)
from requests_app.services import (
    RequestInvalid,
    policy_request_approve_automatically,
    policy_request_changes_submit,
)

log = logging.getLogger(__name__)

SYSTEM_REQUESTER = "iamportal-rightsizing"
SERVICE_LINKED_PATH = "/aws-service-role/"
EMAIL_LEASE = timedelta(minutes=5)


# --- the policy, audited -------------------------------------------------------------

_POLICY_FIELDS = ("account", "mode", "window_days", "notice_days", "grant_grace_days", "exempt_tag")


def _snapshot(policy: RightsizingPolicy | None) -> dict[str, Any] | None:
    if policy is None or policy.pk is None:
        return None
    return {k: v for k, v in model_to_dict(policy, fields=_POLICY_FIELDS).items()}


def rightsizing_policy_save(*, policy: RightsizingPolicy, actor: User) -> RightsizingPolicy:
    """Create or change a right-sizing policy, recording who did it and what it
    was before and after."""
    with transaction.atomic():
        stored = RightsizingPolicy.objects.filter(pk=policy.pk).first() if policy.pk else None
        before = _snapshot(stored)
        policy.save()
        after = _snapshot(policy)
        if before != after:
            RightsizingPolicyChange.objects.create(
                policy=policy,
                label=str(policy),
                action="created" if before is None else "changed",
                actor=actor,
                before=before,
                after=after,
            )
    return policy


def rightsizing_policy_delete(*, policy: RightsizingPolicy, actor: User) -> None:
    with transaction.atomic():
        RightsizingPolicyChange.objects.create(
            policy=None,
            label=str(policy),
            action="deleted",
            actor=actor,
            before=_snapshot(policy),
            after=None,
        )
        policy.delete()


# --- what is unused ------------------------------------------------------------------


def _tag_exempts(tag: str, tags: dict[str, Any]) -> bool:
    key, _, value = tag.strip().partition("=")
    if not key:
        return False
    lowered = {str(k).lower(): str(v).lower() for k, v in (tags or {}).items()}
    found = lowered.get(key.strip().lower())
    return found is not None and (not value or found == value.strip().lower())


def role_exemption(
    role: IamRole, *, policy: RightsizingPolicy, protected: bool, now: datetime
) -> str:
    """Why nothing of `role` may be removed; empty when something may."""
    if policy.exempt_tag and _tag_exempts(policy.exempt_tag, role.tags):
        return f"The role is tagged {policy.exempt_tag}."
    if role.path.startswith(SERVICE_LINKED_PATH):
        return "Service-linked roles are AWS's own."
    if protected:
        return "iamportal's own roles are never changed."
    created = role.created_in_aws_at
    if created is None or created > now - timedelta(days=policy.window_days):
        return f"The role is younger than the {policy.window_days}-day window."
    return ""


def _granted_since(
    grant: Grant, namespace: str, versions: list[RoleVersion], role: IamRole
) -> datetime | None:
    """Since when `grant` has granted `namespace` without a break, from the role's
    history; the role's creation when it has since iamportal first saw it."""
    since: datetime | None = None
    for version in versions:
        if grant.kind == "inline":
            if version.part != RoleVersion.Part.INLINE or version.key != grant.key:
                continue
            holds = namespace in granted_namespaces(version.document)
        else:
            if version.part != RoleVersion.Part.MANAGED:
                continue
            holds = grant.key in [str(a) for a in version.document or []]
        if not holds:
            since = None
        elif since is None:
            first_seen = version.source == RoleVersion.Source.FIRST_SEEN
            since = role.created_in_aws_at if first_seen else version.recorded_at
    return since if since is not None else role.created_in_aws_at


@dataclass(frozen=True)
class Removal:
    kind: str
    key: str
    label: str
    services: tuple[str, ...]
    actions: tuple[str, ...]
    shared: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "label": self.label,
            "services": list(self.services),
            "actions": list(self.actions),
            "shared": self.shared,
        }


def role_removals(
    role: IamRole,
    *,
    policy: RightsizingPolicy,
    usage: list[ServiceUsage],
    versions: list[RoleVersion],
    now: datetime,
) -> list[Removal]:
    """What of `role` is unused past the window and outside the grace period,
    per policy. Policies iamportal cannot cut (AWS-managed ones, whose document
    it does not hold, and those allowing every action) are left out."""
    window = policy.window_days
    grace = now - timedelta(days=policy.grant_grace_days)
    unused_services = {
        row.namespace
        for row in usage
        if unused_days(row.last_accessed_at, now=now, window=window) is not None
    }
    unused_actions: set[str] = set()
    for row in usage:
        if row.namespace in unused_services:
            continue
        for action in row.actions or []:
            last = action.get("last_accessed_at")
            when = datetime.fromisoformat(last) if last else None
            if unused_days(when, now=now, window=window) is not None:
                unused_actions.add(str(action.get("action", "")).lower())
    found = []
    for grant in role_grants(role):
        namespaces = granted_namespaces(grant.document)
        if grant.document is None or "*" in namespaces:
            continue

        def settled(namespace: str, grant: Grant = grant) -> bool:
            since = _granted_since(grant, namespace, versions, role)
            return since is not None and since <= grace

        services = sorted(ns for ns in namespaces & unused_services if settled(ns))
        actions = sorted(
            action
            for ns in namespaces - unused_services
            for action in granted_actions(grant.document, ns) & unused_actions
            if settled(ns)
        )
        if services or actions:
            found.append(
                Removal(
                    grant.kind,
                    grant.key,
                    grant.label,
                    tuple(services),
                    tuple(actions),
                    grant.shared,
                )
            )
    return found


def _narrowed(noticed: list[dict[str, Any]], now: list[Removal]) -> list[dict[str, Any]]:
    """What was noticed and is still unused: a notice never removes more than it
    announced."""
    current = {(r.kind, r.key): r for r in now}
    kept = []
    for item in noticed:
        removal = current.get((str(item.get("kind")), str(item.get("key"))))
        if removal is None:
            continue
        services = sorted(set(item.get("services", [])) & set(removal.services))
        actions = sorted(set(item.get("actions", [])) & set(removal.actions))
        if services or actions:
            kept.append({**item, "services": services, "actions": actions})
    return kept


# --- the judgement after a pass ---------------------------------------------------------


def rightsizing_evaluate(*, account: AwsAccount, now: datetime | None = None) -> dict[str, int]:
    """Judge every role of `account` on its latest Access Advisor data: give
    notice of unused permissions, cancel notices whose permissions were used
    or became exempt, and file the removal request of notices that ran out."""
    now = now or timezone.now()
    policy = rightsizing_policy_for(account)
    run = latest_pass(account)
    outcome = {"noticed": 0, "cancelled": 0, "filed": 0, "stale": 0}
    roles = list(IamRole.objects.filter(account=account).select_related("account"))
    protected = protected_role_ids(roles)
    usage: dict[int, list[ServiceUsage]] = {}
    for row in ServiceUsage.objects.filter(role__account=account):
        usage.setdefault(row.role_id, []).append(row)
    notices = {
        n.role_id: n
        for n in RemovalNotice.objects.filter(
            role__account=account, status=RemovalNotice.Status.PENDING
        )
    }
    versions: dict[int, list[RoleVersion]] = {}
    wanted = [r.pk for r in roles if r.pk in usage]
    for version in RoleVersion.objects.filter(
        role_id__in=wanted, part__in=[RoleVersion.Part.INLINE, RoleVersion.Part.MANAGED]
    ).order_by("recorded_at", "id"):
        if version.role_id is not None:  # a deleted role's versions have none; never here
            versions.setdefault(version.role_id, []).append(version)
    for role in roles:
        notice = notices.get(role.pk)
        if role_freshness(role, run=run, now=now).stale:
            outcome["stale"] += 1
            continue  # never acted on: neither noticed, cancelled nor filed
        exemption = role_exemption(role, policy=policy, protected=role.pk in protected, now=now)
        if policy.mode == RightsizingPolicy.Mode.REPORT:
            exemption = exemption or "The account's right-sizing policy only reports."
        removals = (
            []
            if exemption
            else role_removals(
                role,
                policy=policy,
                usage=usage.get(role.pk, []),
                versions=versions.get(role.pk, []),
                now=now,
            )
        )
        if notice is None:
            if removals:
                _notice_give(role, removals, policy=policy, now=now)
                outcome["noticed"] += 1
            continue
        kept = _narrowed(notice.removals, removals)
        if not kept:
            _notice_close(
                notice,
                RemovalNotice.Status.CANCELLED,
                exemption or "The permissions were used again.",
            )
            outcome["cancelled"] += 1
        elif notice.remove_after <= now:
            if _notice_file(notice, kept, role=role, policy=policy):
                outcome["filed"] += 1
            else:
                outcome["cancelled"] += 1
        elif kept != notice.removals:
            RemovalNotice.objects.filter(pk=notice.pk, status=RemovalNotice.Status.PENDING).update(
                removals=kept
            )
    return outcome


def _notice_give(
    role: IamRole, removals: list[Removal], *, policy: RightsizingPolicy, now: datetime
) -> RemovalNotice:
    with transaction.atomic():
        notice = RemovalNotice.objects.create(
            role=role,
            removals=[r.as_dict() for r in removals],
            created_at=now,
            remove_after=now + timedelta(days=policy.notice_days),
        )
        transaction.on_commit(lambda: enqueue.notice_email(notice.pk))
    return notice


def _notice_close(
    notice: RemovalNotice, status: str, reason: str, number: int | None = None
) -> None:
    RemovalNotice.objects.filter(pk=notice.pk, status=RemovalNotice.Status.PENDING).update(
        status=status, reason=reason[:500], closed_at=timezone.now(), request_number=number
    )


def system_requester() -> User:
    """The requester of removal requests: no person, no sign-in."""
    user, created = User.objects.get_or_create(
        username=SYSTEM_REQUESTER,
        defaults={"first_name": "iamportal", "last_name": "right-sizing", "is_active": False},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _inline_name(name: str) -> str:
    return re.sub(r"[^\w+=,.@-]", "-", f"rightsized-{name}")[:128]


def removal_changes(role: IamRole, removals: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes (existing change types) that remove `removals` from `role` as
    the inventory has it now."""
    grants = {(g.kind, g.key): g for g in role_grants(role)}
    changes: list[dict[str, Any]] = []
    for item in removals:
        grant = grants.get((item["kind"], item["key"]))
        if grant is None or grant.document is None:
            continue
        services, actions = item.get("services", []), item.get("actions", [])
        cut = document_without(grant.document, services=services, actions=actions)
        if cut == grant.document:
            continue
        if grant.kind == "inline":
            if cut is None:
                changes.append(
                    {
                        "type": Change.Type.INLINE_POLICY_DELETE,
                        "payload": {"policy_name": grant.key},
                    }
                )
            else:
                changes.append(
                    {
                        "type": Change.Type.INLINE_POLICY_PUT,
                        "payload": {"policy_name": grant.key, "document": cut},
                    }
                )
        elif not grant.shared and cut is not None:
            changes.append(
                {
                    "type": Change.Type.MANAGED_POLICY_VERSION,
                    "target_arn": grant.key,
                    "payload": {"document": cut},
                }
            )
        else:
            # Shared with other roles (or nothing left): this role lets go of it
            # and keeps what it used in an inline policy of its own.
            changes.append(
                {"type": Change.Type.MANAGED_POLICY_DETACH, "payload": {"policy_arn": grant.key}}
            )
            used = granted_namespaces(grant.document) - set(services)
            kept = document_only(cut or {}, services=used) if used else None
            if kept is not None:
                changes.append(
                    {
                        "type": Change.Type.INLINE_POLICY_PUT,
                        "payload": {
                            "policy_name": _inline_name(grant.key.rsplit("/", 1)[-1]),
                            "document": kept,
                        },
                    }
                )
    for change in changes:
        change.setdefault("target_arn", role.arn)
    return changes


def _removal_text(removals: list[dict[str, Any]]) -> str:
    parts = []
    for item in removals:
        what = ", ".join([*item.get("services", []), *item.get("actions", [])])
        parts.append(f"{item.get('label')}: {what}")
    return "; ".join(parts)


def _notice_file(
    notice: RemovalNotice,
    removals: list[dict[str, Any]],
    *,
    role: IamRole,
    policy: RightsizingPolicy,
) -> bool:
    """File the removal request of a notice that ran out; True when filed. A
    request the pipeline refuses (another request holds the same policy, the
    role became protected) cancels the notice with the reason."""
    changes = removal_changes(role, removals)
    if not changes:
        _notice_close(notice, RemovalNotice.Status.CANCELLED, "Nothing left to remove.")
        return False
    justification = (
        f"Right-sizing: unused for at least {policy.window_days} days, announced on "
        f"{notice.created_at:%Y-%m-%d} (notice {notice.pk}). Removes {_removal_text(removals)}."
    )[:2000]
    try:
        with transaction.atomic():
            request = policy_request_changes_submit(
                requester=system_requester(),
                role=role,
                changes=changes,
                justification=justification,
                findings_acknowledgement="Filed by the right-sizing policy: removals only.",
            )
            assert isinstance(request, PolicyRequest)
            _notice_close(notice, RemovalNotice.Status.FILED, "Removal request filed.", request.pk)
    except RequestInvalid as exc:
        reason = "; ".join(str(v) for v in exc.errors.values())
        log.warning("right-sizing of %s was refused: %s", role.arn, reason)
        _notice_close(notice, RemovalNotice.Status.CANCELLED, f"Refused: {reason}")
        return False
    if policy.mode == RightsizingPolicy.Mode.AUTO:
        policy_request_approve_automatically(
            request_id=request.pk,
            by=f"the right-sizing policy of {role.account.name}",
            reason=f"unused for {policy.window_days} days after a {policy.notice_days}-day notice",
        )
    return True


# --- the notice's email -----------------------------------------------------------------


def _users_named(names: Iterable[str]) -> set[User]:
    match = Q(pk__in=[])
    for name in {n.strip() for n in names if n.strip()}:
        match |= Q(email__iexact=name) | Q(username__iexact=name) | Q(groups__name__iexact=name)
    return set(User.objects.filter(match).distinct())


def notice_recipients(role: IamRole) -> list[User]:
    """The users entitled to the role and its owners (the `owner` tag: emails,
    user names or groups, separated by `:`)."""
    audience = users_for_role(role)
    names = [name for name, _ in [*audience.users, *audience.groups]]
    owners = str((role.tags or {}).get("owner", "")).split(":")
    people = _users_named([*names, *owners])
    return sorted((u for u in people if u.is_active and u.email), key=lambda u: u.pk)


def removal_notice_email_send(*, notice_id: int) -> int:
    """Send the email of a notice once: claimed by a lease, marked sent after."""
    now = timezone.now()
    claimed = RemovalNotice.objects.filter(
        Q(email_lease_expires_at=None) | Q(email_lease_expires_at__lt=now),
        pk=notice_id,
        email_sent_at=None,
    ).update(email_lease_expires_at=now + EMAIL_LEASE)
    if not claimed:
        return 0
    notice = RemovalNotice.objects.select_related("role", "role__account").get(pk=notice_id)
    role = notice.role
    context = {
        "notice": notice,
        "role": role,
        "url": site_url()
        + reverse(
            "role_usage", kwargs={"account_id": role.account.account_id, "role_name": role.name}
        ),
    }
    subject = " ".join(render_to_string("usage/email/notice_subject.txt", context).split())
    text = render_to_string("usage/email/notice.txt", context)
    html = render_to_string("usage/email/notice.html", context)
    sent = 0
    recipients = notice_recipients(role)
    if recipients:
        with get_connection() as connection:
            for person in recipients:
                message = EmailMultiAlternatives(
                    subject,
                    text,
                    to=[person.email],
                    headers={"Auto-Submitted": "auto-generated"},
                    connection=connection,
                )
                message.attach_alternative(html, "text/html")
                sent += message.send() or 0
    RemovalNotice.objects.filter(pk=notice_id, email_sent_at=None).update(
        email_sent_at=timezone.now(), emails_sent=sent, email_lease_expires_at=None
    )
    return sent


def removal_notice_emails_recover(*, now: datetime | None = None) -> int:
    """The sweep: notices whose email was not sent (the task was lost, or the
    worker died while sending) are handed to the broker again."""
    now = now or timezone.now()
    due = list(
        RemovalNotice.objects.filter(
            Q(email_lease_expires_at=None) | Q(email_lease_expires_at__lt=now),
            email_sent_at=None,
            created_at__lt=now - EMAIL_LEASE,
        ).values_list("pk", flat=True)[:500]
    )
    for notice_id in due:
        enqueue.notice_email(notice_id)
    return len(due)
