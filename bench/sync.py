"""Benchmark: a full inventory sync of a synthetic organisation.

Builds an organisation in moto's in-process AWS (default 20 accounts x 250
roles, 1,500 S3 buckets, SQS queues and SNS topics in all), onboards it into a
throwaway copy of the database DATABASE_URL names, then measures in one run:

  (a) the bare AWS calls of a full sync: `inventory_fetch` for every account;
  (b) a full sync into the database, as the worker task runs it;
  (a) and (b) alternate account by account, each timed on its own, so that a
  drift in the machine's speed weighs on both alike;
  (c) a second full sync with nothing changed.

Targets: (b) takes at most 1.5 times (a), i.e. writing the inventory costs at
most half as much again as reading it; (c) writes no row at all; peak memory of
a sync is bounded by one account, not by the number of accounts.

With --config-resources N, an AWS Config aggregator holds N resources of a
dozen types in every account (S3, SQS and SNS among them, so those are not read
directly). moto cannot answer aggregate queries, so the stand-in the demo and
the tests use answers them at the AWS edge, from items built before measuring
(as moto holds its state), and its JSON is parsed by botocore as AWS's would be.

Run: .venv/bin/python bench/sync.py [--accounts 20] [--roles 250] [--resources 1500]
       [--config-resources 2000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import AwsAccount

TARGET_RATIO = 1.5
MIB = 1024 * 1024

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
)
COMPONENTS = ("api", "worker", "batch", "consumer", "scheduler", "etl", "web", "admin")
ENVIRONMENTS = ("prod", "staging", "dev")
# Customer-managed policies of every account; some roles attach one.
MANAGED_POLICIES = ("acme-logs-write", "acme-readonly", "acme-kms-decrypt", "acme-xray-write")


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(actions: list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


@dataclass
class Plan:
    """How many resources of each type each account gets."""

    buckets: list[int]
    queues: list[int]
    topics: list[int]

    @classmethod
    def split(cls, *, accounts: int, resources: int) -> Plan:
        per_type = [resources // 3 + (1 if i < resources % 3 else 0) for i in range(3)]

        def spread(total: int) -> list[int]:
            return [total // accounts + (1 if i < total % accounts else 0) for i in range(accounts)]

        return cls(*(spread(total) for total in per_type))


@dataclass
class SeededAccount:
    account_id: str
    name: str
    environment: str


# --- the synthetic organisation ---------------------------------------------------


def _trust(index: int, account_id: str, hub_account_id: str) -> str:
    kind = index % 6
    if kind == 0:
        principal: dict[str, Any] = {"Service": "ecs-tasks.amazonaws.com"}
        return _doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})
    if kind == 1:
        return _doc(
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        )
    if kind == 2:
        return _doc(
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        )
    if kind == 3:
        return _doc(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{hub_account_id}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"sts:ExternalId": f"bench-{index:04d}"}},
            }
        )
    if kind == 4:
        provider = f"arn:aws:iam::{account_id}:oidc-provider/token.actions.githubusercontent.com"
        return _doc(
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
                    },
                    "StringLike": {
                        "token.actions.githubusercontent.com:sub": f"repo:acme/svc-{index}:*"
                    },
                },
            }
        )
    return _doc(
        {
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{account_id}:saml-provider/acme-sso"},
            "Action": "sts:AssumeRoleWithSAML",
            "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
        }
    )


def _inline_policies(index: int, team: str, account_id: str) -> dict[str, str]:
    bucket = f"arn:aws:s3:::acme-{account_id}-{team}-data"
    queue = f"arn:aws:sqs:us-east-1:{account_id}:{team}-events"
    policies = {
        f"{team}-data": _doc(
            _allow(["s3:ListBucket"], bucket),
            _allow(["s3:GetObject", "s3:PutObject"], f"{bucket}/{team}/*"),
        )
    }
    if index % 2:
        policies[f"{team}-events"] = _doc(
            _allow(["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"], queue),
            _allow(
                ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
                f"arn:aws:dynamodb:us-east-1:{account_id}:table/{team}-*",
            ),
        )
    return policies


def _account_seed(
    session: Any, *, account_id: str, hub_account_id: str, roles: int, plan: Plan, position: int
) -> None:

    from iamportal import aws, demo

    iam = aws.client("iam", session=session)
    demo.spoke_role_create(iam, hub_account_id=hub_account_id)
    policy_arns = [
        iam.create_policy(
            PolicyName=name,
            Path="/acme/",
            PolicyDocument=_doc(
                _allow(["logs:PutLogEvents"], f"arn:aws:logs:*:*:log-group:/{name}")
            ),
        )["Policy"]["Arn"]
        for name in MANAGED_POLICIES
    ]
    environment = ENVIRONMENTS[position % len(ENVIRONMENTS)]
    for index in range(roles):
        team = TEAMS[index % len(TEAMS)]
        component = COMPONENTS[(index // len(TEAMS)) % len(COMPONENTS)]
        name = f"svc-{team}-{component}-{index:03d}"
        tags = [{"Key": "team", "Value": team}]
        if index % 3 == 0:
            tags.append({"Key": "iamportal-authorized", "Value": f"team-{team}:platform-admins"})
        iam.create_role(
            RoleName=name,
            Path=("/", "/service/", f"/team/{team}/")[index % 3],
            AssumeRolePolicyDocument=_trust(index, account_id, hub_account_id),
            Description=f"The {component} of the {team} team ({environment}).",
            MaxSessionDuration=3600 if environment == "prod" else 43200,
            Tags=tags,
        )
        for policy_name, document in _inline_policies(index, team, account_id).items():
            iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=document)
        if index % 3 == 1:
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arns[index % len(policy_arns)])

    region = aws.default_region()
    s3 = aws.client("s3", session=session)
    for index in range(plan.buckets[position]):
        team = TEAMS[index % len(TEAMS)]
        bucket = f"acme-{account_id}-{team}-{index:03d}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(
            Bucket=bucket,
            Tagging={
                "TagSet": [{"Key": "team", "Value": team}, {"Key": "env", "Value": environment}]
            },
        )
        if index % 4 == 0:
            principal = f"arn:aws:iam::{account_id}:role/service/svc-{team}-api-000"
            s3.put_bucket_policy(
                Bucket=bucket,
                Policy=_doc(
                    {
                        "Sid": "ServiceReadWrite",
                        "Effect": "Allow",
                        "Principal": {"AWS": principal},
                        "Action": ["s3:GetObject", "s3:PutObject"],
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    }
                ),
            )

    sqs = aws.client("sqs", session=session)
    for index in range(plan.queues[position]):
        team = TEAMS[index % len(TEAMS)]
        fifo = index % 10 == 9
        queue = f"{team}-events-{index:03d}" + (".fifo" if fifo else "")
        attributes = {"FifoQueue": "true"} if fifo else {}
        if index % 5 == 0:
            attributes["Policy"] = _doc(
                {
                    "Sid": "TopicFanOut",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": f"arn:aws:sqs:{region}:{account_id}:{queue}",
                }
            )
        sqs.create_queue(
            QueueName=queue, Attributes=attributes, tags={"team": team, "env": environment}
        )

    sns = aws.client("sns", session=session)
    for index in range(plan.topics[position]):
        team = TEAMS[index % len(TEAMS)]
        topic_arn = sns.create_topic(
            Name=f"{team}-alerts-{index:03d}",
            Tags=[{"Key": "team", "Value": team}, {"Key": "env", "Value": environment}],
        )["TopicArn"]
        if index % 5 == 0:
            sns.set_topic_attributes(
                TopicArn=topic_arn,
                AttributeName="Policy",
                AttributeValue=_doc(
                    {
                        "Sid": "AccountPublish",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                        "Action": "sns:Publish",
                        "Resource": topic_arn,
                    }
                ),
            )


def organisation_build(*, accounts: int, roles: int, resources: int) -> list[SeededAccount]:
    """The organisation in moto's AWS, AWS side only; prints progress as it goes."""
    from iamportal import aws, demo

    hub_account_id = aws.client("sts").get_caller_identity()["Account"]
    if hub_account_id != demo.HUB_ACCOUNT_ID:
        raise SystemExit(
            f"refusing to build the organisation in account {hub_account_id}: "
            "the benchmark runs only against moto's in-process AWS"
        )
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    plan = Plan.split(accounts=accounts, resources=resources)
    seeded = []
    for position in range(accounts):
        started = time.perf_counter()
        name = f"acme-bench-{position + 1:02d}"
        status = org.create_account(Email=f"{name}@example.com", AccountName=name)[
            "CreateAccountStatus"
        ]
        account_id = status["AccountId"]
        _account_seed(
            demo.account_session(account_id),
            account_id=account_id,
            hub_account_id=hub_account_id,
            roles=roles,
            plan=plan,
            position=position,
        )
        seeded.append(
            SeededAccount(
                account_id=account_id,
                name=name,
                environment=ENVIRONMENTS[position % len(ENVIRONMENTS)],
            )
        )
        made = plan.buckets[position] + plan.queues[position] + plan.topics[position]
        print(
            f"  account {position + 1:>3}/{accounts} {account_id}: {roles} roles, "
            f"{made} resources ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
    return seeded


# --- the AWS Config aggregator ------------------------------------------------------

CONFIG_AGGREGATOR = "bench-config"
# (type, share of an account's Config resources): weights add up to 20.
CONFIG_TYPES = (
    ("AWS::EC2::Instance", 3),
    ("AWS::EC2::SecurityGroup", 3),
    ("AWS::EC2::Volume", 2),
    ("AWS::Lambda::Function", 2),
    ("AWS::DynamoDB::Table", 1),
    ("AWS::KMS::Key", 1),
    ("AWS::Logs::LogGroup", 2),
    ("AWS::CloudWatch::Alarm", 2),
    ("AWS::ECS::Service", 1),
    ("AWS::S3::Bucket", 1),
    ("AWS::SQS::Queue", 1),
    ("AWS::SNS::Topic", 1),
)


def _config_item(account_id: str, resource_type: str, index: int) -> dict[str, Any]:
    """One configuration item, shaped like AWS's for its type in size and nesting."""
    team = TEAMS[index % len(TEAMS)]
    region = "us-east-1"
    short = resource_type.split("::")[-1].lower()
    name = f"{team}-{short}-{index:04d}"
    service = resource_type.split("::")[1].lower()
    arn = f"arn:aws:{service}:{region}:{account_id}:{short}/{name}"
    configuration: dict[str, Any] = {
        "name": name,
        "state": ("available", "in-use", "running")[index % 3],
        "createdBy": f"arn:aws:iam::{account_id}:role/service/svc-{team}-api-000",
        "sizeGiB": 8 + index % 120,
        "encrypted": index % 2 == 0,
        "description": f"The {short} {index} of the {team} team, managed by its pipeline.",
        "blockDeviceMappings": [
            {"deviceName": f"/dev/xvd{chr(97 + n)}", "ebs": {"volumeSize": 8 * (n + 1)}}
            for n in range(3)
        ],
        "networkInterfaces": [{"subnetId": f"subnet-{index:08x}", "privateIpAddress": "10.0.0.1"}],
    }
    supplementary: dict[str, Any] = {}
    if resource_type == "AWS::S3::Bucket":
        arn = f"arn:aws:s3:::{account_id}-{name}"
        supplementary["BucketPolicy"] = {
            "policyText": _doc(_allow(["s3:GetObject"], f"{arn}/*")) if index % 4 == 0 else None
        }
    elif resource_type in ("AWS::SQS::Queue", "AWS::SNS::Topic") and index % 5 == 0:
        configuration["Policy"] = _doc(_allow([f"{service}:*"], arn))
    elif resource_type == "AWS::Lambda::Function" and index % 3 == 0:
        supplementary["Policy"] = _doc(_allow(["lambda:InvokeFunction"], arn))
    return {
        "resourceType": resource_type,
        "resourceId": f"{short}-{account_id}-{index:05d}",
        "resourceName": name,
        "arn": arn,
        "awsRegion": region,
        "accountId": account_id,
        "configurationItemCaptureTime": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=index),
        "configuration": configuration,
        "supplementaryConfiguration": supplementary,
        "tags": {"team": team, "env": "prod", "cost-centre": f"cc-{index % 40:02d}"},
    }


def config_items_build(account_id: str, count: int) -> list[dict[str, Any]]:
    weights = sum(weight for _, weight in CONFIG_TYPES)
    types = [t for t, weight in CONFIG_TYPES for _ in range(weight)]
    assert len(types) == weights
    return [_config_item(account_id, types[index % weights], index) for index in range(count)]


def config_aggregator_install(seeded: list[SeededAccount], per_account: int) -> Any:
    """The aggregator's items for every account, and the stand-in answering for it."""
    from django.conf import settings

    from iamportal import aws
    from iamportal.config_standin import ConfigAggregatorStandIn

    standin = ConfigAggregatorStandIn(
        CONFIG_AGGREGATOR,
        {a.account_id: config_items_build(a.account_id, per_account) for a in seeded},
    )
    settings.IAMPORTAL_CONFIG_AGGREGATOR = CONFIG_AGGREGATOR
    aws.on_hub_call("before-call.config-service", standin)
    return standin


# --- measuring --------------------------------------------------------------------


@dataclass
class Phase:
    label: str
    seconds: float = 0.0
    roles: int = 0
    policies: int = 0
    resources: int = 0
    written: int | None = None
    errors: list[str] = field(default_factory=list)
    # Filled when the phase runs under tracemalloc. The peak is relative to the
    # traced memory when the phase started, an account's peak relative to the
    # memory when that account started.
    peak_bytes: int = 0
    retained_bytes: int = 0
    account_peak_bytes: int = 0
    account_peak_name: str = ""
    # Traced memory when each account started: flat if nothing piles up across accounts.
    held_bytes: list[int] = field(default_factory=list)

    @property
    def roles_per_second(self) -> float:
        return self.roles / self.seconds if self.seconds else 0.0


def measure(
    label: str,
    accounts: list[AwsAccount],
    step: Callable[[AwsAccount, Phase], None],
    *,
    trace_memory: bool = False,
) -> Phase:
    """Run `step` for every account in turn and time the whole; with `trace_memory`,
    also record the peak of the whole phase and the largest peak of one account."""
    print(f"Measuring {label} ...", flush=True)
    phase = Phase(label=label)
    if trace_memory:
        gc.collect()
        tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        highest = baseline
        started = time.perf_counter()
        for account in accounts:
            # Without tracing these read (0, 0) and cost nothing worth mentioning.
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            phase.held_bytes.append(before - baseline)
            step(account, phase)
            _, peak = tracemalloc.get_traced_memory()
            highest = max(highest, peak)
            if peak - before > phase.account_peak_bytes:
                phase.account_peak_bytes = peak - before
                phase.account_peak_name = account.name
        phase.seconds = time.perf_counter() - started
        if trace_memory:
            gc.collect()
            current, _ = tracemalloc.get_traced_memory()
            phase.peak_bytes = highest - baseline
            phase.retained_bytes = current - baseline
    finally:
        if trace_memory:
            tracemalloc.stop()
    return phase


def measure_alternating(
    first: tuple[str, Callable[[AwsAccount, Phase], None]],
    second: tuple[str, Callable[[AwsAccount, Phase], None]],
    accounts: list[AwsAccount],
) -> tuple[Phase, Phase]:
    """Two phases run account by account in turn (the first step for an account,
    then the second for the same account), each timed on its own: a virtual
    machine whose speed drifts over a minute slows both alike, where timing one
    phase after the other would charge the drift to one of them."""
    print(f"Measuring {first[0]} and {second[0]}, alternating by account ...", flush=True)
    phases = (Phase(label=first[0]), Phase(label=second[0]))
    for account in accounts:
        for phase, (_, step) in zip(phases, (first, second), strict=True):
            started = time.perf_counter()
            step(account, phase)
            phase.seconds += time.perf_counter() - started
    return phases


def fetch_step(account: AwsAccount, phase: Phase) -> None:
    from accounts import services

    inventory = services.inventory_fetch(account)
    phase.roles += len(inventory.roles)
    phase.policies += len(inventory.policies)
    phase.resources += len(inventory.resources) + len(inventory.unreadable)
    phase.errors.extend(f"{account.name}: {w}" for w in inventory.warnings)


def sync_step(account: AwsAccount, phase: Phase) -> None:
    from accounts import services
    from accounts.models import SyncRun

    # Exactly what the worker task does with a queued run.
    run = SyncRun.objects.create(account=account)
    done = services.account_sync_run(run_id=run.pk)
    if done is None or done.status != SyncRun.Status.SUCCEEDED:
        error = done.error if done is not None else "the run was not claimed"
        phase.errors.append(f"{account.name}: sync failed: {error}")
        return
    phase.roles += int(done.counts["roles"])
    phase.policies += int(done.counts["policies"])
    phase.resources += int(done.counts["resources"])
    phase.written = (phase.written or 0) + int(done.counts["written"])
    phase.errors.extend(f"{account.name}: {w}" for w in done.counts.get("warnings", []))


def warm_up(accounts: list[AwsAccount]) -> None:
    """What any earlier sync leaves behind: cached spoke credentials (one AssumeRole
    per account) and boto3's service models loaded into each spoke session. Without
    it (a), measured first, would pay these once-only costs and (b) would not."""
    from iamportal import aws

    for account in accounts:
        session = aws.spoke_session(account)
        for service in ("iam", "s3", "sqs", "sns", "rds", "redshift"):
            aws.client(service, session=session)
    aws.client("config")


def inventory_clear() -> None:
    """Empty the inventory tables of the throwaway database, so the next sync is a first one."""
    from accounts.models import CloudResource, IamRole, ManagedPolicy

    for model in (IamRole, ManagedPolicy, CloudResource):
        model.objects.all().delete()


# --- output -----------------------------------------------------------------------


def _load() -> str:
    # Other work on the machine shows up in the times; this says how much there was.
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def _mib(value: int) -> str:
    return f"{value / MIB:.1f} MiB"


def report(phases: list[Phase], memory: Phase, *, accounts: int) -> bool:
    """Print the table and the verdicts; returns whether every target is met."""
    fetch, first, second = phases
    header = (
        f"{'phase':<32} {'wall s':>7} {'roles':>7} {'policies':>8} {'resources':>9} "
        f"{'rows written':>12} {'roles/s':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    for phase in phases:
        written = "-" if phase.written is None else f"{phase.written:,}"
        print(
            f"{phase.label:<32} {phase.seconds:>7.2f} {phase.roles:>7,} {phase.policies:>8,} "
            f"{phase.resources:>9,} {written:>12} {phase.roles_per_second:>8,.0f}"
        )
    print()
    ratio = first.seconds / fetch.seconds if fetch.seconds else float("inf")
    ratio_met = ratio <= TARGET_RATIO
    unchanged_met = second.written == 0
    print(
        f"(b)/(a), full sync vs. bare AWS calls: {ratio:.2f}   "
        f"target <= {TARGET_RATIO}: {'met' if ratio_met else 'MISSED'}"
    )
    print(
        f"(c) rows written with nothing changed: {second.written}   "
        f"target 0: {'met' if unchanged_met else 'MISSED'}"
    )
    print(
        "moto answers in-process, far faster than AWS over a network: against real AWS (a) "
        "is longer\nand the same database work makes the ratio smaller."
    )
    print()
    print(
        "Memory of a first full sync (tracemalloc, Python allocations), measured over a repeat "
        f"of (b)\non emptied inventory tables ({memory.seconds:.1f} s, {memory.written or 0:,} "
        "rows written): tracing slows Python\ndown several times, so it stays out of the "
        "timed phases."
    )
    ratio_memory = (
        memory.peak_bytes / memory.account_peak_bytes if memory.account_peak_bytes else 0.0
    )
    rows = [
        (f"peak over all {accounts} accounts", _mib(memory.peak_bytes)),
        (
            "largest peak of one account",
            f"{_mib(memory.account_peak_bytes)}  ({memory.account_peak_name})",
        ),
        ("all accounts / one account", f"{ratio_memory:.2f}"),
        (
            "held when the first / last account began",
            f"{_mib(memory.held_bytes[0])} / {_mib(memory.held_bytes[-1])}",
        ),
        ("held after the phase (after a GC)", _mib(memory.retained_bytes)),
    ]
    for label, value in rows:
        print(f"  {label:<42} {value}")
    print(
        "  (What is held between accounts is mostly boto3 clients of earlier accounts: "
        "reference\n  cycles that wait for Python's cyclic collector, not data kept on purpose.)"
    )
    errors = [e for phase in [*phases, memory] for e in phase.errors]
    for error in errors:
        print(f"warning: {error}")
    return ratio_met and unchanged_met and not errors


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20, help="member accounts (default 20)")
    parser.add_argument("--roles", type=int, default=250, help="roles per account (default 250)")
    parser.add_argument(
        "--resources",
        type=int,
        default=1500,
        help="S3 buckets, SQS queues and SNS topics in all, split evenly (default 1500)",
    )
    parser.add_argument(
        "--config-resources",
        type=int,
        default=0,
        help="resources of every account in an AWS Config aggregator (default 0: no aggregator)",
    )
    args = parser.parse_args()
    if args.accounts < 1 or min(args.roles, args.resources, args.config_resources) < 0:
        parser.error(
            "--accounts must be at least 1; --roles, --resources and --config-resources at least 0"
        )

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import bench

    bench.django_setup()

    from moto import mock_aws

    from accounts.models import AwsAccount
    from accounts.services import account_add

    print(f"Database engine: {bench.engine()}")
    with bench.throwaway_database(), mock_aws():
        print(
            f"Building the organisation: {args.accounts} accounts x {args.roles} roles, "
            f"{args.resources:,} resources in all",
            flush=True,
        )
        started = time.perf_counter()
        seeded = organisation_build(
            accounts=args.accounts, roles=args.roles, resources=args.resources
        )
        for account in seeded:
            account_add(
                account_id=account.account_id, name=account.name, environment=account.environment
            )
        if args.config_resources:
            config_aggregator_install(seeded, args.config_resources)
            print(
                f"AWS Config aggregator: {args.config_resources:,} resources in each account, "
                f"{args.config_resources * len(seeded):,} in all"
            )
        warm_up(accounts := list(AwsAccount.objects.order_by("name")))
        print(f"Organisation built and onboarded in {time.perf_counter() - started:.1f} s")
        # The mock AWS keeps its whole state in this process (in production it is
        # in AWS): keep the cyclic collector from walking it again and again.
        gc.collect()
        gc.freeze()
        print(f"Load average before measuring: {_load()}", flush=True)

        phases = [
            *measure_alternating(
                ("(a) AWS calls only (fetch)", fetch_step),
                ("(b) full sync, first", sync_step),
                accounts,
            ),
            measure("(c) full sync, nothing changed", accounts, sync_step),
        ]
        inventory_clear()
        memory = measure("(b) again, for memory", accounts, sync_step, trace_memory=True)
        met = report(phases, memory, accounts=len(accounts))
        print(f"Load average after measuring: {_load()}")
    print("All targets met." if met else "Some targets missed: see above.")


if __name__ == "__main__":
    main()
