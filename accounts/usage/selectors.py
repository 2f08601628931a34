"""Reads of usage data: how fresh it is, what a role grants and uses, which
roles have unused permissions, the right-sizing policy in force."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import AwsAccount, IamRole, ManagedPolicy
from accounts.usage.models import AdvisorRun, RemovalNotice, RightsizingPolicy, ServiceUsage
from requests_app.policy.usage import granted_namespaces

DONE = (AdvisorRun.Status.SUCCEEDED, AdvisorRun.Status.WARNINGS)


def interval() -> timedelta:
    return timedelta(hours=settings.IAMPORTAL_USAGE_INTERVAL_HOURS)


def rightsizing_policy_for(account: AwsAccount) -> RightsizingPolicy:
    """The account's own policy, else the default one, else the built-in defaults
    (an unsaved row: report only)."""
    own = RightsizingPolicy.objects.filter(account=account).first() if account.pk else None
    return own or default_policy()


def default_policy() -> RightsizingPolicy:
    return RightsizingPolicy.objects.filter(account=None).first() or RightsizingPolicy()


def latest_pass(account: AwsAccount) -> AdvisorRun | None:
    return (
        AdvisorRun.objects.filter(account=account, status__in=DONE)
        .order_by("-finished_at", "-id")
        .first()
    )


@dataclass(frozen=True)
class Freshness:
    as_of: datetime | None
    stale: bool
    reason: str = ""


def role_freshness(
    role: IamRole, *, run: AdvisorRun | None, now: datetime | None = None
) -> Freshness:
    """Whether the usage data of `role` may be acted on: read by a pass that
    finished within the interval and that could read the role."""
    now = now or timezone.now()
    if run is None or run.finished_at is None:
        return Freshness(None, True, "Access Advisor has not read this account yet.")
    if run.finished_at < now - interval():
        return Freshness(
            run.finished_at,
            True,
            "Older than the Access Advisor interval: the next pass renews it.",
        )
    if role.arn in (run.failed_roles or []):
        return Freshness(run.finished_at, True, "The latest pass could not read this role.")
    if not ServiceUsage.objects.filter(role=role).exists() and role.synced_at > run.finished_at:
        return Freshness(run.finished_at, True, "Not read yet: the role is newer than the pass.")
    return Freshness(run.finished_at, False)


@dataclass(frozen=True)
class Grant:
    """A policy of the role: inline (key: its name) or managed (key: its ARN)."""

    kind: str
    key: str
    label: str
    document: Any = None
    shared: bool = False
    aws_managed: bool = False


def role_grants(role: IamRole) -> list[Grant]:
    grants = [
        Grant("inline", name, f"inline policy {name}", document)
        for name, document in sorted((role.inline_policies or {}).items())
    ]
    arns = [str(item.get("arn", "")) for item in role.managed_policies or []]
    managed = {p.arn: p for p in ManagedPolicy.objects.filter(arn__in=arns)}
    for arn in arns:
        policy = managed.get(arn)
        name = arn.rsplit("/", 1)[-1]
        if policy is None:
            grants.append(
                Grant("managed", arn, f"managed policy {name}", None, True, ":aws:policy/" in arn)
            )
        else:
            grants.append(
                Grant(
                    "managed",
                    arn,
                    f"managed policy {name}",
                    policy.document,
                    shared=policy.attachment_count > 1,
                )
            )
    return grants


def granted_by(grants: list[Grant]) -> dict[str, list[str]]:
    """Service prefix -> the policies that grant it (`*`: every service)."""
    found: dict[str, list[str]] = {}
    for grant in grants:
        for namespace in granted_namespaces(grant.document):
            found.setdefault(namespace, []).append(grant.label)
    return found


def unused_days(last: datetime | None, *, now: datetime, window: int) -> int | None:
    """Days unused when past the window; None when used within it. `last` None:
    never used (within what Access Advisor tracks): the window itself."""
    if last is None:
        return window
    days = (now - last).days
    return days if days >= window else None


@dataclass
class ServiceLine:
    namespace: str
    name: str
    granted_by: list[str]
    last_accessed_at: datetime | None
    entity: str
    region: str
    unused_days: int | None
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RoleUsage:
    freshness: Freshness
    policy: RightsizingPolicy
    services: list[ServiceLine]
    notice: RemovalNotice | None

    @property
    def unused_count(self) -> int:
        return sum(1 for s in self.services if s.unused_days is not None) + sum(
            1 for s in self.services for a in s.actions if a["unused_days"] is not None
        )


def role_usage(role: IamRole, *, now: datetime | None = None) -> RoleUsage:
    now = now or timezone.now()
    policy = rightsizing_policy_for(role.account)
    window = policy.window_days
    by_service = granted_by(role_grants(role))
    every = by_service.get("*", [])
    aws_managed = [
        g.label for g in role_grants(role) if g.aws_managed
    ]  # documents iamportal does not hold
    lines = []
    for row in ServiceUsage.objects.filter(role=role).order_by("namespace"):
        actions = [
            {
                **action,
                "last_accessed": datetime.fromisoformat(action["last_accessed_at"])
                if action.get("last_accessed_at")
                else None,
            }
            for action in row.actions or []
        ]
        for action in actions:
            action["unused_days"] = unused_days(action["last_accessed"], now=now, window=window)
        lines.append(
            ServiceLine(
                namespace=row.namespace,
                name=row.service_name,
                granted_by=by_service.get(row.namespace, []) + every or aws_managed,
                last_accessed_at=row.last_accessed_at,
                entity=row.last_entity,
                region=row.last_region,
                unused_days=unused_days(row.last_accessed_at, now=now, window=window),
                actions=actions,
            )
        )
    return RoleUsage(
        freshness=role_freshness(role, run=latest_pass(role.account), now=now),
        policy=policy,
        services=lines,
        notice=pending_notice(role),
    )


def pending_notice(role: IamRole) -> RemovalNotice | None:
    return RemovalNotice.objects.filter(role=role, status=RemovalNotice.Status.PENDING).first()


def roles_with_unused(*, now: datetime | None = None) -> QuerySet[Any]:
    """Role ids (a subquery) with a service unused past their account's window,
    on fresh data only."""
    now = now or timezone.now()
    default = default_policy().window_days
    windows = dict(
        RightsizingPolicy.objects.exclude(account=None).values_list("account_id", "window_days")
    )
    fresh = Q(pk__in=[])
    for account_id in (
        AdvisorRun.objects.filter(status__in=DONE, finished_at__gte=now - interval())
        .values_list("account_id", flat=True)
        .distinct()
    ):
        cutoff = now - timedelta(days=windows.get(account_id, default))
        fresh |= Q(role__account_id=account_id) & (
            Q(last_accessed_at=None) | Q(last_accessed_at__lt=cutoff)
        )
    return ServiceUsage.objects.filter(fresh).values("role_id")


def notice_banner(role: IamRole) -> dict[str, Any]:
    """What the role page's banner needs: the pending notice, if any."""
    notice = pending_notice(role)
    if notice is None:
        return {"removal_notice": None}
    notice.role = role
    return {
        "removal_notice": notice,
        "rightsizing_exempt_tag": rightsizing_policy_for(role.account).exempt_tag,
    }
