"""Benchmark: the Weep CLI's two hot calls, role list and credentials, end to end.

Loads 5,000 roles across 20 accounts into a throwaway copy of the database
DATABASE_URL names (some roles tagged `iamportal-authorized` or
`iamportal-authorized-cli-only` with group names or emails), saves 50 group
access rules through `access_rule_save` (exact ARNs and wildcard patterns), and
puts one user in 20 groups through `user_groups_sync`, so that the user may use
a few hundred roles. `--grants N` adds N grants of single roles to single users
(user access rules on an exact ARN ending within a week, one in twenty starting
later: the shape of a granted access request), most
to other people and a few to the user, to show that the cost of a request does
not grow with everyone else's grants. Every request goes through Django's whole
stack with the cookie the challenge login hands Weep, handed to iamportal's WSGI
application as a WSGI server such as gunicorn hands it (so Django's per-request
connection health check runs, as in production, and none of django.test.Client's
extras do); AWS is moto's in-process mock.

  (1) GET /api/v2/get_roles?all=true, what Weep's role picker asks for;
  (2) POST /api/v1/get_credentials for an eligible role, given by its exact ARN;
  (3) the bare STS AssumeRole call of (2), through the same client and with the
      same parameters; (2) and (3) alternate, so both see the same machine.

Each request is timed on the wall clock and on the process's CPU clock
(time.process_time: this thread's Python, Django and database-driver work, not the
database server's). moto answers in this process, so the CPU of (2) includes
moto's; (2) - (3) per pair is what iamportal itself spends.

The first request of all builds the access index; its time is printed apart.
Targets, on PostgreSQL: (1) p95 <= 30 ms; the overhead of (2) over (3), per pair,
p95 <= 5 ms; iamportal's CPU per credential request, (2) - (3), p50 <= 7 ms.
It also prints the queries each request runs and, when a target is missed, a
profile of a few requests of the call that missed.

Run: .venv/bin/python bench/brokering.py [--roles 5000] [--rules 50] [--groups 20]
         [--grants 0] [--requests 200]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from accounts.models import AwsAccount, IamRole

TARGET_ROLES_P95_MS = 30.0
TARGET_OVERHEAD_P95_MS = 5.0
TARGET_CPU_P50_MS = 7.0
ACCOUNTS = 20
WARM_UP_REQUESTS = 10
PROFILED_REQUESTS = 20
PROFILE_LINES = 12
PROJECT_APPS = ("accounts", "brokering", "iamportal", "requests_app")
SEED = 20261
# Grants draw from a generator of their own: the roles, rules and user stay those
# of a run without them.
GRANTS_SEED = 20262
# Grants per other person, and how many of every 500 grants go to the user.
GRANTS_PER_PERSON = 10
USER_GRANTS_PER_500 = 1
BATCH_SIZE = 1000

ROLES_PATH = "/api/v2/get_roles?all=true"
CREDENTIALS_PATH = "/api/v1/get_credentials"
# What Weep sends; only the audit log keeps it.
WEEP_AGENT = "weep/v0.3.26 (darwin; arm64)"
USER_EMAIL = "alice.martin@acme.example"

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
)
COMPONENTS = ("api", "worker", "batch", "consumer", "scheduler", "etl", "web", "admin", "cron")
ENVIRONMENTS = ("prod", "staging", "dev", "sandbox")
# Roles people, not services, assume: the same names in every account.
HUMAN_ROLES = (
    "ReadOnly",
    "PowerUser",
    "Administrator",
    "BreakGlass",
    "Billing",
    "SecurityAudit",
    "DataEngineer",
    "Developer",
)
AWS_SERVICE_ROLES = (
    ("ecs.amazonaws.com", "AWSServiceRoleForECS"),
    ("elasticloadbalancing.amazonaws.com", "AWSServiceRoleForElasticLoadBalancing"),
    ("rds.amazonaws.com", "AWSServiceRoleForRDS"),
    ("autoscaling.amazonaws.com", "AWSServiceRoleForAutoScaling"),
    ("organizations.amazonaws.com", "AWSServiceRoleForOrganizations"),
)
OTHER_PEOPLE = ("bob.chen", "carol.diaz", "dan.okafor", "erin.walsh", "farid.haddad")


def group_pool() -> list[str]:
    """Every group name the identity provider knows, in a fixed order."""
    pool = [f"team-{team}" for team in TEAMS]
    pool += [f"oncall-{team}" for team in TEAMS[:10]]
    pool += ["engineering", "sre", "security", "data-platform", "finance", "support"]
    return pool


# --- the inventory, the rules and the user --------------------------------------------


def _account_roles(rng: random.Random, count: int) -> Iterator[tuple[str, str, str]]:
    """`count` distinct (path, name, team) of one account, in the styles real accounts mix."""
    for service, name in AWS_SERVICE_ROLES:
        yield f"/aws-service-role/{service}/", name, "platform"
    yield "/", "OrganizationAccountAccessRole", "platform"
    yield "/", "iamportal-spoke", "platform"
    for name in HUMAN_ROLES:
        yield "/", name, "platform"
    made = len(AWS_SERVICE_ROLES) + 2 + len(HUMAN_ROLES)
    seen: set[str] = set()
    numbers: dict[str, int] = {}
    while made < count:
        team = rng.choice(TEAMS)
        component = rng.choice(COMPONENTS)
        style = rng.random()
        if style < 0.55:
            key = f"svc-{team}-{component}"
            numbers[key] = numbers.get(key, 0) + 1
            path = rng.choice(("/", "/service/", f"/team/{team}/"))
            name = f"{key}-{numbers[key]:03d}"
        elif style < 0.75:
            path, name = "/", f"{team}-{component}-{rng.choice(ENVIRONMENTS)}"
        elif style < 0.9:
            path = "/lambda/"
            name = f"{team}-{component}-lambda-exec-{rng.randrange(1000):03d}"
        else:
            path, name = "/", f"{team.title()}{component.title()}Role"
        if name in seen:
            continue
        seen.add(name)
        made += 1
        yield path, name, team


def _tags(rng: random.Random, team: str, groups: list[str]) -> dict[str, str]:
    tags = {"team": team, "cost-center": f"cc-{TEAMS.index(team) + 100}"}
    draw = rng.random()
    # Tag values list principals separated by ':' (a group name, or an email).
    if draw < 0.03:
        tags["iamportal-authorized"] = ":".join(rng.sample(groups, rng.randint(1, 2)))
    elif draw < 0.045:
        tags["iamportal-authorized-cli-only"] = f"team-{team}"
    elif draw < 0.05:
        person = USER_EMAIL if rng.random() < 0.3 else f"{rng.choice(OTHER_PEOPLE)}@acme.example"
        tags["iamportal-authorized-cli-only"] = person
    return tags


def _role(
    rng: random.Random, account: AwsAccount, path: str, name: str, tags: dict[str, str]
) -> IamRole:
    from accounts.models import IamRole

    now = datetime.now(UTC)
    service = "ecs-tasks" if name.startswith("svc-") else "lambda"
    principal: dict[str, Any] = {"Service": f"{service}.amazonaws.com"}
    if name in HUMAN_ROLES:
        principal = {"Federated": f"arn:aws:iam::{account.account_id}:saml-provider/acme-sso"}
    return IamRole(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:role{path}{name}",
        name=name,
        path=path,
        role_id="AROA" + "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=17)),
        description=f"{name} ({account.name})",
        trust_policy={
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
        },
        tags=tags,
        max_session_duration=rng.choice((3600, 3600, 7200, 43200)),
        created_in_aws_at=now - timedelta(days=rng.randrange(2000)),
        content_hash="bench",
        synced_at=now,
    )


def inventory_load(*, roles: int, rng: random.Random) -> tuple[list[AwsAccount], int]:
    from django.db import connection

    from accounts.models import AwsAccount, IamRole

    account_ids: set[str] = set()
    while len(account_ids) < ACCOUNTS:
        account_ids.add(f"{rng.randrange(10**11, 10**12):012d}")
    accounts = AwsAccount.objects.bulk_create(
        AwsAccount(
            account_id=account_id,
            name=f"acme-{TEAMS[i % len(TEAMS)]}-{ENVIRONMENTS[i % len(ENVIRONMENTS)]}",
            environment=ENVIRONMENTS[i % len(ENVIRONMENTS)],
        )
        for i, account_id in enumerate(sorted(account_ids))
    )
    groups = group_pool()
    batch: list[IamRole] = []
    tagged = 0
    for position, account in enumerate(accounts):
        share = roles // ACCOUNTS + (1 if position < roles % ACCOUNTS else 0)
        for path, name, team in _account_roles(rng, share):
            tags = _tags(rng, team, groups)
            tagged += any(key.startswith("iamportal-authorized") for key in tags)
            batch.append(_role(rng, account, path, name, tags))
            if len(batch) == BATCH_SIZE:
                IamRole.objects.bulk_create(batch)
                batch = []
    IamRole.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        # As on a server in use: statistics and a visibility map, no autovacuum mid-run.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return accounts, tagged


def _rule_pattern(kind: int, rng: random.Random, accounts: list[AwsAccount]) -> str:
    from accounts.models import IamRole

    account = rng.choice(accounts).account_id
    team = rng.choice(TEAMS)
    if kind == 0:
        return f"arn:aws:iam::{account}:role/svc-{team}-*"
    if kind == 1:
        return f"arn:aws:iam::*:role/{rng.choice(HUMAN_ROLES)}"
    if kind == 2:
        return f"arn:aws:iam::*:role/team/{team}/*"
    if kind == 3:
        return f"arn:aws:iam::{account}:role/*{team}*"
    if kind == 4:
        return f"arn:aws:iam::{account}:role/svc-{team}-{rng.choice(COMPONENTS)}-00?"
    # An exact ARN, in the case AWS shows it.
    arns = IamRole.objects.filter(account__account_id=account, path="/").values_list(
        "arn", flat=True
    )
    return rng.choice(list(arns))


def rules_save(
    *, count: int, accounts: list[AwsAccount], user_groups: list[str], rng: random.Random
) -> None:
    """`count` group rules through the service, so the access revision moves as in use;
    every other one names a group of the user."""
    from django.contrib.auth.models import Group

    from brokering.models import AccessRule
    from brokering.services import access_rule_save

    others = [name for name in group_pool() if name not in user_groups] or user_groups
    for index in range(count):
        name = user_groups[index // 2 % len(user_groups)] if index % 2 == 0 else rng.choice(others)
        group, _ = Group.objects.get_or_create(name=name)
        kind = index // 2 % 6
        access_rule_save(
            rule=AccessRule(
                group=group,
                role_pattern=_rule_pattern(kind, rng, accounts),
                cli_only=index % 5 == 4,
                description=f"bench rule {index}",
            )
        )


def user_make(*, groups: int, rng: random.Random) -> tuple[User, list[str]]:
    from django.contrib.auth.models import User

    from iamportal.auth import user_groups_sync

    pool = group_pool()
    # Always an engineer of one team; the rest drawn from every kind of group.
    chosen = ["engineering", "team-payments"]
    chosen += rng.sample([g for g in pool if g not in chosen], max(groups - len(chosen), 0))
    chosen = chosen[:groups]
    user = User.objects.create_user(username=USER_EMAIL, email=USER_EMAIL)
    user_groups_sync(user=user, group_names=chosen)
    return user, chosen


def grants_save(*, count: int, user: User, rng: random.Random) -> int:
    """`count` grants of one role to one user, in bulk (an access request granted
    through the service saves one at a time, which would only make loading slow);
    the access revision moves once at the end. Returns how many went to `user`."""
    from django.contrib.auth.models import User

    from accounts.models import IamRole
    from brokering import eligibility
    from brokering.models import AccessRule

    if count == 0:
        return 0
    arns = list(IamRole.objects.values_list("arn", flat=True))
    own = count * USER_GRANTS_PER_500 // 500
    people = User.objects.bulk_create(
        User(username=f"grantee-{n:05d}@acme.example", email=f"grantee-{n:05d}@acme.example")
        for n in range(max(1, (count - own) // GRANTS_PER_PERSON))
    )
    grantees = [user] * own + [people[n % len(people)] for n in range(count - own)]
    batch: list[AccessRule] = []
    now = datetime.now(UTC)
    for index, grantee in enumerate(grantees):
        # As granted access requests leave them: each ends within a week, and one
        # in twenty (never the user's) starts later.
        later = grantee is not user and index % 20 == 19
        batch.append(
            AccessRule(
                user=grantee,
                role_pattern=rng.choice(arns),
                cli_only=index % 3 == 0,
                description=f"bench grant {index}",
                starts_at=now + timedelta(hours=rng.randint(1, 48)) if later else None,
                expires_at=now + timedelta(hours=rng.randint(49, 168)),
            )
        )
        if len(batch) == BATCH_SIZE:
            AccessRule.objects.bulk_create(batch)
            batch = []
    AccessRule.objects.bulk_create(batch)
    eligibility.access_changed()
    return own


def cli_cookie(user: User) -> str:
    """The token Weep gets: a challenge asked for, approved in the browser, claimed once."""
    from brokering import cli_auth

    challenge = cli_auth.cli_challenge_create(
        requested_user=user.get_username(), requesting_ip="127.0.0.1"
    )
    if not cli_auth.cli_challenge_approve(challenge=challenge, user=user):
        raise SystemExit("the challenge login was not approved")
    poll = cli_auth.cli_challenge_claim(token=challenge.token, polling_ip="127.0.0.1")
    if poll.token is None:
        raise SystemExit(f"the challenge login gave no token: {poll.status}")
    return poll.token.encoded


# --- the requests -------------------------------------------------------------------


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _cpu_ms(started: float) -> float:
    return (time.process_time() - started) * 1000


@dataclass
class Timings:
    """Wall-clock and CPU milliseconds of each timed call."""

    wall: list[float]
    cpu: list[float]

    def time(self, call: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        self.cpu.append(_cpu_ms(cpu))
        self.wall.append(_ms(wall))


def _differences(first: list[float], second: list[float]) -> list[float]:
    return [a - b for a, b in zip(first, second, strict=True)]


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """What a WSGI server does with one request from Weep: an environ as gunicorn
    builds it, iamportal's WSGI application called with it, the body read and the
    response closed (which ends the request: Django's request_finished)."""

    def __init__(self, cookie: str) -> None:
        from django.conf import settings

        from iamportal.wsgi import application

        self.application = application
        self.cookie = f"{settings.IAMPORTAL_CLI_COOKIE_NAME}={cookie}"

    def request(self, method: str, target: str, body: bytes = b"") -> Answer:
        path, _, query = target.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "50000",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_USER_AGENT": WEEP_AGENT,
            "HTTP_ACCEPT": "*/*",
            "HTTP_COOKIE": self.cookie,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if body:
            environ["CONTENT_TYPE"] = "application/json"
            environ["CONTENT_LENGTH"] = str(len(body))
        statuses: list[str] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
        ) -> Callable[[bytes], object]:
            statuses.append(status)
            return sys.stdout.buffer.write  # WSGI's write(); Django never calls it

        chunks = self.application(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return Answer(status=int(statuses[0].split()[0]), body=content)


def _checked(answer: Answer, what: str) -> Answer:
    if answer.status != 200:
        raise SystemExit(f"{what} answered {answer.status}: {answer.body[:500]!r}")
    return answer


def roles_request(server: Server) -> Answer:
    return _checked(server.request("GET", ROLES_PATH), "get_roles")


def credentials_request(server: Server, arn: str) -> Answer:
    body = json.dumps({"requested_role": arn, "no_ip_restrictions": False}).encode()
    return _checked(server.request("POST", CREDENTIALS_PATH, body), f"get_credentials for {arn}")


def assume_role_params(user: User, arn: str) -> dict[str, Any]:
    """What `credentials_issue` sends to STS for `user` and this role."""
    from django.conf import settings

    from accounts.models import IamRole
    from brokering import services

    role = IamRole.objects.get(arn=arn)
    params: dict[str, Any] = {
        "RoleArn": role.arn,
        "RoleSessionName": services.session_name_for(user),
        "DurationSeconds": services.credential_duration(role),
    }
    networks = [str(n) for n in settings.IAMPORTAL_CREDENTIAL_ALLOWED_CIDRS]
    if networks:
        params["Policy"] = json.dumps(services.source_ip_policy(networks), separators=(",", ":"))
    return params


def assume_role_bare(params: dict[str, Any]) -> None:
    from iamportal import aws

    # The client as credentials_issue gets it from iamportal.aws.
    aws.client("sts").assume_role(**params)


@dataclass
class Pairs:
    full: Timings
    bare: Timings


def pairs_measure(server: Server, targets: list[tuple[str, dict[str, Any]]], count: int) -> Pairs:
    """(2) and (3) one after the other, taking turns at going first, so that neither
    always runs on the caches the other just warmed."""
    pairs = Pairs(full=Timings([], []), bare=Timings([], []))
    for index in range(count):
        arn, params = targets[index % len(targets)]
        for step in (0, 1) if index % 2 == 0 else (1, 0):
            if step == 0:
                pairs.full.time(partial(credentials_request, server, arn))
            else:
                pairs.bare.time(partial(assume_role_bare, params))
    return pairs


def queries_of(call: Callable[[], object]) -> list[tuple[str, float]]:
    """(SQL, ms until the database answered) of every query one call runs, with
    the connection health check Django runs before a request's first query (on
    the driver's own cursor, which execute_wrapper does not see)."""
    from django.db import connection

    queries: list[tuple[str, float]] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append((sql, _ms(started)))

    usable = connection.is_usable

    def health_check() -> bool:
        started = time.perf_counter()
        try:
            return usable()
        finally:
            queries.append(("SELECT 1 (the connection health check)", _ms(started)))

    connection.is_usable = health_check  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(timed):
            call()
    finally:
        del connection.is_usable
    return queries


def _origin(filename: str) -> str:
    """Who a profiled function belongs to: an app of this project, an installed
    package, the standard library, or C built-ins."""
    import bench

    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if filename == "~" or not parts:
        return "(built-in functions)"
    if filename.startswith("<frozen"):
        return "(standard library)"
    try:
        return Path(filename).resolve().relative_to(bench.ROOT).parts[0]
    except ValueError:
        return "(standard library)"


def profile(call: Callable[[], object], *, times: int, title: str) -> None:
    """Where the time of `times` calls goes: the project's functions by cumulative
    time, and own time summed by package."""
    import bench

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(times):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in stats.values())
    print(
        f"\n{title}: cProfile of {times} requests, {total / times * 1000:.1f} ms each under "
        "the profiler (which slows Python code down)"
    )
    own: dict[str, float] = {}
    ours: list[tuple[float, int, str]] = []
    for (filename, line, function), (_, calls, tt, ct, _) in stats.items():
        origin = _origin(filename)
        own[origin] = own.get(origin, 0.0) + tt
        if origin in PROJECT_APPS:
            where = Path(filename).resolve().relative_to(bench.ROOT)
            ours.append((ct, calls, f"{where}:{line}({function})"))
    print(f"  {'cumulative ms/request':>22} {'calls/request':>14}  project function")
    for ct, calls, name in sorted(ours, reverse=True)[:PROFILE_LINES]:
        print(f"  {ct / times * 1000:>22.2f} {calls / times:>14.1f}  {name}")
    print(f"  {'own ms/request':>22} {'share':>14}  package")
    for origin, tt in sorted(own.items(), key=lambda item: item[1], reverse=True)[:PROFILE_LINES]:
        print(f"  {tt / times * 1000:>22.2f} {tt / total:>14.0%}  {origin}")


# --- output -------------------------------------------------------------------------


def _summary(label: str, values: list[float]) -> str:
    import bench

    p50, p95, p99 = (bench.percentile(values, p) for p in (50, 95, 99))
    return f"{label:<44} {len(values):>4} {p50:>7.1f} {p95:>7.1f} {p99:>7.1f} {max(values):>7.1f}"


def _header(title: str) -> None:
    header = f"{title:<44} {'n':>4} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    print()
    print(header)
    print("-" * len(header))


def _queries(title: str, queries: list[tuple[str, float]]) -> None:
    spent = sum(ms for _, ms in queries)
    print(f"\n{title}: {len(queries)} queries, {spent:.1f} ms waiting for the database")
    for sql, ms in queries:
        sql = " ".join(sql.split())
        print(f"  {ms:>5.2f} ms  {sql[:130]}{' ...' if len(sql) > 130 else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--roles", type=int, default=5000, help="roles to load (default 5000)")
    parser.add_argument("--rules", type=int, default=50, help="access rules (default 50)")
    parser.add_argument("--groups", type=int, default=20, help="the user's groups (default 20)")
    parser.add_argument(
        "--grants",
        type=int,
        default=0,
        help="grants of one role to one user, most to other people (default 0)",
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="timed requests of each kind (default 200)"
    )
    args = parser.parse_args()
    if args.roles < ACCOUNTS * 20 or min(args.rules, args.grants) < 0:
        parser.error(f"need at least {ACCOUNTS * 20} roles, and no negative number of rules")
    if min(args.groups, args.requests) < 1:
        parser.error("need at least one group and one request")
    if args.groups > len(group_pool()):
        parser.error(f"at most {len(group_pool())} groups")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import bench

    bench.django_setup()

    from django.test import override_settings
    from moto import mock_aws

    from brokering import eligibility
    from brokering.models import CredentialIssuance
    from iamportal import aws

    print(f"Database engine: {bench.engine()}")
    if not bench.is_postgresql():
        print("Not PostgreSQL: the targets are about PostgreSQL, these figures are not.")
    rng = random.Random(SEED)
    aws.forget_sessions()
    with (
        bench.throwaway_database(),
        mock_aws(),
        # The bench asks for credentials far faster than anyone would.
        override_settings(IAMPORTAL_CREDENTIAL_RATE_LIMIT=10**6),
    ):
        started = time.perf_counter()
        accounts, tagged = inventory_load(roles=args.roles, rng=rng)
        user, user_groups = user_make(groups=args.groups, rng=rng)
        rules_save(count=args.rules, accounts=accounts, user_groups=user_groups, rng=rng)
        own_grants = grants_save(count=args.grants, user=user, rng=random.Random(GRANTS_SEED))
        print(
            f"Loaded {args.roles:,} roles in {ACCOUNTS} accounts ({tagged} with an "
            f"authorization tag), {args.rules} access rules, a user in {len(user_groups)} "
            f"groups, {args.grants:,} grants of a role to a user ({own_grants} to the user), "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        server = Server(cli_cookie(user))

        # The first request of a fresh process: it builds the access index.
        eligibility.forget_index()
        started = time.perf_counter()
        first = roles_request(server)
        cold_ms = _ms(started)
        eligible = [role["arn"] for role in first.json()["data"]["roles"]]
        index = eligibility.access_index()
        grants = sum(len(roles) for roles in index.grants.values())
        eligibility.forget_index()
        started = time.perf_counter()
        eligibility.access_index()
        build_ms = _ms(started)
        print(
            f"The user may use {len(eligible)} roles. Cold first request: {cold_ms:.1f} ms, "
            f"of which building the access index alone takes {build_ms:.1f} ms "
            f"({len(index.grants)} principals, {grants:,} grants)"
        )
        if not eligible:
            raise SystemExit("the user may use no role: nothing to ask credentials for")

        targets = [
            (arn, assume_role_params(user, arn))
            for arn in rng.sample(eligible, min(20, len(eligible)))
        ]
        for _ in range(WARM_UP_REQUESTS):
            roles_request(server)
            credentials_request(server, targets[0][0])
            assume_role_bare(targets[0][1])

        # As bench/sync.py: moto keeps all of AWS's state in this process (in use it is
        # in AWS), so keep the cyclic collector from walking it again and again.
        gc.collect()
        gc.freeze()
        print(
            f"Timing {args.requests} requests of each kind after {WARM_UP_REQUESTS} untimed "
            f"ones; (3) sends {', '.join(targets[0][1])}; load average {bench.load_average()}",
            flush=True,
        )
        roles = Timings([], [])
        for _ in range(args.requests):
            roles.time(partial(roles_request, server))
        pairs = pairs_measure(server, targets, args.requests)
        print(f"Load average after timing: {bench.load_average()}")

        client_ms: list[float] = []
        for _ in range(args.requests):
            started = time.perf_counter()
            aws.client("sts")
            client_ms.append(_ms(started))
        issued = CredentialIssuance.objects.filter(
            user=user, outcome=CredentialIssuance.Outcome.ISSUED
        ).count()

        overhead = _differences(pairs.full.wall, pairs.bare.wall)
        own_cpu = _differences(pairs.full.cpu, pairs.bare.cpu)
        _header("request, wall clock")
        print(_summary(f"(1) GET {ROLES_PATH}", roles.wall))
        print(_summary(f"(2) POST {CREDENTIALS_PATH}", pairs.full.wall))
        print(_summary("(3) bare STS AssumeRole (client + call)", pairs.bare.wall))
        print(_summary("    aws.client('sts') alone, in (2) and (3)", client_ms))
        print(_summary("(2) - (3), per pair", overhead))
        _header("request, CPU of this process")
        print(_summary(f"(1) GET {ROLES_PATH}", roles.cpu))
        print(_summary(f"(2) POST {CREDENTIALS_PATH}", pairs.full.cpu))
        print(_summary("(3) bare STS AssumeRole (moto's work)", pairs.bare.cpu))
        print(_summary("(2) - (3), per pair: iamportal's own", own_cpu))

        roles_p95 = bench.percentile(roles.wall, 95)
        overhead_p95 = bench.percentile(overhead, 95)
        cpu_p50 = bench.percentile(own_cpu, 50)
        p50_gap = bench.percentile(pairs.full.wall, 50) - bench.percentile(pairs.bare.wall, 50)
        p95_gap = bench.percentile(pairs.full.wall, 95) - bench.percentile(pairs.bare.wall, 95)
        roles_met = roles_p95 <= TARGET_ROLES_P95_MS
        overhead_met = overhead_p95 <= TARGET_OVERHEAD_P95_MS
        cpu_met = cpu_p50 <= TARGET_CPU_P50_MS
        print()
        print(
            f"(1) p95 {roles_p95:.1f} ms, target <= {TARGET_ROLES_P95_MS:.0f} ms: "
            f"{'met' if roles_met else 'MISSED'}"
        )
        print(
            f"(2) over (3): per pair p50 {bench.percentile(overhead, 50):.1f} ms, "
            f"p95 {overhead_p95:.1f} ms; difference of the p50s {p50_gap:.1f} ms, "
            f"of the p95s {p95_gap:.1f} ms"
        )
        print(
            f"overhead p95 (per pair) <= {TARGET_OVERHEAD_P95_MS:.0f} ms: "
            f"{'met' if overhead_met else 'MISSED'}"
        )
        print(
            f"iamportal's CPU per credential request, (2) - (3), p50 {cpu_p50:.1f} ms "
            f"(p95 {bench.percentile(own_cpu, 95):.1f} ms), target p50 <= "
            f"{TARGET_CPU_P50_MS:.0f} ms: {'met' if cpu_met else 'MISSED'}"
        )
        print(
            f"{issued} credentials issued and audited. moto answers in-process, far faster "
            "than STS over a network:\nagainst AWS (2) and (3) are both longer, by the same "
            "network round trip."
        )

        arn = targets[0][0]
        _queries(f"(1) GET {ROLES_PATH}", queries_of(lambda: roles_request(server)))
        _queries(
            f"(2) POST {CREDENTIALS_PATH}",
            queries_of(lambda: credentials_request(server, arn)),
        )
        if not roles_met:
            profile(lambda: roles_request(server), times=PROFILED_REQUESTS, title="(1) missed")
        if not (overhead_met and cpu_met):
            profile(
                lambda: credentials_request(server, arn),
                times=PROFILED_REQUESTS,
                title="(2) missed",
            )
    aws.forget_sessions()
    met = roles_met and overhead_met and cpu_met
    print("All targets met." if met else "Some targets missed: see above.")


if __name__ == "__main__":
    main()
