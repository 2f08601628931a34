"""Reads of accounts and the inventory that are more than a one-line filter,
and the access gates every page and API goes through."""

from __future__ import annotations

import base64
import fnmatch
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BooleanField,
    CharField,
    Count,
    DateTimeField,
    Exists,
    IntegerField,
    Max,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce, Concat, StrIndex
from django.db.models.lookups import GreaterThan
from django.http import Http404
from django.utils import timezone

from accounts.models import (
    AwsAccount,
    CloudResource,
    Database,
    IamGroup,
    IamRole,
    IamUser,
    InventoryEntry,
    ManagedPolicy,
    OrgAccount,
    OrgNode,
    RoleArnHead,
    RoleArnTail,
    RoleVersion,
    ServiceControlPolicy,
    SyncRun,
    config_type_label,
    entry_type_label,
)
from iamportal.permissions import AnyUser, can_view_inventory
from requests_app.policy.aws_managed import aws_managed_document
from requests_app.policy.evaluate import NamedPolicy, ScpLevel

# Longer search strings are rejected: no ARN is longer, and a huge LIKE pattern is
# an easy way to make the database work hard.
SEARCH_MAX_LENGTH = 200
# How many matching roles a search lists at most; more means "type more".
SEARCH_MATCH_LIMIT = 1000

# What the list pages show; the policy documents stay in the database.
ROLE_LIST_FIELDS = (
    "arn",
    "name",
    "path",
    "description",
    "last_used_on",
    "synced_at",
    "account__account_id",
    "account__name",
)
RESOURCE_LIST_FIELDS = (
    "arn",
    "name",
    "type",
    "region",
    "synced_at",
    "source",
    "summary",
    "changed_in_aws_at",
    "account__account_id",
    "account__name",
)


# --- access gates ---------------------------------------------------------------


def account_for_user(*, user: AnyUser, account_id: str) -> AwsAccount:
    """The account with inventory counts, or 404."""
    if not can_view_inventory(user):
        raise Http404("No such account.")
    account = accounts_overview().filter(account_id=account_id).first()
    if account is None:
        raise Http404("No such account.")
    return account


def role_for_user(*, user: AnyUser, account_id: str, role_name: str) -> IamRole:
    if not can_view_inventory(user):
        raise Http404("No such role.")
    role = (
        IamRole.objects.select_related("account")
        .filter(account__account_id=account_id, name=role_name)
        .first()
    )
    if role is None:
        raise Http404("No such role.")
    return role


def role_version_for_user(
    *, user: AnyUser, account_id: str, role_name: str, version_id: int
) -> RoleVersion:
    """A recorded version of a role `user` may see (the role's own gate)."""
    role = role_for_user(user=user, account_id=account_id, role_name=role_name)
    version = RoleVersion.objects.filter(role=role, pk=version_id).first()
    if version is None:
        raise Http404("No such version of this role.")
    version.role = role
    return version


def role_history(*, role: IamRole) -> QuerySet[RoleVersion]:
    """The versions of a role, newest first, each with the document and id of
    the version of the same part before it (`previous_document`, `previous_id`,
    None for the first)."""
    earlier = RoleVersion.objects.filter(
        role=OuterRef("role"), part=OuterRef("part"), key=OuterRef("key"), pk__lt=OuterRef("pk")
    ).order_by("-pk")
    return _with_previous(RoleVersion.objects.filter(role=role), earlier)


def deleted_role_history_for_user(
    *, user: AnyUser, account_id: str, role_name: str
) -> QuerySet[RoleVersion]:
    """The versions of a deleted role (no role of that name is in the account's
    inventory any more), shaped as `role_history`'s. The rule is the role page's
    own: whoever could see the role could read these documents while it existed,
    so its history stays as visible as it was. A role of that name deleted more
    than once has one history across its lives. 404 when there is none."""
    if not can_view_inventory(user):
        raise Http404("No such role.")
    versions = RoleVersion.objects.filter(
        account__account_id=account_id, role_name=role_name, role__isnull=True
    )
    if not versions.exists():
        raise Http404("No such role.")
    earlier = RoleVersion.objects.filter(
        account=OuterRef("account"),
        role_name=OuterRef("role_name"),
        role__isnull=True,
        part=OuterRef("part"),
        key=OuterRef("key"),
        pk__lt=OuterRef("pk"),
    ).order_by("-pk")
    return _with_previous(versions.select_related("account"), earlier)


def _with_previous(
    versions: QuerySet[RoleVersion], earlier: QuerySet[RoleVersion]
) -> QuerySet[RoleVersion]:
    return versions.annotate(
        previous_id=Subquery(earlier.values("pk")[:1]),
        previous_document=Subquery(earlier.values("document")[:1]),
    ).order_by("-recorded_at", "-pk")


def resource_for_user(*, user: AnyUser, pk: int) -> CloudResource:
    if not can_view_inventory(user):
        raise Http404("No such resource.")
    resource = CloudResource.objects.select_related("account").filter(pk=pk).first()
    if resource is None:
        raise Http404("No such resource.")
    return resource


def policy_for_user(*, user: AnyUser, pk: int) -> ManagedPolicy:
    if not can_view_inventory(user):
        raise Http404("No such policy.")
    policy = ManagedPolicy.objects.select_related("account").filter(pk=pk).first()
    if policy is None:
        raise Http404("No such policy.")
    return policy


# --- accounts -------------------------------------------------------------------


def _count_per_account(model: type[Model], **where: Any) -> Coalesce:
    # A correlated COUNT per inventory table; joining all three tables and
    # counting distinct ids would multiply their rows before counting.
    counts = (
        model._default_manager.filter(account=OuterRef("pk"), **where)
        .order_by()
        .values("account")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))


def _last_finished(*statuses: str) -> Subquery:
    runs = (
        SyncRun.objects.filter(account=OuterRef("pk"), status__in=statuses)
        .order_by()
        .values("account")
        .annotate(at=Max("finished_at"))
        .values("at")
    )
    return Subquery(runs, output_field=DateTimeField())


def accounts_overview() -> QuerySet[AwsAccount]:
    """Every account with its latest sync and `role_count`, `policy_count`, `resource_count`."""
    return (
        AwsAccount.objects.select_related("latest_sync")
        .annotate(
            role_count=_count_per_account(IamRole),
            policy_count=_count_per_account(ManagedPolicy),
            resource_count=_count_per_account(CloudResource),
        )
        .order_by("name", "account_id")
    )


@dataclass(frozen=True)
class InventoryTotals:
    accounts: int
    roles: int
    policies: int
    resources: int
    failing: int
    syncing: int


def inventory_totals(accounts: Iterable[Any]) -> InventoryTotals:
    """Totals over rows of `accounts_overview()`."""
    rows = list(accounts)
    return InventoryTotals(
        accounts=len(rows),
        roles=sum(row.role_count for row in rows),
        policies=sum(row.policy_count for row in rows),
        resources=sum(row.resource_count for row in rows),
        failing=sum(
            1
            for row in rows
            if row.latest_sync is not None and row.latest_sync.status == SyncRun.Status.FAILED
        ),
        syncing=sum(1 for row in rows if row.latest_sync is not None and row.latest_sync.is_active),
    )


def account_unreadable_resources(*, account: AwsAccount) -> QuerySet[CloudResource]:
    """Resources of `account` that the latest sync listed but could not read."""
    return (
        CloudResource.objects.filter(account=account)
        .exclude(read_error="")
        .only("pk", "arn", "name", "type", "read_error", "read_error_at", "account")
        .order_by("name")
    )


def account_sync_runs(*, account: AwsAccount, limit: int = 20) -> list[SyncRun]:
    return list(
        SyncRun.objects.filter(account=account)
        .select_related("requested_by")
        .order_by("-queued_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class AccountSyncMetrics:
    account_id: str
    name: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failing: bool
    roles: int
    policies: int
    resources: int
    unreadable: int


def account_sync_metrics() -> list[AccountSyncMetrics]:
    """Per account: when a sync last succeeded and failed, whether the latest
    failed, and how much inventory it holds. One query."""
    accounts = (
        AwsAccount.objects.select_related("latest_sync")
        .annotate(
            role_count=_count_per_account(IamRole),
            policy_count=_count_per_account(ManagedPolicy),
            resource_count=_count_per_account(CloudResource),
            unreadable_count=_count_per_account(CloudResource, read_error__gt=""),
            last_success_at=_last_finished(SyncRun.Status.SUCCEEDED, SyncRun.Status.WARNINGS),
            last_failure_at=_last_finished(SyncRun.Status.FAILED),
        )
        .order_by("name", "account_id")
    )
    return [
        AccountSyncMetrics(
            account_id=account.account_id,
            name=account.name,
            last_success_at=account.last_success_at,
            last_failure_at=account.last_failure_at,
            failing=account.latest_sync is not None
            and account.latest_sync.status == SyncRun.Status.FAILED,
            roles=account.role_count,
            policies=account.policy_count,
            resources=account.resource_count,
            unreadable=account.unreadable_count,
        )
        for account in accounts
    ]


# --- search ---------------------------------------------------------------------


def _check_query(query: str) -> None:
    if len(query) > SEARCH_MAX_LENGTH:
        raise ValueError(f"search text is longer than {SEARCH_MAX_LENGTH} characters")


# Words of an ARN's fixed parts. Every role's ARN holds ARN, AWS, IAM and ROLE,
# so their trigrams are in every row of the trigram index, and asking it for
# them reads the whole index: a pasted ARN used to cost far more than a name.
_ARN_WORDS = frozenset(
    {"ARN", "AWS", "AWS-CN", "AWS-US-GOV", "IAM", "ROLE", "USER", "POLICY", "S3", "SQS", "SNS"}
    | {"RDS", "DB", "CLUSTER", "REDSHIFT"}
)


def search_probe(text: str) -> str:
    """What of an upper-case search text the trigram index is asked for: its
    longest piece between ":" and "/" that is not one of an ARN's fixed words.
    The rows the index finds are then checked against the whole text."""
    pieces = [piece for piece in re.split(r"[:/]", text) if piece not in _ARN_WORDS]
    return max(pieces, key=len, default="")


def _text_filter(model_query: QuerySet[Any], query: str) -> QuerySet[Any]:
    """Rows whose ARN contains `query`, in any case: the stored capitalised ARN
    narrowed through its trigram index by the probe, then the whole text
    checked on the ARN itself (not indexed, so the database does not ask the
    index for every trigram of the text)."""
    # IAM names are ASCII, so Python's upper() agrees with the database's.
    upper = query.upper()
    probe = search_probe(upper)
    if len(probe) >= 3:  # a trigram index needs three characters
        model_query = model_query.filter(search_key__contains=probe)
        if probe == upper:
            return model_query
    return model_query.filter(arn__icontains=query)


# Every role ARN's tail starts with this: "ARN:AWS:IAM::<id>" + ":ROLE/PATH/NAME".
_TAIL_START = ":ROLE/"


def _crossings(head: str, text: str) -> Iterator[str]:
    """How `text` can run from the end of `head` into a tail: for each start of
    the text that ends the head, the rest, when a tail could start with it (or
    every tail does: ":RO")."""
    for cut in range(1, len(text)):
        rest = text[cut:]
        if (_TAIL_START.startswith(rest) or rest.startswith(_TAIL_START)) and head.endswith(
            text[:cut]
        ):
            yield rest


_ROLE_MATCH_COLUMNS = ("id", "name", "account_id")

# SQL and its parameters, kept apart.
Compiled = tuple[str, tuple[Any, ...]]


def _compiled(query: QuerySet[Any]) -> Compiled | None:
    """The SQL of `query`, or None when it can match nothing (a filter on an
    empty list, say), which Django does not turn into SQL."""
    try:
        return query.query.sql_with_params()
    except EmptyResultSet:
        return None


def _roles_by_tail(
    roles: QuerySet[IamRole], tails: QuerySet[RoleArnTail], limit: int, *, sparse: bool = False
) -> Compiled | None:
    """SQL for at most `limit` of `roles` whose tail is one of `tails`, as (id,
    name, account_id) rows. `sparse`: most tails have none of `roles` (those of
    one account, say)."""
    if connection.vendor != "postgresql":
        keys = tails.values("search_key")
        return _compiled(
            roles.filter(search_tail__in=keys).values_list(*_ROLE_MATCH_COLUMNS)[:limit]
        )
    # Tail by tail, each tail's roles from the (tail, account) index alone,
    # stopping at the limit. OFFSET 0 keeps PostgreSQL from merging the two into
    # one join, which it may answer by reading the whole roles table when it
    # misjudges how many tails match. A tail two syncs added at the same moment
    # has two rows until the next prune: only its first row's roles are read, or
    # they would count twice towards the limit and crowd out other tails' roles.
    # (DISTINCT would read every matching tail before the first role.) The check
    # is made once per tail, or, where most tails have no role to read, once per
    # role found.
    tail_key = OuterRef("search_tail") if sparse else RawSQL("t.search_key", ())
    first_of_tail = ~Exists(
        RoleArnTail.objects.filter(search_key=tail_key, pk__lt=RawSQL("t.id", ()))
    )
    per_tail = roles.filter(first_of_tail, search_tail=RawSQL("t.search_key", ())).values_list(
        *_ROLE_MATCH_COLUMNS
    )
    tails_compiled = _compiled(tails.values("id", "search_key"))
    per_tail_compiled = _compiled(per_tail)
    if tails_compiled is None or per_tail_compiled is None:
        return None
    (tails_sql, tails_params), (per_tail_sql, per_tail_params) = tails_compiled, per_tail_compiled
    sql = (
        f"SELECT r.id, r.name, r.account_id FROM ({tails_sql} OFFSET 0) t "  # noqa: S608
        f"CROSS JOIN LATERAL ({per_tail_sql} OFFSET 0) r LIMIT %s"
    )
    return sql, (*tails_params, *per_tail_params, limit)


# Beyond this many tails starting alike, the roles of the accounts concerned are
# checked one by one instead (see `_role_match_parts`).
_FEW_TAILS = 500


def _tails_starting(start: str) -> QuerySet[RoleArnTail]:
    """The tails that start with `start`. On PostgreSQL through their B-tree index
    as a range in byte order, which its pattern operators compare in: asked with
    LIKE, PostgreSQL may prefer the trigram index, which reads every tail that
    has the start's trigrams anywhere."""
    tails = RoleArnTail.objects.order_by()
    if connection.vendor != "postgresql":
        return tails.filter(search_key__startswith=start)
    # No character sorts after U+10FFFF: the range holds exactly the keys with the start.
    in_range = RawSQL(  # noqa: S611
        f"{RoleArnTail._meta.db_table}.search_key ~>=~ %s "
        f"AND {RoleArnTail._meta.db_table}.search_key ~<~ %s",
        (start, start + "\U0010ffff"),
        output_field=BooleanField(),
    )
    return tails.filter(in_range)


def _role_match_parts(
    *, query: str, account_id: str | None, among: QuerySet[Any] | None
) -> list[Compiled | None]:
    """SQL for the roles matching a search, as (id, name, account_id) rows, each
    part at most SEARCH_MATCH_LIMIT + 1 rows; together they are every match.

    A role's capitalised ARN is its head ("ARN:AWS:IAM::<id>", one per account)
    and its tail (":ROLE/PATH/NAME", shared by the roles of that name in every
    account). The text is
    - within the tail: looked up among the distinct tails (RoleArnTail, tens of
      thousands where roles number a million), whose roles are then read by
      tail from a B-tree index;
    - from the end of a head into the tail ("9012:role/service/"): the tails
      that start with the rest, read the same way, in the accounts of that head;
    - within the head (an account id), or from its end into ":ROLE/" that
      every tail starts with: every role of that account matches, and they are
      read from the account's (account, name) index, which holds the ARN too.
    Within one account, that account's roles are checked in its index."""
    limit = SEARCH_MATCH_LIMIT + 1
    roles = IamRole.objects.order_by()
    if among is not None:
        # Role ids from another filter (roles with unused permissions).
        roles = roles.filter(pk__in=among)
    if not query:
        if account_id:
            roles = roles.filter(account__account_id=account_id)
        return [_compiled(roles.values_list(*_ROLE_MATCH_COLUMNS)[:limit])]
    upper = query.upper()
    heads = RoleArnHead.objects.values_list("account_id", "search_key")
    if account_id:
        heads = heads.filter(account__account_id=account_id)
    heads_of: dict[int, list[str]] = {}
    for account, head in heads:
        heads_of.setdefault(account, []).append(head)
    whole: set[int] = set()  # accounts whose roles are checked one by one
    by_start: dict[str, set[int]] = {}  # a start of tails: the accounts concerned
    for account, account_heads in heads_of.items():
        for head in account_heads:
            if account_id or upper in head:
                whole.add(account)
            for rest in _crossings(head, upper):
                if _TAIL_START.startswith(rest) or len(account_heads) > 1:
                    # Every tail matches; or roles of this account have other heads,
                    # which the tail index cannot tell apart.
                    whole.add(account)
                else:
                    by_start.setdefault(rest, set()).add(account)
    parts = []
    if whole:
        in_accounts = roles.filter(account_id__in=sorted(whole), search_key__contains=upper)
        parts.append(_compiled(in_accounts.values_list(*_ROLE_MATCH_COLUMNS)[:limit]))
    if account_id:
        return parts  # the account's roles were all checked
    for rest, accounts in sorted(by_start.items()):
        starting = _tails_starting(rest)
        if starting[:_FEW_TAILS].count() >= _FEW_TAILS:
            # A start most tails have (":ROLE/SVC"): the accounts' own roles are
            # fewer to check, and most of them match.
            parts.append(
                _compiled(
                    roles.filter(
                        account_id__in=sorted(accounts), search_key__contains=upper
                    ).values_list(*_ROLE_MATCH_COLUMNS)[:limit]
                )
            )
            continue
        in_accounts = roles.filter(account_id__in=sorted(accounts - whole))
        parts.append(_roles_by_tail(in_accounts, starting, limit, sparse=True))
    tails = RoleArnTail.objects.order_by()
    probe = search_probe(upper)
    if len(probe) >= 3:  # through the trigram index
        tails = tails.filter(search_key__contains=probe)
    if len(probe) < 3 or probe != upper:
        # The whole text, on the rows the probe found, not through the index.
        tails = tails.filter(GreaterThan(StrIndex("search_key", Value(upper)), 0))
    return [*parts, _roles_by_tail(roles, tails, limit)]


def _role_matches_sql(
    *, query: str, account_id: str | None, among: QuerySet[Any] | None
) -> tuple[str, tuple[Any, ...]]:
    """One SELECT of at most SEARCH_MATCH_LIMIT + 1 matching roles' (id, name,
    account_id): which ones, when there are more, is not defined."""
    parts = [
        part
        for part in _role_match_parts(query=query, account_id=account_id, among=among)
        if part is not None
    ]
    if not parts:  # nothing can match: no account holds the text, say
        nothing = IamRole.objects.order_by().filter(pk__isnull=True)
        parts = [nothing.values_list(*_ROLE_MATCH_COLUMNS).query.sql_with_params()]
    # Every part is SQL the ORM compiled, with its parameters kept apart.
    union = " UNION ".join(
        f"SELECT * FROM ({sql}) p{n}"  # noqa: S608
        for n, (sql, _) in enumerate(parts)
    )
    params = tuple(param for _, part_params in parts for param in part_params)
    return f"SELECT * FROM ({union}) u LIMIT %s", (*params, SEARCH_MATCH_LIMIT + 1)  # noqa: S608


def roles_search(
    *, query: str, account_id: str | None, among: QuerySet[Any] | None = None
) -> QuerySet[IamRole]:
    """Roles whose ARN contains `query` (any case), ordered by name then account;
    at most SEARCH_MATCH_LIMIT + 1 of them.

    The ARN holds the path and the role name, so one case-insensitive substring
    match finds partial names and partial ARNs. A broad search ("svc") can match
    tens of thousands of roles; counting and sorting all of them costs far more
    than a page of 50 is worth, so only the first matches found are kept, and
    the page asks for a narrower search when there are more. How the matches
    are found: `_role_match_parts`. `among`: a subquery of role ids the roles
    must be among."""
    _check_query(query)
    sql, params = _role_matches_sql(query=query, account_id=account_id, among=among)
    return (
        IamRole.objects.filter(pk__in=RawSQL(f"SELECT m.id FROM ({sql}) m", params))  # noqa: S608, S611
        .select_related("account")
        .only(*ROLE_LIST_FIELDS)
        .order_by("name", "account__account_id")
    )


@dataclass(frozen=True)
class RolePage:
    """One page of a role search, found without counting the matches: the page
    is read with one row more than it shows, which says whether a next page
    exists. Counting is what made broad searches slow, and a page of 50 needs
    only to know whether there is more."""

    roles: list[IamRole]
    number: int
    size: int
    has_next: bool
    # The search matched more than SEARCH_MATCH_LIMIT roles and this page reached
    # the end of the ones kept.
    capped: bool

    def __iter__(self) -> Iterator[IamRole]:
        return iter(self.roles)

    def __len__(self) -> int:
        return len(self.roles)

    @property
    def object_list(self) -> list[IamRole]:
        return self.roles

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.size + 1 if self.roles else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.size + len(self.roles)

    @property
    def only_page(self) -> bool:
        """Every match is on this page: its length is their number."""
        return self.number == 1 and not self.has_next and not self.capped


def roles_page(
    *,
    query: str,
    account_id: str | None,
    number: int,
    size: int,
    among: QuerySet[Any] | None = None,
) -> RolePage:
    """Page `number` (from 1) of `roles_search`, `size` roles long."""
    last = max(1, -(-SEARCH_MATCH_LIMIT // size))
    number = min(max(number, 1), last)
    offset = (number - 1) * size
    _check_query(query)
    sql, params = _role_matches_sql(query=query, account_id=account_id, among=among)
    # The kept matches are put in page order by the name and account alone (on
    # PostgreSQL, from the index that found them); only the page's rows are read.
    in_order = (
        f"SELECT m.id FROM ({sql}) m JOIN {AwsAccount._meta.db_table} a "  # noqa: S608
        "ON a.id = m.account_id "
        "ORDER BY m.name, a.account_id LIMIT %s OFFSET %s"
    )
    rows = list(
        IamRole.objects.filter(pk__in=RawSQL(in_order, (*params, size + 1, offset)))  # noqa: S611
        .select_related("account")
        .only(*ROLE_LIST_FIELDS)
        .order_by("name", "account__account_id")
    )
    # Only the first SEARCH_MATCH_LIMIT matches are listed; one more means there are more.
    capped = offset + len(rows) > SEARCH_MATCH_LIMIT
    shown = rows[: min(size, SEARCH_MATCH_LIMIT - offset)]
    return RolePage(
        roles=shown,
        number=number,
        size=size,
        has_next=len(rows) > size and offset + size < SEARCH_MATCH_LIMIT,
        capped=capped,
    )


def resources_search(
    *, query: str, account_id: str | None, resource_type: str | None = None
) -> QuerySet[CloudResource]:
    """Resources whose ARN contains `query` (any case), ordered by name then account.
    The text is looked up among the resources' Policies page entries, written in
    the same transaction as the resources, whose capitalised ARN has the trigram
    index (the resources' own table has none to keep up on every sync)."""
    _check_query(query)
    resources = CloudResource.objects.select_related("account").only(*RESOURCE_LIST_FIELDS)
    if query:
        entries = InventoryEntry.objects.filter(kind=InventoryEntry.Kind.RESOURCE)
        resources = resources.filter(pk__in=_text_filter(entries, query).values("object_id"))
    if account_id:
        resources = resources.filter(account__account_id=account_id)
    if resource_type:
        resources = resources.filter(type=resource_type)
    return resources.order_by("name", "account__account_id")


RESOURCE_TYPES_CACHE_KEY = "accounts.resource_types"
RESOURCE_TYPES_CACHE_SECONDS = 60


def resource_types() -> list[tuple[str, str]]:
    """The resource type filter's choices: the types iamportal reads directly,
    then every AWS Config type the inventory holds (cached a minute: a type new
    to the inventory joins the list within a minute of its sync)."""

    def found() -> list[str]:
        return list(
            CloudResource.objects.exclude(type__in=CloudResource.Type.values)
            .order_by("type")
            .values_list("type", flat=True)
            .distinct()
        )

    config_types = cache.get_or_set(RESOURCE_TYPES_CACHE_KEY, found, RESOURCE_TYPES_CACHE_SECONDS)
    return [*CloudResource.Type.choices, *((t, config_type_label(t)) for t in config_types or [])]


def entry_types() -> list[tuple[str, str]]:
    """The Policies page's type filter: every type of item the inventory can
    hold, with the AWS Config types it holds now (as `resource_types`)."""
    return [
        ("role", entry_type_label("role")),
        ("user", entry_type_label("user")),
        ("policy", entry_type_label("policy")),
        *resource_types(),
        *Database.Type.choices,
    ]


# --- one role -------------------------------------------------------------------


@dataclass(frozen=True)
class AttachedPolicy:
    arn: str
    name: str
    # Set when the policy is a customer-managed policy in the inventory.
    policy_pk: int | None


def role_attached_policies(*, role: IamRole) -> list[AttachedPolicy]:
    attached = [p for p in role.managed_policies or [] if isinstance(p, dict)]
    arns = [str(p.get("arn", "")) for p in attached]
    known = dict(ManagedPolicy.objects.filter(arn__in=arns).values_list("arn", "pk"))
    return [
        AttachedPolicy(
            arn=str(p.get("arn", "")),
            name=str(p.get("name", "")),
            policy_pk=known.get(str(p.get("arn", ""))),
        )
        for p in attached
    ]


# --- iamportal's own roles --------------------------------------------------------


def spoke_role_names(*, account_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Account id -> the name of its spoke role, in lower case."""
    accounts = AwsAccount.objects.all()
    if account_ids is not None:
        accounts = accounts.filter(account_id__in=list(account_ids))
    return {
        account_id: _spoke_name(name)
        for account_id, name in accounts.values_list("account_id", "spoke_role_name")
    }


def _spoke_name(name: str) -> str:
    return (name or settings.IAMPORTAL_SPOKE_ROLE_NAME).rsplit("/", 1)[-1].lower()


def _role_arn_parts(arn: str) -> tuple[str, str, str] | None:
    """(account id, path, name) of anything shaped like a role ARN. Lenient on
    purpose: deciding that a malformed ARN is protected only refuses more."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iam":
        return None
    if not parts[5].startswith("role/"):
        return None
    path, _, name = parts[5][len("role") :].rpartition("/")
    return parts[4], path + "/", name


def role_protected(arn: str, *, spoke_names: Mapping[str, str] | None = None) -> bool:
    """Whether `arn` is one of iamportal's own roles, which no request may change,
    directly or through a managed policy it uses: an approved request must not
    be able to widen what iamportal itself may do. They are every account's
    spoke role and the roles IAMPORTAL_PROTECTED_ROLES names (shell patterns
    matched against the name, or against path and name when the pattern holds
    a "/"). IAM role names ignore case, so this does too: IAMPORTAL-Spoke is
    the same role as iamportal-spoke. `spoke_names` (from spoke_role_names)
    saves a query per role when deciding for a list."""
    parts = _role_arn_parts(arn)
    if parts is None:
        return False
    account_id, path, name = parts
    name = name.lower()
    for pattern in settings.IAMPORTAL_PROTECTED_ROLES:
        pattern = pattern.lower()
        if fnmatch.fnmatchcase(path.lower() + name if "/" in pattern else name, pattern):
            return True
    if spoke_names is None:
        spoke_names = spoke_role_names(account_ids=[account_id])
    # An account iamportal does not know would still get the default spoke name.
    return spoke_names.get(account_id, _spoke_name("")) == name


def protected_role_ids(roles: Iterable[IamRole]) -> set[int]:
    """The ids of the roles among `roles` that are iamportal's own, in one query."""
    roles = list(roles)
    spokes = spoke_role_names(account_ids={role.account.account_id for role in roles})
    return {role.pk for role in roles if role_protected(role.arn, spoke_names=spokes)}


@dataclass(frozen=True)
class PolicyUse:
    """A role of the inventory that a managed policy is attached to, or is the
    permissions boundary of."""

    role: IamRole
    attached: bool
    boundary: bool
    protected: bool


def policy_uses(*, policy_arn: str) -> list[PolicyUse]:
    """Every role of the inventory that `policy_arn` (a customer-managed policy)
    is attached to or is the permissions boundary of, ordered by name. The
    inventory holds roles only: users and groups are not in it."""
    parts = policy_arn.split(":")
    account_id = parts[4] if len(parts) > 5 else ""
    wanted = policy_arn.lower()
    # A text match on the JSON narrows the rows down; the loop below decides.
    candidates = (
        IamRole.objects.select_related("account")
        .filter(account__account_id=account_id)
        .filter(
            Q(managed_policies__icontains=policy_arn)
            | Q(permissions_boundary_arn__iexact=policy_arn)
        )
        .defer("inline_policies", "trust_policy")
        .order_by("name")
    )
    uses: list[PolicyUse] = []
    spokes: dict[str, str] | None = None
    for role in candidates:
        attached = any(
            isinstance(p, dict) and str(p.get("arn", "")).lower() == wanted
            for p in role.managed_policies or []
        )
        boundary = role.permissions_boundary_arn.lower() == wanted
        if not attached and not boundary:
            continue
        if spokes is None:
            spokes = spoke_role_names(account_ids=[account_id])
        protected = role_protected(role.arn, spoke_names=spokes)
        uses.append(PolicyUse(role=role, attached=attached, boundary=boundary, protected=protected))
    return uses


# --- users, groups and databases ------------------------------------------------


def iam_user_for_user(*, user: AnyUser, account_id: str, user_name: str) -> IamUser:
    """The IAM user `user_name` of `account_id` for the portal user `user`, or 404
    (seen by whoever may see roles)."""
    if not can_view_inventory(user):
        raise Http404("No such user.")
    found = (
        IamUser.objects.select_related("account")
        .filter(account__account_id=account_id, name=user_name)
        .first()
    )
    if found is None:
        raise Http404("No such user.")
    return found


def group_for_user(*, user: AnyUser, account_id: str, group_name: str) -> IamGroup:
    if not can_view_inventory(user):
        raise Http404("No such group.")
    group = (
        IamGroup.objects.select_related("account")
        .filter(account__account_id=account_id, name=group_name)
        .first()
    )
    if group is None:
        raise Http404("No such group.")
    return group


def database_for_user(*, user: AnyUser, pk: int) -> Database:
    if not can_view_inventory(user):
        raise Http404("No such database.")
    database = Database.objects.select_related("account").filter(pk=pk).first()
    if database is None:
        raise Http404("No such database.")
    return database


def iam_users_search(*, query: str, account_id: str | None) -> QuerySet[IamUser]:
    """Users whose ARN contains `query` (any case), ordered by name then account."""
    _check_query(query)
    users = IamUser.objects.select_related("account").defer("inline_policies")
    if query:
        users = users.filter(arn__icontains=query)
    if account_id:
        users = users.filter(account__account_id=account_id)
    return users.order_by("name", "account__account_id")


def groups_search(*, query: str, account_id: str | None) -> QuerySet[IamGroup]:
    _check_query(query)
    groups = IamGroup.objects.select_related("account").defer("inline_policies")
    if query:
        groups = groups.filter(arn__icontains=query)
    if account_id:
        groups = groups.filter(account__account_id=account_id)
    return groups.order_by("name", "account__account_id")


def account_databases(*, account: AwsAccount) -> QuerySet[Database]:
    return Database.objects.filter(account=account).order_by("region", "type", "name")


def group_members(*, group: IamGroup) -> QuerySet[IamUser]:
    """The member users of `group` that the inventory holds."""
    return IamUser.objects.filter(account=group.account, name__in=group.members).order_by("name")


def user_groups(*, iam_user: IamUser) -> QuerySet[IamGroup]:
    return IamGroup.objects.filter(account=iam_user.account, name__in=iam_user.groups).order_by(
        "name"
    )


@dataclass(frozen=True)
class AccessKey:
    id: str
    status: str
    created: datetime | None
    age_days: int | None
    last_used_on: str
    last_used_service: str
    last_used_region: str


def user_access_keys(*, iam_user: IamUser, now: datetime) -> list[AccessKey]:
    keys = []
    for key in iam_user.access_keys or []:
        created = _parse_time(str(key.get("created", "")))
        keys.append(
            AccessKey(
                id=str(key.get("id", "")),
                status=str(key.get("status", "")),
                created=created,
                age_days=(now - created).days if created else None,
                last_used_on=str(key.get("last_used_on", "")),
                last_used_service=str(key.get("last_used_service", "")),
                last_used_region=str(key.get("last_used_region", "")),
            )
        )
    return keys


def _parse_time(text: str) -> datetime | None:
    """A stored ISO time; one without an offset is UTC, as every time AWS gives."""
    try:
        parsed = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def attached_policies(*, items: list[Any]) -> list[AttachedPolicy]:
    """Managed policies from a `managed_policies` list (of a user or group), with
    the inventory's page for the customer-managed ones."""
    attached = [p for p in items or [] if isinstance(p, dict)]
    arns = [str(p.get("arn", "")) for p in attached]
    known = dict(ManagedPolicy.objects.filter(arn__in=arns).values_list("arn", "pk"))
    return [
        AttachedPolicy(
            arn=str(p.get("arn", "")),
            name=str(p.get("name", "")),
            policy_pk=known.get(str(p.get("arn", ""))),
        )
        for p in attached
    ]


# --- the organisation and its guardrails -------------------------------------------


@dataclass(frozen=True)
class OrgPlace:
    """Where an account sits in the organisation: its OUs from the root down."""

    nodes: list[OrgNode]

    @property
    def path(self) -> str:
        return self.nodes[-1].path if self.nodes else ""


def account_org_place(*, account: AwsAccount) -> OrgPlace | None:
    """None when the organisation has not been read, or does not hold the account."""
    placed = OrgAccount.objects.filter(account_id=account.account_id).first()
    if placed is None:
        return None
    nodes = {node.node_id: node for node in OrgNode.objects.all()}
    chain: list[OrgNode] = []
    node_id = placed.parent_id
    # The depth bound guards against a cycle in stored rows; AWS allows five OU levels.
    while node_id in nodes and len(chain) < 10:
        chain.append(nodes[node_id])
        node_id = nodes[node_id].parent_id
    return OrgPlace(nodes=list(reversed(chain)))


@dataclass(frozen=True)
class AppliedScp:
    """A service control policy that applies to an account, and where it is
    attached: the root, an OU above the account, or the account itself."""

    policy: ServiceControlPolicy
    attached_to: str

    @property
    def document(self) -> Any:
        return self.policy.document

    @property
    def document_json(self) -> str:
        return json.dumps(self.policy.document, indent=2, default=str)


def scps_for_account(*, account: AwsAccount) -> list[AppliedScp]:
    """The service control policies in effect for `account`: those attached to
    the root, to every OU above it and to the account itself, from the root
    down. An action must be allowed at every level and is denied by a Deny at
    any level. Empty when the organisation has not been read or does not hold
    the account."""
    place = account_org_place(account=account)
    if place is None:
        return []
    levels = [(node.node_id, node.path) for node in place.nodes]
    levels.append((account.account_id, "this account"))
    policies = list(ServiceControlPolicy.objects.order_by("name"))
    applied = []
    for target_id, label in levels:
        for policy in policies:
            if target_id in (policy.targets or []):
                applied.append(AppliedScp(policy=policy, attached_to=label))
    return applied


def _management_account_id() -> str:
    """The organisation's management account, from the root's ARN
    (arn:aws:organizations::<management account>:root/o-.../r-...)."""
    root = OrgNode.objects.filter(kind=OrgNode.Kind.ROOT).values_list("arn", flat=True).first()
    parts = (root or "").split(":")
    return parts[4] if len(parts) > 5 else ""


def scp_levels_for_account(*, account: AwsAccount) -> list[ScpLevel]:
    """The SCPs in effect for `account`, one level per place they are attached
    (the root, each OU down, the account), for policy evaluation. Empty when
    the organisation has not been read, and for its management account, which
    SCPs do not restrict."""
    if account.account_id == _management_account_id():
        return []
    levels: dict[str, list[NamedPolicy]] = {}
    for applied in scps_for_account(account=account):
        levels.setdefault(applied.attached_to, []).append(
            NamedPolicy(name=applied.policy.name, document=applied.policy.document)
        )
    return [ScpLevel(label=label, policies=tuple(policies)) for label, policies in levels.items()]


def boundary_policy(*, arn: str) -> NamedPolicy | None:
    """A permissions boundary's document from the inventory; None when there is
    no boundary or the inventory does not hold it (an AWS-managed policy)."""
    if not arn:
        return None
    document = ManagedPolicy.objects.filter(arn=arn).values_list("document", flat=True).first()
    if not isinstance(document, dict):
        return None
    return NamedPolicy(name=arn, document=document)


def role_identity_documents(
    *, roles: Iterable[IamRole], aws_managed: bool = False
) -> dict[int, list[Any]]:
    """Role id -> the documents of its inline policies and of the attached
    managed policies the inventory holds, with one query for all the roles.
    AWS-managed policies are not in the inventory: with `aws_managed`, the few
    whose documents iamportal knows (`aws_managed_document`) are included;
    any other attached AWS-managed policy is left out, so grants nothing."""
    roles = list(roles)
    attached = {
        role.pk: [
            str(item.get("arn", ""))
            for item in role.managed_policies or []
            if isinstance(item, dict)
        ]
        for role in roles
    }
    wanted = {arn for arns in attached.values() for arn in arns}
    documents = dict(ManagedPolicy.objects.filter(arn__in=wanted).values_list("arn", "document"))
    if aws_managed:
        for arn in wanted:
            known = aws_managed_document(arn)
            if known is not None:
                documents[arn] = known
    return {
        role.pk: [
            *(role.inline_policies or {}).values(),
            *(documents[arn] for arn in attached[role.pk] if arn in documents),
        ]
        for role in roles
    }


# --- the Policies page and the global search -----------------------------------------

# A tag filter is a key (128 characters in AWS) and a value (256).
TAG_MAX_LENGTH = 400
UNCHANGED_MAX_DAYS = 36_500
CURSOR_MAX_LENGTH = 3000
# How many entries an export reads per query: memory stays flat whatever the size.
EXPORT_CHUNK_SIZE = 1000
# How many items of each kind the global search shows.
GLOBAL_SEARCH_LIMIT = 10

ENTRY_FIELDS = (
    "id",
    "kind",
    "object_id",
    "type",
    "arn",
    "name",
    "region",
    "tags",
    "has_resource_policy",
    "public",
    "changed_at",
    "account__account_id",
    "account__name",
)


@dataclass(frozen=True)
class PolicyFilters:
    query: str = ""
    account_id: str | None = None
    type: str | None = None
    # (key, value), or (key, None) for any value.
    tag: tuple[str, str | None] | None = None
    has_policy: bool = False
    public: bool = False
    unchanged_days: int | None = None


@dataclass(frozen=True)
class Cursor:
    """A place in the page order (name, then id): the last entry of one page."""

    name: str
    id: int


def cursor_encode(entry: InventoryEntry) -> str:
    raw = json.dumps([entry.name, entry.pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(text: str) -> Cursor | None:
    """The cursor in a page link, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        name, pk = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(name, str) or not isinstance(pk, int) or isinstance(pk, bool) or pk < 0:
        return None
    return Cursor(name=name, id=pk)


def _structured(filters: PolicyFilters, *, now: datetime | None = None) -> QuerySet[InventoryEntry]:
    """The entries the filters that have an index in page order let through."""
    entries = InventoryEntry.objects.all()
    if filters.account_id:
        entries = entries.filter(account__account_id=filters.account_id)
    if filters.type:
        entries = entries.filter(type=filters.type)
    if filters.has_policy:
        entries = entries.filter(has_resource_policy=True)
    if filters.public:
        entries = entries.filter(public=True)
    if filters.unchanged_days:
        cutoff = (now or timezone.now()) - timedelta(days=filters.unchanged_days)
        entries = entries.filter(changed_at__lt=cutoff)
    return entries


def _searched(
    entries: QuerySet[InventoryEntry], filters: PolicyFilters
) -> QuerySet[InventoryEntry]:
    """`entries` narrowed by the text and the tag, which PostgreSQL finds through
    GIN indexes (trigrams of the ARN, the tags) rather than in page order."""
    _check_query(filters.query)
    if filters.query:
        entries = _text_filter(entries, filters.query)
    if filters.tag is not None:
        key, value = filters.tag
        if value is None:
            entries = entries.filter(tags__has_key=key)
        elif connection.vendor == "postgresql":
            # Containment is what PostgreSQL's GIN index on tags serves.
            entries = entries.filter(tags__contains={key: value})
        else:
            entries = entries.alias(tag_value=KeyTransform(key, "tags")).filter(tag_value=value)
    return entries


def policies_filter(
    filters: PolicyFilters, *, now: datetime | None = None
) -> QuerySet[InventoryEntry]:
    """Every entry the filters let through, unordered."""
    return _searched(_structured(filters, now=now), filters)


@dataclass(frozen=True)
class EntryPage:
    entries: list[InventoryEntry]
    # Cursors for the page links; None where there is no such page.
    next_cursor: str | None
    previous_cursor: str | None

    @property
    def is_first(self) -> bool:
        return self.previous_cursor is None


def _after(entries: QuerySet[InventoryEntry], cursor: Cursor) -> QuerySet[InventoryEntry]:
    # "name >= x" first, which the database turns into an index range; the rest
    # of the row comparison (name, id) > (x, n) is checked on the rows it reads.
    return entries.filter(name__gte=cursor.name).filter(
        Q(name__gt=cursor.name) | Q(id__gt=cursor.id)
    )


def _before(entries: QuerySet[InventoryEntry], cursor: Cursor) -> QuerySet[InventoryEntry]:
    return entries.filter(name__lte=cursor.name).filter(
        Q(name__lt=cursor.name) | Q(id__lt=cursor.id)
    )


# How many entries, in page order, a page with a text or tag filter looks through
# before it asks the GIN indexes instead (see _page_rows).
PAGE_WINDOW = 5000


def _listed(entries: QuerySet[InventoryEntry]) -> QuerySet[InventoryEntry]:
    return entries.select_related("account").only(*ENTRY_FIELDS)


def _page_rows(
    filters: PolicyFilters, *, cursor: Cursor | None, backwards: bool, limit: int
) -> list[InventoryEntry]:
    """The first `limit` entries after `cursor` (before it, nearest first, when
    `backwards`) in page order.

    Filters with an index in page order are walked in that order. The text and
    tag filters are not, and they often go with the name (the payments team's
    items are called payments-...): walking the names from "a" to find the
    first tagged team=search would read most of the table. So those look
    through the next PAGE_WINDOW entries in page order first (a bounded range
    of the name index), which finds a page of a common match at once; when
    that range holds too few, the rest comes from the GIN indexes, past the
    range, sorted, which is cheap because the matches are then few."""
    keyset = _before if backwards else _after
    order = ("-name", "-id") if backwards else ("name", "id")
    structured = _structured(filters)
    base = structured if cursor is None else keyset(structured, cursor)
    if not filters.query and filters.tag is None:
        return list(_listed(base).order_by(*order)[:limit])
    # Where the window ends: an index-only walk of PAGE_WINDOW entries.
    ends = list(base.order_by(*order).values_list("name", "id")[PAGE_WINDOW - 1 : PAGE_WINDOW])
    edge = Cursor(name=ends[0][0], id=ends[0][1]) if ends else None
    nearby = base if edge is None else _through(base, edge, backwards=backwards)
    rows = list(_listed(_searched(nearby, filters)).order_by(*order)[:limit])
    if len(rows) == limit or edge is None:
        return rows
    beyond = keyset(_searched(structured, filters), edge)
    # Sorting on an expression keeps the database from walking the name index.
    name = Concat("name", Value(""), output_field=CharField())
    sort = (name.desc(), "-id") if backwards else (name.asc(), "id")
    # The matches past the window can be tens of thousands: they are sorted as
    # bare (name, id) pairs in a subquery, and only the page's rows are then
    # read whole and joined to their account (sorting whole rows joined to
    # their accounts took twice as long).
    found = beyond.order_by(*sort).values("pk")[: limit - len(rows)]
    return rows + list(
        _listed(InventoryEntry.objects.filter(pk__in=Subquery(found))).order_by(*order)
    )


def _through(
    entries: QuerySet[InventoryEntry], edge: Cursor, *, backwards: bool
) -> QuerySet[InventoryEntry]:
    """`entries` up to `edge` in page order, `edge` included: a range of the
    name index, so the database walks no further."""
    if backwards:
        return entries.filter(name__gte=edge.name).filter(
            Q(name__gt=edge.name) | Q(id__gte=edge.id)
        )
    return entries.filter(name__lte=edge.name).filter(Q(name__lt=edge.name) | Q(id__lte=edge.id))


def policies_page(
    filters: PolicyFilters,
    *,
    size: int,
    after: Cursor | None = None,
    before: Cursor | None = None,
) -> EntryPage:
    """One page of entries in (name, id) order: the first, the one after `after`,
    or the one before `before`. Keyset pagination: no OFFSET and no COUNT, so a
    page deep into half a million items costs what the first one does."""
    _check_query(filters.query)
    if before is not None:
        rows = _page_rows(filters, cursor=before, backwards=True, limit=size + 1)
        more_before = len(rows) > size
        rows = list(reversed(rows[:size]))
        return EntryPage(
            entries=rows,
            next_cursor=cursor_encode(rows[-1]) if rows else None,
            previous_cursor=cursor_encode(rows[0]) if rows and more_before else None,
        )
    rows = _page_rows(filters, cursor=after, backwards=False, limit=size + 1)
    more = len(rows) > size
    rows = rows[:size]
    return EntryPage(
        entries=rows,
        next_cursor=cursor_encode(rows[-1]) if more else None,
        previous_cursor=cursor_encode(rows[0]) if rows and after is not None else None,
    )


def policies_export(
    filters: PolicyFilters, *, chunk_size: int = EXPORT_CHUNK_SIZE
) -> Iterator[InventoryEntry]:
    """Every entry the filters let through, in page order, read `chunk_size` at
    a time by the same keyset as the pages: one short query per chunk, no
    cursor held open while the client downloads, and memory flat in the size."""
    entries = policies_filter(filters).select_related("account").only(*ENTRY_FIELDS)
    cursor: Cursor | None = None
    while True:
        chunk = entries if cursor is None else _after(entries, cursor)
        rows = list(chunk.order_by("name", "id")[:chunk_size])
        yield from rows
        if len(rows) < chunk_size:
            return
        cursor = Cursor(name=rows[-1].name, id=rows[-1].pk)


@dataclass(frozen=True)
class SearchGroup:
    kind: str
    label: str
    entries: list[InventoryEntry]
    more: bool


def inventory_search(*, query: str) -> list[SearchGroup]:
    """Roles, users, resources, managed policies and databases whose ARN
    contains `query` (any case): the first GLOBAL_SEARCH_LIMIT of each kind, in
    name order, and whether there are more."""
    _check_query(query)
    groups = []
    for kind, label in (
        (InventoryEntry.Kind.ROLE, "Roles"),
        (InventoryEntry.Kind.USER, "IAM users"),
        (InventoryEntry.Kind.RESOURCE, "Resources"),
        (InventoryEntry.Kind.POLICY, "Managed policies"),
        (InventoryEntry.Kind.DATABASE, "Databases"),
    ):
        rows = list(
            policies_filter(PolicyFilters(query=query))
            .filter(kind=kind)
            .select_related("account")
            .only(*ENTRY_FIELDS)
            .order_by("name", "id")[: GLOBAL_SEARCH_LIMIT + 1]
        )
        groups.append(
            SearchGroup(
                kind=kind,
                label=label,
                entries=rows[:GLOBAL_SEARCH_LIMIT],
                more=len(rows) > GLOBAL_SEARCH_LIMIT,
            )
        )
    return groups
