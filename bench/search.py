"""Benchmark: the role search behind the role list page, and the Policies page's
filtered query, on a large inventory.

Loads 1,000,000 roles across 50 accounts, and 500,000 Policies page entries
(roles, users, managed policies, resources and databases, with tags, resource
policy and public flags and change times) across the same accounts, into a
throwaway copy of the database DATABASE_URL names; builds the trigram indexes
after the load, as a restore would; runs VACUUM ANALYZE (ANALYZE on SQLite).

Roles: times 200 searches through the same code path as the role list page:
the search form and `selectors.roles_page` (one row past the page, no count).
A mix of partial names, partial ARNs, account-id fragments, mixed case,
account filters and searches that match nothing. `--compare-count` also times
the code path before it (a Paginator, whose COUNT over the capped matches was
the slow tail) on the same searches. Target: p95 <= 25 ms on PostgreSQL.

Policies page: times 200 filtered pages through the page's code path: the
filter form and `selectors.policies_page` (keyset, no count), with every filter
alone and combined, first pages and pages deep into the list. Target: p95 <=
50 ms on PostgreSQL.

Template rendering is not included. It prints the percentiles, a breakdown per
kind of search, and the plan of the slowest queries when a target is missed.

Run: .venv/bin/python bench/search.py [--roles 1000000] [--items 500000]
         [--queries 200] [--accounts 50] [--repeat 1] [--only roles|policies]
         [--compare-count] [--allow-sqlite]
On a busy machine, --repeat 3 keeps each search's fastest of three runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import AwsAccount, IamRole

TARGET_P95_MS = 25.0
POLICIES_TARGET_P95_MS = 50.0
BATCH_SIZE = 2000
WARM_UP_QUERIES = 20
SEED = 20260

TEAMS = (
    "payments",
    "billing",
    "search",
    "identity",
    "checkout",
    "catalog",
    "ledger",
    "risk",
    "growth",
    "platform",
    "data",
    "fraud",
    "notifications",
    "shipping",
    "inventory",
    "pricing",
    "reporting",
    "gateway",
    "mobile",
    "analytics",
    "security",
    "observability",
    "support",
    "orders",
    "partners",
)
COMPONENTS = (
    "api",
    "worker",
    "batch",
    "consumer",
    "scheduler",
    "etl",
    "web",
    "admin",
    "cron",
    "stream",
    "sync",
    "export",
    "indexer",
    "proxy",
)
ENVIRONMENTS = ("prod", "staging", "dev", "sandbox")
AWS_SERVICE_ROLES = (
    ("ecs.amazonaws.com", "AWSServiceRoleForECS"),
    ("elasticloadbalancing.amazonaws.com", "AWSServiceRoleForElasticLoadBalancing"),
    ("rds.amazonaws.com", "AWSServiceRoleForRDS"),
    ("autoscaling.amazonaws.com", "AWSServiceRoleForAutoScaling"),
    ("organizations.amazonaws.com", "AWSServiceRoleForOrganizations"),
)
NO_MATCH = (
    "zebra-unicorn",
    "kafka-connect",
    "qxzv",
    "does-not-exist",
    "legacy-mainframe",
    "arn:aws:iam::000000000000:role/",
    "svc-payments-api-9999",
    "snowflake-loader",
)


# --- the inventory ------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    account_ids: list[str]
    # A sample of (account id, path, name) to draw realistic search text from.
    sample: list[tuple[str, str, str]]


def _role_names(rng: random.Random, count: int) -> Iterator[tuple[str, str]]:
    """`count` distinct (path, name) pairs in the styles real organisations mix."""
    numbers: dict[tuple[str, str], int] = {}

    def next_number(style: str, key: str) -> int:
        numbers[(style, key)] = numbers.get((style, key), 0) + 1
        return numbers[(style, key)]

    for index in range(len(AWS_SERVICE_ROLES)):
        service, name = AWS_SERVICE_ROLES[index]
        yield f"/aws-service-role/{service}/", name
    yield "/", "OrganizationAccountAccessRole"
    yield "/", "iamportal-spoke"
    made = len(AWS_SERVICE_ROLES) + 2
    while made < count:
        team = rng.choice(TEAMS)
        component = rng.choice(COMPONENTS)
        style = rng.random()
        if style < 0.55:
            number = next_number("svc", f"{team}-{component}")
            path = rng.choice(("/", "/service/", f"/team/{team}/"))
            yield path, f"svc-{team}-{component}-{number:03d}"
        elif style < 0.70:
            number = next_number("lambda", f"{team}-{component}")
            yield "/service-role/", f"lambda-{team}-{component}-{number:03d}"
        elif style < 0.80:
            env = rng.choice(ENVIRONMENTS)
            number = next_number("env", f"{team}-{component}-{env}")
            yield f"/team/{team}/", f"{team}-{component}-{env}-{number}"
        elif style < 0.90:
            number = next_number("ci", team)
            yield "/ci/", f"ci-deploy-{team}-{number:02d}"
        else:
            number = next_number("camel", f"{team}-{component}")
            yield "/", f"{team.title()}{component.title()}Role{number}"
        made += 1


def _role(rng: random.Random, account: AwsAccount, path: str, name: str, now: datetime) -> IamRole:
    from accounts.models import IamRole

    arn = f"arn:aws:iam::{account.account_id}:role{path}{name}"
    service = rng.choice(("ecs-tasks", "lambda", "ec2"))
    last_used = now.date() - timedelta(days=rng.randrange(400)) if rng.random() < 0.7 else None
    return IamRole(
        account=account,
        arn=arn,
        name=name,
        path=path,
        role_id="AROA" + "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=17)),
        description=f"{name} ({account.name})",
        trust_policy={
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": f"{service}.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        inline_policies={
            "logs": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": "*"}
                ],
            }
        },
        managed_policies=[],
        tags={"team": name.split("-")[1] if name.count("-") >= 2 else "platform"},
        max_session_duration=3600,
        created_in_aws_at=now - timedelta(days=rng.randrange(2000)),
        last_used_on=last_used,
        last_used_region="us-east-1" if last_used else "",
        content_hash="bench",
        synced_at=now,
    )


def inventory_load(*, roles: int, accounts: int, rng: random.Random) -> Seeded:

    from accounts.models import AwsAccount, IamRole

    now = datetime.now(UTC)
    account_ids: list[str] = []
    while len(account_ids) < accounts:
        candidate = f"{rng.randrange(10**12):012d}"
        if candidate not in account_ids:
            account_ids.append(candidate)
    rows = AwsAccount.objects.bulk_create(
        AwsAccount(
            account_id=account_id,
            name=f"acme-{TEAMS[i % len(TEAMS)]}-{ENVIRONMENTS[i % len(ENVIRONMENTS)]}",
            environment=ENVIRONMENTS[i % len(ENVIRONMENTS)],
        )
        for i, account_id in enumerate(account_ids)
    )
    sample: list[tuple[str, str, str]] = []
    batch: list[IamRole] = []
    loaded = 0
    started = time.perf_counter()
    for position, account in enumerate(rows):
        share = roles // accounts + (1 if position < roles % accounts else 0)
        for path, name in _role_names(rng, share):
            batch.append(_role(rng, account, path, name, now))
            if rng.random() < 0.02:
                sample.append((account.account_id, path, name))
            if len(batch) == BATCH_SIZE:
                IamRole.objects.bulk_create(batch)
                loaded += len(batch)
                batch = []
                if loaded % 20000 == 0:
                    print(f"  {loaded:>7,} roles loaded", flush=True)
    if batch:
        IamRole.objects.bulk_create(batch)
        loaded += len(batch)
    print(
        f"  {loaded:>7,} roles in {accounts} accounts loaded in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return Seeded(account_ids=account_ids, sample=sample)


# Trigram indexes the migrations create: dropped for the load and built after it,
# which takes a fraction of the time of keeping them up to date row by row.
TRIGRAM_INDEXES = {
    "accounts_rolearntail_search_key_trgm": (
        "accounts_rolearntail USING gin (search_key gin_trgm_ops)"
    ),
    "accounts_inventoryentry_search_key_trgm": (
        "accounts_inventoryentry USING gin (search_key gin_trgm_ops)"
    ),
    "accounts_inventoryentry_tags_gin": "accounts_inventoryentry USING gin (tags)",
}


def indexes_drop() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name in TRIGRAM_INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


def indexes_build_and_analyze() -> None:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for name, definition in TRIGRAM_INDEXES.items():
                cursor.execute(f"CREATE INDEX {name} ON {definition}")
        # VACUUM as well: a table that has just had its rows inserted is not what
        # a server in use has (hint bits unset, no visibility map), and autovacuum
        # would otherwise start on it in the middle of the measurement.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    print(f"  indexes built and tables analysed in {time.perf_counter() - started:.1f} s")


# --- the Policies page's entries ----------------------------------------------------

# What kinds of item the Policies page holds, in what proportion, with the types
# each comes in.
ENTRY_MIX = (
    (0.40, "role", ("role",)),
    (0.05, "user", ("user",)),
    (0.10, "policy", ("policy",)),
    (0.40, "resource", ("s3", "s3", "sqs", "sqs", "sns")),
    (0.05, "database", ("rds-instance", "rds-cluster", "redshift")),
)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


@dataclass(frozen=True)
class EntriesSeeded:
    account_ids: list[str]
    names: list[str]


def _entry_arn(type_: str, account_id: str, region: str, name: str) -> str:
    if type_ in ("role", "user", "policy"):
        return f"arn:aws:iam::{account_id}:{type_}/{name}"
    if type_ == "s3":
        return f"arn:aws:s3:::{name}"
    if type_ in ("rds-instance", "rds-cluster"):
        kind = "db" if type_ == "rds-instance" else "cluster"
        return f"arn:aws:rds:{region}:{account_id}:{kind}:{name}"
    if type_ == "redshift":
        return f"arn:aws:redshift:{region}:{account_id}:cluster:{name}"
    return f"arn:aws:{type_}:{region}:{account_id}:{name}"


def entries_load(*, items: int, accounts: int, rng: random.Random) -> EntriesSeeded:
    """`items` entries across the accounts `inventory_load` made (or new ones)."""
    from accounts.models import AwsAccount, InventoryEntry

    rows = list(AwsAccount.objects.order_by("pk"))
    if not rows:
        # Drawn at random, as real account ids are: ids sharing long runs of
        # zeros would put the same trigrams in every ARN.
        ids = sorted({f"{rng.randrange(10**11, 10**12):012d}" for _ in range(accounts)})
        rows = AwsAccount.objects.bulk_create(
            AwsAccount(account_id=account_id, name=f"acme-{index}")
            for index, account_id in enumerate(ids)
        )
    now = datetime.now(UTC)
    names: list[str] = []
    batch: list[InventoryEntry] = []
    started = time.perf_counter()
    weights = [share for share, _, _ in ENTRY_MIX]
    for index in range(items):
        account = rows[index % len(rows)]
        _, kind, types = rng.choices(ENTRY_MIX, weights)[0]
        type_ = rng.choice(types)
        team = rng.choice(TEAMS)
        name = f"{team}-{rng.choice(COMPONENTS)}-{rng.choice(ENVIRONMENTS)}-{index:06d}"
        region = "" if kind in ("role", "user", "policy") or type_ == "s3" else rng.choice(REGIONS)
        arn = _entry_arn(type_, account.account_id, region, name)
        tags: dict[str, str] = {}
        if rng.random() < 0.7:
            tags["team"] = team
        if rng.random() < 0.5:
            tags["env"] = rng.choice(ENVIRONMENTS)
        if rng.random() < 0.3:
            tags["cost-center"] = f"cc-{rng.randrange(200):03d}"
        has_policy = kind == "role" or (type_ in ("s3", "sqs", "sns") and rng.random() < 0.6)
        batch.append(
            InventoryEntry(
                account=account,
                kind=kind,
                object_id=index + 1,
                type=type_,
                arn=arn,
                name=name,
                region=region,
                tags=tags,
                has_resource_policy=has_policy,
                public=has_policy and rng.random() < 0.005,
                changed_at=now - timedelta(minutes=rng.randrange(3 * 365 * 24 * 60)),
                search_key=arn.upper(),
            )
        )
        if rng.random() < 0.01:
            names.append(name)
        if len(batch) == BATCH_SIZE:
            InventoryEntry.objects.bulk_create(batch)
            batch = []
            if (index + 1) % 100_000 == 0:
                print(f"  {index + 1:>9,} entries loaded", flush=True)
    if batch:
        InventoryEntry.objects.bulk_create(batch)
    print(
        f"  {items:>9,} entries in {len(rows)} accounts loaded in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return EntriesSeeded(account_ids=[account.account_id for account in rows], names=names)


@dataclass(frozen=True)
class PolicySearch:
    kind: str
    params: dict[str, str]

    def __str__(self) -> str:
        return " ".join(f"{key}={value!r}" for key, value in self.params.items()) or "no filter"


def policy_searches_make(
    seeded: EntriesSeeded, count: int, rng: random.Random
) -> list[PolicySearch]:
    """The Policies page's filters alone and combined, first pages and deep ones."""
    from accounts.models import InventoryEntry
    from accounts.selectors import cursor_encode

    def deep() -> str:
        # A page link from deep in the list: the cursor of an entry picked at random.
        return cursor_encode(InventoryEntry(name=rng.choice(seeded.names), id=0))

    makers: list[tuple[str, Callable[[], dict[str, str]]]] = [
        ("first page, no filter", lambda: {}),
        ("deep page, no filter", lambda: {"after": deep()}),
        ("account", lambda: {"account": rng.choice(seeded.account_ids)}),
        ("type", lambda: {"type": rng.choice(["role", "s3", "sqs", "redshift", "user"])}),
        ("type, deep page", lambda: {"type": rng.choice(["role", "sqs"]), "after": deep()}),
        ("tag key", lambda: {"tag": rng.choice(["team", "env", "cost-center", "owner"])}),
        ("tag key=value", lambda: {"tag": f"team={rng.choice(TEAMS)}"}),
        ("text", lambda: {"q": _fragment(rng, rng.choice(seeded.names), 4, 14)}),
        (
            "text and type",
            lambda: {"q": rng.choice(TEAMS)[:5], "type": rng.choice(["role", "s3", "sns"])},
        ),
        ("public", lambda: {"public": "on"}),
        ("resource policy and type", lambda: {"has_policy": "on", "type": "s3"}),
        ("not changed in N days", lambda: {"unchanged_days": str(rng.choice([30, 365, 900]))}),
        (
            "account, tag and text",
            lambda: {
                "account": rng.choice(seeded.account_ids),
                "tag": f"env={rng.choice(ENVIRONMENTS)}",
                "q": rng.choice(COMPONENTS),
            },
        ),
        ("public and tag", lambda: {"public": "on", "tag": f"team={rng.choice(TEAMS)}"}),
        ("no match", lambda: {"q": _mixed_case(rng, rng.choice(NO_MATCH))}),
    ]
    made = [
        PolicySearch(kind, make()) for kind, make in (makers[i % len(makers)] for i in range(count))
    ]
    rng.shuffle(made)
    return made


def policy_page_request(search: PolicySearch) -> tuple[int, int]:
    """What the Policies page does for one request, short of rendering the
    template: the form and the selector's page."""
    from accounts import selectors
    from accounts.forms import PolicySearchForm
    from accounts.views import PAGE_SIZE

    form = PolicySearchForm(search.params)
    if not form.is_valid():
        raise SystemExit(f"the filter form rejected {search}: {form.errors.as_text()}")
    page = selectors.policies_page(
        form.criteria,
        size=PAGE_SIZE,
        after=form.cleaned_data["after"],
        before=form.cleaned_data["before"],
    )
    rows = len(page.entries)
    return rows + (1 if page.next_cursor else 0), rows


def _policy_queries(search: PolicySearch) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        policy_page_request(search)
    return [q["sql"] for q in captured.captured_queries if "accounts_inventoryentry" in q["sql"]]


def policy_explain(search: PolicySearch) -> None:
    from django.db import connection

    for sql in _policy_queries(search):
        print(f"\n  {_shorten(sql)}")
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            for (line,) in cursor.fetchall():
                print(f"    {_shorten(line)}")


# --- the searches ---------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    kind: str
    q: str
    account: str = ""

    @property
    def params(self) -> dict[str, str]:
        params = {"q": self.q}
        if self.account:
            params["account"] = self.account
        return params

    def __str__(self) -> str:
        return f"q={self.q!r}" + (f" account={self.account}" if self.account else "")


def _fragment(rng: random.Random, text: str, shortest: int, longest: int) -> str:
    length = rng.randint(shortest, min(longest, len(text)))
    start = rng.randrange(len(text) - length + 1)
    return text[start : start + length]


def _mixed_case(rng: random.Random, text: str) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def searches_make(seeded: Seeded, count: int, rng: random.Random) -> list[Search]:
    """The mix: what people type into the search box, as the page sends it."""
    made: list[Search] = []
    for index in range(count):
        account_id, path, name = rng.choice(seeded.sample)
        slot = index % 20
        if slot < 8:
            made.append(Search("partial name", _fragment(rng, name, 3, 12)))
        elif slot < 11:
            arn = f"arn:aws:iam::{account_id}:role{path}{name}"
            shape = rng.random()
            if shape < 0.4:
                # Pasted from a console: the start of the ARN up to part of the name.
                text = arn[: len(arn) - rng.randint(0, max(len(name) - 3, 0))]
            elif shape < 0.7:
                text = f":role{path}{name[: rng.randint(3, len(name))]}"
            else:
                text = f"{account_id}:role{path}"
            made.append(Search("partial ARN", text))
        elif slot < 13:
            made.append(Search("account-id fragment", _fragment(rng, account_id, 4, 8)))
        elif slot < 15:
            made.append(Search("mixed case", _mixed_case(rng, _fragment(rng, name, 4, 12))))
        elif slot < 17:
            made.append(
                Search("with account filter", _fragment(rng, name, 3, 10), account=account_id)
            )
        else:
            made.append(Search("no match", _mixed_case(rng, rng.choice(NO_MATCH))))
    rng.shuffle(made)
    return made


def page_request(search: Search) -> tuple[int, int]:
    """What the role list view does for one request, short of rendering the template:
    the form and the selector's page (one row past it). Returns how many roles
    the page found at least (its last position, plus one when there is a next
    page) and how many it shows."""
    from accounts import selectors
    from accounts.forms import RoleSearchForm
    from accounts.views import PAGE_SIZE

    form = RoleSearchForm(search.params)
    if not form.is_valid():
        raise SystemExit(f"the search form rejected {search}: {form.errors.as_text()}")
    page = selectors.roles_page(
        query=form.cleaned_data["q"], account_id=form.account_id, number=1, size=PAGE_SIZE
    )
    return page.end_index + (1 if page.has_next else 0), len(page.roles)


def page_request_counted(search: Search) -> tuple[int, int]:
    """The role list's code path before: a Paginator, which counts the capped
    matches, then reads the first page."""
    from django.core.paginator import Paginator

    from accounts import selectors
    from accounts.forms import RoleSearchForm
    from accounts.views import PAGE_SIZE

    form = RoleSearchForm(search.params)
    if not form.is_valid():
        raise SystemExit(f"the search form rejected {search}: {form.errors.as_text()}")
    roles = selectors.roles_search(query=form.cleaned_data["q"], account_id=form.account_id)
    page = Paginator(roles, PAGE_SIZE).get_page(1)
    rows = list(page.object_list)
    return page.paginator.count, len(rows)


# --- measuring and output ---------------------------------------------------------


@dataclass
class Timed:
    search: Any  # a Search or a PolicySearch
    ms: float
    matches: int
    # How PostgreSQL reads accounts_iamrole for this search (filled after timing).
    plan: str = ""


def _percentile(values: list[float], percent: float) -> float:
    # Nearest rank: the smallest value with at least `percent` of the values at or below it.
    ordered = sorted(values)
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def measure(
    searches: list[Any], *, repeat: int, request: Callable[[Any], tuple[int, int]] | None = None
) -> list[Timed]:
    """Time every search; with `repeat` > 1 the whole list is run that many times and
    each search keeps its fastest time, which filters out other work on the machine."""
    request = request or page_request
    for search in searches[:WARM_UP_QUERIES]:
        request(search)
    timed = [Timed(search, float("inf"), 0) for search in searches]
    for _ in range(repeat):
        for t in timed:
            started = time.perf_counter()
            t.matches, _ = request(t.search)
            t.ms = min(t.ms, (time.perf_counter() - started) * 1000)
    return timed


def _role_queries(search: Search) -> list[str]:
    """The SQL of the queries on roles one request of `search` runs (not the form's
    account lookup, a unique-index hit)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        page_request(search)
    return [q["sql"] for q in captured.captured_queries if "accounts_iamrole" in q["sql"]]


def _scans(node: dict[str, Any]) -> Iterator[str]:
    """How each node of a JSON plan reads the roles table."""
    index = node.get("Index Name", "")
    relation = node.get("Relation Name")
    if relation == "accounts_iamrole" and node["Node Type"] == "Seq Scan":
        yield "seq scan"
    elif relation == "accounts_rolearntail" and node["Node Type"] == "Seq Scan":
        yield "all tails"
    elif index == "accounts_rolearntail_search_key_trgm":
        yield "tail trigram"
    elif relation == "accounts_iamrole" and index:
        short = index.removeprefix("accounts_iamrole_")
        # No index condition: every entry is read and the filter applied to each.
        yield f"index {short}" if "Index Cond" in node else f"all of index {short}"
    for child in node.get("Plans", []):
        yield from _scans(child)


def plans_classify(timed: list[Timed]) -> None:
    """Label every search with how its queries read the roles table, from EXPLAIN."""
    from django.db import connection

    for t in timed:
        found: set[str] = set()
        for sql in _role_queries(t.search):
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
                document = cursor.fetchone()[0]
            plan = json.loads(document) if isinstance(document, str) else document
            found.update(_scans(plan[0]["Plan"]))
        t.plan = " + ".join(sorted(found)) or "none"


def explain(search: Search, *, analyze: bool) -> None:
    from django.db import connection

    for sql in _role_queries(search):
        print(f"\n  {_shorten(sql)}")
        with connection.cursor() as cursor:
            cursor.execute(f"{'EXPLAIN (ANALYZE, BUFFERS)' if analyze else 'EXPLAIN'} {sql}")
            for (line,) in cursor.fetchall():
                print(f"    {_shorten(line)}")


def _shorten(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else f"{text[:limit]} … ({len(text):,} characters)"


def _table(title: str, groups: dict[str, list[Timed]]) -> None:
    header = (
        f"{title:<44} {'n':>4} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'median matches':>15}"
    )
    print()
    print(header)
    print("-" * len(header))
    for label, group in groups.items():
        ms = [t.ms for t in group]
        print(
            f"{label:<44} {len(group):>4} {_percentile(ms, 50):>7.1f} {_percentile(ms, 95):>7.1f} "
            f"{max(ms):>7.1f} {statistics.median(t.matches for t in group):>15,.0f}"
        )


def report(
    timed: list[Timed],
    *,
    target_ms: float,
    landing: list[float] | None = None,
    what: str = "searches",
    plans: str = "how the roles table is read",
) -> bool:
    by_kind = {
        k: [t for t in timed if t.search.kind == k] for k in sorted({t.search.kind for t in timed})
    }
    _table(f"kind of {what.rstrip('s')}", {**by_kind, "all": timed})
    if any(t.plan for t in timed):
        by_plan = {p: [t for t in timed if t.plan == p] for p in sorted({t.plan for t in timed})}
        _table(plans, by_plan)
    all_ms = [t.ms for t in timed]
    p50, p95, p99 = (_percentile(all_ms, p) for p in (50, 95, 99))
    met = p95 <= target_ms
    print()
    print(
        f"all {len(timed)} {what}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(all_ms):.1f} ms"
    )
    print(f"p95 <= {target_ms:.0f} ms: {'met' if met else 'MISSED'}")
    if landing:
        print(
            f"No search text (the page as first opened, not in the mix): median "
            f"{statistics.median(landing):.1f} ms over {len(landing)} requests"
        )
    print(f"\nSlowest {what}:")
    for t in sorted(timed, key=lambda t: t.ms, reverse=True)[:8]:
        print(f"  {t.ms:>6.1f} ms {t.matches:>7,} found  {t.plan or '-':<22} {t.search}")
    return met


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def roles_measure(seeded: Seeded, args: argparse.Namespace, rng: random.Random) -> bool:
    import bench

    postgresql = bench.is_postgresql()
    searches = searches_make(seeded, args.queries, rng)
    repeat = f", fastest of {args.repeat} runs each" if args.repeat > 1 else ""
    print(
        f"\nRole search: timing {len(searches)} searches{repeat} after "
        f"{min(WARM_UP_QUERIES, len(searches))} untimed ones; load average {_load()}",
        flush=True,
    )
    timed = measure(searches, repeat=args.repeat)
    landing = []
    for _ in range(5):
        started = time.perf_counter()
        page_request(Search("no search text", ""))
        landing.append((time.perf_counter() - started) * 1000)
    print(f"Load average after timing: {_load()}")
    if postgresql:
        plans_classify(timed)
    met = report(timed, target_ms=TARGET_P95_MS, landing=landing)
    if args.compare_count:
        print(f"\nThe same searches through the code path before (with its COUNT); {_load()}")
        before = measure(searches, repeat=args.repeat, request=page_request_counted)
        report(before, target_ms=TARGET_P95_MS)
    if postgresql:
        matched = sorted(
            (t for t in timed if t.search.kind == "partial name" and t.matches),
            key=lambda t: t.matches,
        )
        typical = matched[len(matched) // 2].search if matched else timed[0].search
        print(f"\nPlan of a typical search, {typical} (EXPLAIN, not executed):")
        explain(typical, analyze=False)
        if not met:
            print("\np95 missed. EXPLAIN ANALYZE of the three slowest searches:")
            for t in sorted(timed, key=lambda t: t.ms, reverse=True)[:3]:
                print(f"\n{t.search}: {t.ms:.1f} ms")
                explain(t.search, analyze=True)
    return met


def policies_measure(seeded: EntriesSeeded, args: argparse.Namespace, rng: random.Random) -> bool:
    import bench

    searches = policy_searches_make(seeded, args.queries, rng)
    print(
        f"\nPolicies page: timing {len(searches)} filtered pages after "
        f"{min(WARM_UP_QUERIES, len(searches))} untimed ones; load average {_load()}",
        flush=True,
    )
    timed = measure(searches, repeat=args.repeat, request=policy_page_request)
    print(f"Load average after timing: {_load()}")
    met = report(timed, target_ms=POLICIES_TARGET_P95_MS, what="pages")
    if bench.is_postgresql() and not met:
        print("\np95 missed. EXPLAIN ANALYZE of the three slowest pages:")
        for t in sorted(timed, key=lambda t: t.ms, reverse=True)[:3]:
            print(f"\n{t.search}: {t.ms:.1f} ms")
            policy_explain(t.search)
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--roles", type=int, default=1_000_000, help="roles to load (default 1000000)"
    )
    parser.add_argument(
        "--items", type=int, default=500_000, help="Policies page entries (default 500000)"
    )
    parser.add_argument("--queries", type=int, default=200, help="searches to time (default 200)")
    parser.add_argument("--accounts", type=int, default=50, help="accounts (default 50)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the searches this many times and keep each one's fastest time (default 1)",
    )
    parser.add_argument(
        "--only", choices=("roles", "policies"), help="measure one of the two (default both)"
    )
    parser.add_argument(
        "--compare-count",
        action="store_true",
        help="also time the role list's code path before, which counted the matches",
    )
    parser.add_argument(
        "--allow-sqlite",
        action="store_true",
        help="run on another database engine anyway (the targets are about PostgreSQL)",
    )
    args = parser.parse_args()
    if args.roles < args.accounts or min(args.accounts, args.queries, args.repeat) < 1:
        parser.error("need at least one account, one search, one repeat, and a role per account")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import bench

    bench.django_setup()
    print(f"Database engine: {bench.engine()}")
    postgresql = bench.is_postgresql()
    if not postgresql and not args.allow_sqlite:
        raise SystemExit(
            "This benchmark measures PostgreSQL's indexes: set DATABASE_URL to a "
            "PostgreSQL database (postgres://...), or pass --allow-sqlite to run it anyway."
        )

    rng = random.Random(SEED)
    verdicts: dict[str, bool] = {}
    with bench.throwaway_database():
        indexes_drop()
        seeded = entries_seeded = None
        if args.only != "policies":
            print(f"Loading {args.roles:,} roles into {args.accounts} accounts", flush=True)
            seeded = inventory_load(roles=args.roles, accounts=args.accounts, rng=rng)
        if args.only != "roles":
            print(f"Loading {args.items:,} Policies page entries", flush=True)
            entries_seeded = entries_load(items=args.items, accounts=args.accounts, rng=rng)
        indexes_build_and_analyze()
        if seeded is not None:
            verdicts[f"role search at {args.roles:,} roles"] = roles_measure(seeded, args, rng)
        if entries_seeded is not None:
            verdicts[f"Policies page at {args.items:,} items"] = policies_measure(
                entries_seeded, args, rng
            )
    if not postgresql:
        print("\nNot PostgreSQL: no trigram index, so these figures say nothing about the targets.")
        return
    print()
    for what, met in verdicts.items():
        print(f"{what}: {'target met' if met else 'target missed: see above'}")


if __name__ == "__main__":
    main()
