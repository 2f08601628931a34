"""Who may use which role: access rules and role tags, folded into one index.

The index maps each principal ("g:<group>" or "u:<email>") to the roles it may
use and whether only from the command line. Building it reads every tagged role
and matches every rule pattern against every role ARN, so it is built once and
kept in process memory until the "access" revision moves: a sync that changed
roles and every rule change bump it (see `access_changed`). A rule past its
expiry grants nothing from that moment: the index leaves it out and knows the
next expiry among the rules it holds (and the next start of a rule that starts
later, such as an access grant from a given time), and is rebuilt once that has
passed, without waiting for a bump.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.db.models import Min, Q, QuerySet
from django.utils import timezone

from accounts.models import IamRole
from accounts.services import ACCESS_REVISION, access_changed
from brokering.models import AccessRule
from iamportal.revisions import local_bumps, revision_get

__all__ = ["access_changed", "access_index", "forget_index"]

REVISION = ACCESS_REVISION
# How long an index is trusted before asking whether another process changed access.
FRESHNESS_SECONDS = 2.0


def group_principal(name: str) -> str:
    return f"g:{name.strip().lower()}"


def user_principal(email: str) -> str:
    return f"u:{email.strip().lower()}"


def _is_wildcard(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def pattern_matches(pattern: str, arn: str) -> bool:
    """An access rule's pattern against a role ARN: exact, or with * ? [ ] wildcards;
    case-insensitive."""
    pattern = pattern.strip().lower()
    arn = arn.strip().lower()
    if arn == pattern:
        return True
    return _is_wildcard(pattern) and _compiled(pattern).match(arn) is not None


def group_id_principal(group_id: int) -> str:
    """Access rules name a group by id, so a renamed group keeps its grants and a
    deleted (and later recreated) group does not pass them on."""
    return f"gid:{group_id}"


def user_id_principal(user_id: int) -> str:
    """Access rules name a user by id: a changed email or a new account with the
    same email never inherits the grants."""
    return f"uid:{user_id}"


def tag_principal(value: str) -> str:
    value = value.strip()
    return user_principal(value) if "@" in value else group_principal(value)


@dataclass
class AccessIndex:
    revision: int
    # principal -> role id -> cli_only (False when any grant allows the console)
    grants: dict[str, dict[int, bool]] = field(default_factory=dict)
    checked_at: float = 0.0
    local_bumps: int = 0
    # The earliest expiry among the rules in the index, or the earliest start of a
    # rule not yet in it: past it, the index is stale.
    expires_next: datetime | None = None

    def is_stale(self, now: datetime) -> bool:
        return self.expires_next is not None and self.expires_next <= now


_lock = threading.Lock()
_index: AccessIndex | None = None


def _grant(
    grants: dict[str, dict[int, bool]], principal: str, role_id: int, cli_only: bool
) -> None:
    roles = grants.setdefault(principal, {})
    roles[role_id] = roles.get(role_id, True) and cli_only


def _build(revision: int) -> AccessIndex:
    grants: dict[str, dict[int, bool]] = defaultdict(dict)
    console_tag = settings.IAMPORTAL_AUTH_TAG
    cli_tag = settings.IAMPORTAL_AUTH_CLI_TAG
    tagged = IamRole.objects.filter(
        Q(tags__has_key=console_tag) | Q(tags__has_key=cli_tag)
    ).values_list("pk", "tags")
    for role_id, tags in tagged:
        for key, cli_only in ((console_tag, False), (cli_tag, True)):
            for value in str(tags.get(key, "")).split(":"):
                if value.strip():
                    _grant(grants, tag_principal(value), role_id, cli_only)

    now = timezone.now()
    in_force = rules_in_force(now)
    rules = list(in_force.only("role_pattern", "cli_only", "group_id", "user_id", "request_id"))
    if rules:
        arns = [(pk, arn.lower()) for pk, arn in IamRole.objects.values_list("pk", "arn")]
        by_arn = {arn: pk for pk, arn in arns}
        for rule in rules:
            if rule.group_id is not None:
                principal = group_id_principal(rule.group_id)
            elif rule.user_id is not None:
                principal = user_id_principal(rule.user_id)
            else:
                continue
            pattern = rule.role_pattern.strip().lower()
            # The grant of an access request is for its one role, even one whose
            # path holds * ? or [ (IAM allows them): never a pattern.
            if rule.request_id is not None or not _is_wildcard(pattern):
                if pattern in by_arn:
                    _grant(grants, principal, by_arn[pattern], rule.cli_only)
                continue
            matcher = _compiled(pattern).match  # the same test as pattern_matches
            for role_id, arn in arns:
                if matcher(arn) is not None:
                    _grant(grants, principal, role_id, rule.cli_only)
    expires_next = in_force.aggregate(first=Min("expires_at"))["first"]
    starts_next = (
        AccessRule.objects.filter(enabled=True, starts_at__gt=now)
        .aggregate(first=Min("starts_at"))
        .get("first")
    )
    moments = [m for m in (expires_next, starts_next) if m is not None]
    return AccessIndex(
        revision=revision, grants=dict(grants), expires_next=min(moments) if moments else None
    )


def rules_in_force(now: datetime) -> QuerySet[AccessRule]:
    """The rules that grant something at `now`: enabled, started and not expired."""
    return (
        AccessRule.objects.filter(enabled=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now))
    )


def roles_matching(pattern: str, *, exact: bool = False) -> list[str]:
    """The ARNs of the synced roles a rule's pattern matches, in order: the same
    test the index makes. `exact`: the pattern is an ARN, wildcards or not (the
    grant of an access request)."""
    if exact:
        wanted = pattern.strip().lower()
        roles = IamRole.objects.filter(arn__iexact=pattern.strip()).order_by("arn")
        return [arn for arn in roles.values_list("arn", flat=True) if arn.lower() == wanted]
    return [
        arn
        for arn in IamRole.objects.order_by("arn").values_list("arn", flat=True)
        if pattern_matches(pattern, arn)
    ]


def access_index() -> AccessIndex:
    """The current index. Changes made by this process are seen at once; changes
    made by another process (a worker's sync, another web server's rule edit)
    within FRESHNESS_SECONDS, at the cost of one primary-key read per check."""
    global _index
    now = time.monotonic()
    wall = timezone.now()
    bumps = local_bumps(REVISION)
    with _lock:
        current = _index
        if (
            current is not None
            and current.local_bumps == bumps
            and now - current.checked_at < FRESHNESS_SECONDS
            and not current.is_stale(wall)
        ):
            return current
    revision = revision_get(REVISION)
    if current is not None and current.revision == revision and not current.is_stale(wall):
        current.checked_at, current.local_bumps = now, bumps
        return current
    index = _build(revision)
    index.checked_at, index.local_bumps = now, bumps
    with _lock:
        _index = index
    return index


def forget_index() -> None:
    global _index
    with _lock:
        _index = None
