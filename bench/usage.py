"""Benchmark: one Access Advisor pass over a synthetic organisation.

Builds an organisation in moto's in-process AWS (default 20 accounts x 250
roles, each role with two inline policies), syncs it into a throwaway copy of
the database DATABASE_URL names (SQLite when unset), then measures:

  (a) a first pass over every account, as the worker task runs it: wall time,
      IAM calls made (GenerateServiceLastAccessedDetails and
      GetServiceLastAccessedDetails, throttling retries included) and rows written;
  (b) a second pass with nothing changed: rows written (target 0).

moto has no Access Advisor: its calls are answered by iamportal's stand-in at
the AWS boundary (IAMPORTAL_EMBEDDED_AWS), which reads each role's policies
from moto to answer, so its own reads are part of the time but are not calls
production makes. Run: .venv/bin/python bench/usage.py [--accounts 20] [--roles 250]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def _doc(actions: list[str], resource: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}],
        }
    )


TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def organisation_build(*, accounts: int, roles: int) -> list[tuple[str, str]]:
    from iamportal import aws, demo, embedded_advisor

    if aws.client("sts").get_caller_identity()["Account"] != demo.HUB_ACCOUNT_ID:
        raise SystemExit("the benchmark runs only against moto's in-process AWS")
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    built = []
    for position in range(accounts):
        started = time.perf_counter()
        name = f"acme-usage-{position + 1:02d}"
        account_id = org.create_account(Email=f"{name}@example.com", AccountName=name)[
            "CreateAccountStatus"
        ]["AccountId"]
        session = demo.account_session(account_id)
        iam = aws.client("iam", session=session)
        demo.spoke_role_create(iam)
        for index in range(roles):
            role = f"svc-{index:04d}"
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
            iam.put_role_policy(
                RoleName=role,
                PolicyName="data",
                PolicyDocument=_doc(["s3:GetObject", "s3:PutObject"], f"arn:aws:s3:::b-{index}/*"),
            )
            iam.put_role_policy(
                RoleName=role,
                PolicyName="events",
                PolicyDocument=_doc(["sqs:SendMessage"], "*"),
            )
            # A third of the roles never sent a message and never wrote an object.
            if index % 3 == 0:
                embedded_advisor.usage_set(
                    aws.role_arn(account_id, role),
                    {"s3": today - timedelta(days=2), "s3:GetObject": today, "sqs": None},
                )
        built.append((account_id, name))
        print(
            f"  account {position + 1:>3}/{accounts} {account_id}: {roles} roles "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
    return built


@dataclass
class Pass:
    label: str
    seconds: float = 0.0
    roles: int = 0
    calls: int = 0
    written: int = 0
    errors: list[str] = field(default_factory=list)


def advisor_pass(label: str, accounts: list[Any]) -> Pass:
    from accounts.usage import services
    from accounts.usage.models import AdvisorRun

    result = Pass(label)
    started = time.perf_counter()
    for account in accounts:
        # Exactly what the worker task does with a queued run.
        run = AdvisorRun.objects.create(account=account)
        done = services.advisor_run(run_id=run.pk)
        if done is None or done.status != AdvisorRun.Status.SUCCEEDED:
            result.errors.append(f"{account.name}: {done.error if done else 'not claimed'}")
            continue
        counts = done.counts
        result.roles += int(counts["roles"])
        result.calls += int(counts["calls"])
        result.written += int(counts["created"]) + int(counts["updated"]) + int(counts["deleted"])
    result.seconds = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20, help="member accounts (default 20)")
    parser.add_argument("--roles", type=int, default=250, help="roles per account (default 250)")
    args = parser.parse_args()
    if args.accounts < 1 or args.roles < 0:
        parser.error("--accounts must be at least 1 and --roles at least 0")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ["IAMPORTAL_EMBEDDED_AWS"] = "true"
    import bench

    bench.django_setup()

    from moto import mock_aws

    from accounts.models import AwsAccount, SyncRun
    from accounts.services import account_add, account_sync_run

    print(f"Database engine: {bench.engine()}")
    with bench.throwaway_database(), mock_aws():
        print(
            f"Building the organisation: {args.accounts} accounts x {args.roles} roles", flush=True
        )
        started = time.perf_counter()
        for account_id, name in organisation_build(accounts=args.accounts, roles=args.roles):
            account = account_add(account_id=account_id, name=name)
            run = SyncRun.objects.create(account=account)
            account_sync_run(run_id=run.pk)
        accounts = list(AwsAccount.objects.order_by("name"))
        print(f"Built, onboarded and synced in {time.perf_counter() - started:.1f} s")
        print(f"Load average before measuring: {bench.load_average()}", flush=True)
        first = advisor_pass("(a) first pass", accounts)
        second = advisor_pass("(b) second pass, nothing changed", accounts)
        print()
        header = f"{'pass':<36} {'wall s':>7} {'roles':>7} {'IAM calls':>10} {'rows written':>13}"
        print(header)
        print("-" * len(header))
        for item in (first, second):
            print(
                f"{item.label:<36} {item.seconds:>7.2f} {item.roles:>7,} {item.calls:>10,} "
                f"{item.written:>13,}"
            )
        print()
        met = second.written == 0 and not first.errors and not second.errors
        print(
            f"(b) rows written with nothing changed: {second.written}   target 0: "
            f"{'met' if second.written == 0 else 'MISSED'}"
        )
        for error in first.errors + second.errors:
            print(f"warning: {error}")
        print(f"Load average after measuring: {bench.load_average()}")
    print("All targets met." if met else "Some targets missed: see above.")


if __name__ == "__main__":
    main()
