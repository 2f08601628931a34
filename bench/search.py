"""Benchmark: the role search behind the role list page, on a large inventory.

Loads 100,000 roles across 50 accounts into a throwaway copy of the database
DATABASE_URL names, runs VACUUM ANALYZE (ANALYZE on SQLite), then times 200
searches through the same code path as the role list page: the search form,
`selectors.roles_search`, and a Paginator of 50 whose count and first page are
read. A mix of partial names, partial ARNs, account-id fragments, mixed case,
account filters and searches that match nothing. Template rendering is not
included.

Target: p95 <= 25 ms on PostgreSQL, where the trigram indexes of migration
accounts 0002 serve the case-insensitive substring match on the ARN. It prints
the percentiles, a breakdown per kind of search and per way the roles table is
read, and the plan of one typical search's queries; when p95 misses, the
EXPLAIN ANALYZE of the slowest searches too.

Run: .venv/bin/python bench/search.py [--roles 100000] [--queries 200]
         [--accounts 50] [--repeat 1] [--allow-sqlite]
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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import AwsAccount, IamRole

TARGET_P95_MS = 25.0
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
    from django.db import connection

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
    with connection.cursor() as cursor:
        # VACUUM as well: a table that has just had 100,000 rows inserted is not what
        # a server in use has (hint bits unset, no visibility map), and autovacuum
        # would otherwise start on it in the middle of the measurement.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return Seeded(account_ids=account_ids, sample=sample)


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
    the form, the selector, the paginator's count and the first page's rows."""
    from django.core.paginator import Paginator

    from accounts import selectors
    from accounts.forms import RoleSearchForm
    from accounts.views import PAGE_SIZE

    form = RoleSearchForm(search.params)
    if not form.is_valid():
        raise SystemExit(f"the search form rejected {search}: {form.errors.as_text()}")
    roles = selectors.roles_search(query=form.cleaned_data["q"], account_id=form.account_id)
    page = Paginator(roles, PAGE_SIZE).get_page(search.params.get("page"))
    rows = list(page.object_list)
    return page.paginator.count, len(rows)


# --- measuring and output ---------------------------------------------------------


@dataclass
class Timed:
    search: Search
    ms: float
    matches: int
    # How PostgreSQL reads accounts_iamrole for this search (filled after timing).
    plan: str = ""


def _percentile(values: list[float], percent: float) -> float:
    # Nearest rank: the smallest value with at least `percent` of the values at or below it.
    ordered = sorted(values)
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def measure(searches: list[Search], *, repeat: int) -> list[Timed]:
    """Time every search; with `repeat` > 1 the whole list is run that many times and
    each search keeps its fastest time, which filters out other work on the machine."""
    for search in searches[:WARM_UP_QUERIES]:
        page_request(search)
    timed = [Timed(search, float("inf"), 0) for search in searches]
    for _ in range(repeat):
        for t in timed:
            started = time.perf_counter()
            t.matches, _ = page_request(t.search)
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
    if node.get("Relation Name") == "accounts_iamrole" and node["Node Type"] == "Seq Scan":
        yield "seq scan"
    elif index == "accounts_iamrole_arn_trgm":
        yield "trigram"
    elif index.startswith("accounts_iamrole"):
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


def report(timed: list[Timed], *, landing: list[float]) -> bool:
    by_kind = {
        k: [t for t in timed if t.search.kind == k] for k in sorted({t.search.kind for t in timed})
    }
    _table("kind of search", {**by_kind, "all": timed})
    if any(t.plan for t in timed):
        by_plan = {p: [t for t in timed if t.plan == p] for p in sorted({t.plan for t in timed})}
        _table("how the roles table is read", by_plan)
    all_ms = [t.ms for t in timed]
    p50, p95, p99 = (_percentile(all_ms, p) for p in (50, 95, 99))
    met = p95 <= TARGET_P95_MS
    print()
    print(
        f"all {len(timed)} searches: p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(all_ms):.1f} ms"
    )
    print(f"p95 <= {TARGET_P95_MS:.0f} ms: {'met' if met else 'MISSED'}")
    print(
        f"No search text (the page as first opened, not in the mix): median "
        f"{statistics.median(landing):.1f} ms over {len(landing)} requests"
    )
    print("\nSlowest searches:")
    for t in sorted(timed, key=lambda t: t.ms, reverse=True)[:8]:
        print(f"  {t.ms:>6.1f} ms {t.matches:>7,} matches  {t.plan or '-':<22} {t.search}")
    return met


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--roles", type=int, default=100_000, help="roles to load (default 100000)")
    parser.add_argument("--queries", type=int, default=200, help="searches to time (default 200)")
    parser.add_argument("--accounts", type=int, default=50, help="accounts (default 50)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the searches this many times and keep each one's fastest time (default 1)",
    )
    parser.add_argument(
        "--allow-sqlite",
        action="store_true",
        help="run on another database engine anyway (the target is about PostgreSQL)",
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
            "This benchmark measures the PostgreSQL trigram index: set DATABASE_URL to a "
            "PostgreSQL database (postgres://...), or pass --allow-sqlite to run it anyway."
        )

    rng = random.Random(SEED)
    with bench.throwaway_database():
        print(f"Loading {args.roles:,} roles into {args.accounts} accounts", flush=True)
        seeded = inventory_load(roles=args.roles, accounts=args.accounts, rng=rng)
        searches = searches_make(seeded, args.queries, rng)
        repeat = f", fastest of {args.repeat} runs each" if args.repeat > 1 else ""
        print(
            f"Timing {len(searches)} searches{repeat} after "
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
        met = report(timed, landing=landing)

        if not postgresql:
            print("\nNot PostgreSQL: no trigram index, so these figures say nothing about it.")
        else:
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
                    print(f"\n{t.search}: {t.ms:.1f} ms, {t.matches:,} matches")
                    explain(t.search, analyze=True)
    if not postgresql:
        print("No verdict: the target is about PostgreSQL.")
    else:
        print("Target met." if met else "Target missed: see above.")


if __name__ == "__main__":
    main()
