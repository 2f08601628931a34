"""Benchmark: syncs and applies under AWS faults and worker crashes.

Starts the embedded AWS (moto's server) behind a fault-injecting proxy
(bench/faultproxy.py), seeds an organisation of N accounts into it, onboards
them into a fresh PostgreSQL database, and runs real workers (`manage.py
qcluster`, database broker) pointed at the proxy through AWS_ENDPOINT_URL.
Scenarios:

  1. a sync of every account with no faults (its inventory is the reference);
  2. throttling, 5xx answers and connection resets on a few accounts, one of
     them throttled on every call;
  3. one account whose endpoint hangs (calls held past the read timeout) and
     one so slow its sync runs past the sync deadline;
  4. the workers killed (SIGKILL) in the middle of a sync of every account, new
     ones started, the sweep run until every account is synced;
  5. the workers killed in the middle of applying approved requests, new ones
     started, waiting for every request to be applied.

For each: accounts synced (or requests applied), inventory rows lost against
the reference (target 0), duplicate applies (target 0: a sync finished twice
for one account, or an inline policy written twice for one change), and the
time to recover. Nothing here reaches AWS: the proxy forwards to moto alone.

Run: .venv/bin/python bench/faults.py [--accounts 20]
     [--database-url postgres://root@127.0.0.1:5432/iamportal_faults]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
POLL = 0.5
SWEEP_EVERY = 5.0
# Seconds: AWS_READ_TIMEOUT of the workers, and how long the hung account holds each call.
READ_TIMEOUT = 3
HUNG_DELAY = 10.0
# Each call of the slow account is held this long: under the read timeout, so
# only the sync deadline stops it.
SLOW_DELAY = 2.0
APPLY_POLICIES = 4
MAX_ATTEMPTS = 4


@dataclass
class Result:
    label: str
    done: str
    lost: int
    duplicates: int
    wall: float
    recover: float | None
    recovered: bool = True
    notes: list[str] = field(default_factory=list)

    def recover_text(self) -> str:
        if not self.recovered:
            return "not recovered"
        return "-" if self.recover is None else f"{self.recover:.1f} s"

    def line(self, number: int) -> str:
        return (
            f"[{number}] {self.label}: {self.done}, rows lost {self.lost}, duplicate applies "
            f"{self.duplicates}, time to recover {self.recover_text()} (wall {self.wall:.1f} s)"
        )


# --- the database, the environment, the workers -------------------------------------


def _admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql") or not name:
        raise SystemExit("--database-url must be a postgres:// URL naming a database")
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres")), name


def database_recreate(database_url: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    admin, name = _admin_url(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def environment(args: argparse.Namespace, endpoint: str) -> dict[str, str]:
    """Settings of this process and of the workers: fake credentials, the proxy as
    the AWS endpoint, and short timeouts, deadline, lease and requeue delay."""
    return {
        "DJANGO_SETTINGS_MODULE": "iamportal.settings",
        "DATABASE_URL": args.database_url,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "IAMPORTAL_REGIONS": REGION,
        "AWS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "AWS_CONNECT_TIMEOUT": "2",
        "AWS_READ_TIMEOUT": str(READ_TIMEOUT),
        "IAMPORTAL_SYNC_DEADLINE_SECONDS": str(args.deadline),
        "IAMPORTAL_SYNC_LEASE_SECONDS": str(args.lease),
        "IAMPORTAL_SYNC_REQUEUE_SECONDS": str(args.requeue),
        "IAMPORTAL_WORK_LEASE_SECONDS": str(args.lease),
        "IAMPORTAL_WORK_REQUEUE_SECONDS": str(args.requeue),
        "Q_TIMEOUT": str(args.deadline * 2),
        "Q_WORKERS": str(args.workers),
        "Q_BROKER": "",
        "IAMPORTAL_NOTIFICATIONS": "false",
        "EMAIL_BACKEND": "dummy",
    }


class Cluster:
    """`manage.py qcluster` in its own process group, its output in a log file."""

    def __init__(self, log_dir: Path, number: int) -> None:
        self.log_path = log_dir / f"qcluster-{number}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, str(ROOT / "manage.py"), "qcluster"],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL to the whole group: the sentinel, the pusher, every worker."""
        self._signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is not None:
            self._signal(signal.SIGKILL)  # workers it may have left behind
            return
        self._signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._signal(signal.SIGKILL)
        self.process.wait()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


# --- the organisation ----------------------------------------------------------------


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def account_seed(account_id: str) -> None:
    """A small member account: the spoke role, eight roles, a managed policy,
    three buckets, two queues, two topics."""
    from iamportal import aws, demo

    session = demo.account_session(account_id)
    iam = aws.client("iam", session=session)
    demo.spoke_role_create(iam)
    policy_arn = iam.create_policy(
        PolicyName="acme-logs-write",
        Path="/acme/",
        PolicyDocument=_doc(
            {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "arn:aws:logs:*:*:*"}
        ),
    )["Policy"]["Arn"]
    trust = _doc(
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    )
    for index in range(8):
        name = f"app-{index:02d}"
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=trust,
            Tags=[{"Key": demo.AUTH_TAG, "Value": "engineering"}],
        )
        iam.put_role_policy(
            RoleName=name,
            PolicyName="data",
            PolicyDocument=_doc(
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::faults-{account_id}-0/{name}/*",
                }
            ),
        )
        if index % 2:
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    s3 = aws.client("s3", session=session)
    for index in range(3):
        bucket = f"faults-{account_id}-{index}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "n", "Value": "1"}]})
    sqs = aws.client("sqs", session=session)
    for index in range(2):
        sqs.create_queue(QueueName=f"events-{index}")
    sns = aws.client("sns", session=session)
    for index in range(2):
        sns.create_topic(Name=f"alerts-{index}")


def organisation_build(count: int) -> None:
    """The demo organisation (three accounts) and `count - 3` smaller ones, onboarded."""
    from accounts.services import account_add
    from iamportal import aws, demo

    onboarded = demo.accounts_onboard(demo.organisation_seed())
    org = aws.client("organizations")
    for position in range(len(onboarded), count):
        name = f"acme-faults-{position + 1:02d}"
        account_id = org.create_account(Email=f"{name}@example.com", AccountName=name)[
            "CreateAccountStatus"
        ]["AccountId"]
        account_seed(account_id)
        account_add(account_id=account_id, name=name, environment="dev", approvals_required=1)
    demo.users_create()


# --- measuring ------------------------------------------------------------------------


def inventory_snapshot() -> dict[str, set[str]]:
    """Every inventory row's ARN, by account id."""
    from accounts.models import CloudResource, IamRole, ManagedPolicy

    rows: dict[str, set[str]] = {}
    for model in (IamRole, ManagedPolicy, CloudResource):
        for account_id, arn in model.objects.values_list("account__account_id", "arn"):
            rows.setdefault(account_id, set()).add(arn)
    return rows


def rows_lost(reference: dict[str, set[str]]) -> int:
    now = inventory_snapshot()
    return sum(len(arns - now.get(account_id, set())) for account_id, arns in reference.items())


def requests_submit(accounts: list[Any]) -> list[int]:
    """One pending request per account, by a demo requester: APPLY_POLICIES new
    inline policies on its role app-00."""
    from django.contrib.auth.models import User

    from accounts.models import IamRole
    from requests_app import services
    from requests_app.models import Change, PolicyRequest

    alice = User.objects.get(username="alice")
    request_ids: list[int] = []
    for account in accounts:
        role = IamRole.objects.get(account=account, name="app-00")
        changes = [
            {
                "type": Change.Type.INLINE_POLICY_PUT.value,
                "target_arn": role.arn,
                "payload": {
                    "policy_name": f"bench-apply-{index}",
                    "document": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "s3:GetObject",
                                "Resource": f"arn:aws:s3:::faults-{account.account_id}-1/"
                                f"part-{index}/*",
                            }
                        ],
                    },
                },
            }
            for index in range(APPLY_POLICIES)
        ]
        request = services.policy_request_changes_submit(
            requester=alice,
            role=role,
            changes=changes,
            justification="Fault benchmark: applied while the workers are killed.",
            findings_acknowledgement="A benchmark request.",
        )
        assert isinstance(request, PolicyRequest)
        request_ids.append(request.pk)
    return request_ids


class Bench:
    def __init__(self, args: argparse.Namespace, proxy: Any, log_dir: Path) -> None:
        from accounts.models import AwsAccount

        self.args = args
        self.proxy = proxy
        self.log_dir = log_dir
        self.clusters: list[Cluster] = []
        self.accounts = list(AwsAccount.objects.order_by("pk"))
        self.reference: dict[str, set[str]] = {}

    # --- workers

    def cluster_start(self) -> Cluster:
        cluster = Cluster(self.log_dir, len(self.clusters) + 1)
        self.clusters.append(cluster)
        return cluster

    def clusters_stop(self) -> None:
        for cluster in self.clusters:
            cluster.stop()

    # --- syncs

    def syncs_request(self) -> list[int]:
        from accounts.services import account_sync_request

        return [account_sync_request(account=account).pk for account in self.accounts]

    def syncs_wait(
        self,
        run_ids: list[int],
        *,
        timeout: float,
        until: Callable[[dict[str, int]], bool] | None = None,
        every: Callable[[], None] | None = None,
    ) -> bool:
        """Poll until every run has ended (or `until` holds for the status counts);
        `every` runs each SWEEP_EVERY seconds. False on the timeout."""
        from accounts.models import SyncRun

        ends = time.monotonic() + timeout
        swept = time.monotonic()
        while time.monotonic() < ends:
            statuses = Counter(
                SyncRun.objects.filter(pk__in=run_ids).values_list("status", flat=True)
            )
            active = statuses[SyncRun.Status.QUEUED] + statuses[SyncRun.Status.RUNNING]
            if until(dict(statuses)) if until else not active:
                return True
            if every and time.monotonic() - swept >= SWEEP_EVERY:
                every()
                swept = time.monotonic()
            time.sleep(POLL)
        return False

    def sync_figures(self, run_ids: list[int], started_at: Any) -> tuple[int, int, list[Any]]:
        """(accounts synced, duplicate applies, the runs). A duplicate is an account
        whose inventory was written by more than one run since `started_at`."""
        from accounts.models import SyncRun

        runs = list(SyncRun.objects.filter(pk__in=run_ids).select_related("account"))
        synced = sum(1 for run in runs if run.succeeded)
        finished = Counter(
            SyncRun.objects.filter(
                finished_at__gte=started_at,
                status__in=[SyncRun.Status.SUCCEEDED, SyncRun.Status.WARNINGS],
            ).values_list("account_id", flat=True)
        )
        duplicates = sum(n - 1 for n in finished.values() if n > 1)
        return synced, duplicates, runs

    @staticmethod
    def rewritten(runs: list[Any]) -> int:
        return sum(int(run.counts.get("written", 0)) for run in runs if run.succeeded)

    @staticmethod
    def failures(runs: list[Any], limit: int = 6) -> list[str]:
        failed = [run for run in runs if not run.succeeded]
        notes = [
            f"{run.account.name}: {run.status}"
            + (f" after {run.duration_seconds:.1f} s" if run.duration_seconds else "")
            + (f": {run.error[:200]}" if run.error else "")
            for run in failed[:limit]
        ]
        if len(failed) > limit:
            notes.append(f"... and {len(failed) - limit} more")
        return notes

    # --- the scenarios

    def baseline(self) -> Result:
        from django.utils import timezone

        self.proxy.clear_faults()
        started_at, started = timezone.now(), time.monotonic()
        run_ids = self.syncs_request()
        ended = self.syncs_wait(run_ids, timeout=self.args.sync_timeout)
        wall = time.monotonic() - started
        synced, duplicates, runs = self.sync_figures(run_ids, started_at)
        self.reference = inventory_snapshot()
        notes = [] if ended else ["not every sync ended within --sync-timeout"]
        notes.append(f"reference inventory: {sum(map(len, self.reference.values()))} rows")
        return Result(
            label="baseline, no faults",
            done=f"{synced}/{len(run_ids)} synced",
            lost=0,
            duplicates=duplicates,
            wall=wall,
            recover=None,
            notes=notes + self.failures(runs),
        )

    def flaky(self) -> Result:
        from django.utils import timezone

        from bench.faultproxy import Faults

        mixed = Faults(throttle=0.15, server_error=0.1, reset=0.1)
        always = Faults(throttle=1.0)
        faulty = {a.account_id: mixed for a in self.accounts[3:6]}
        faulty[self.accounts[6].account_id] = always
        self.proxy.reset_counts()
        for account_id, faults in faulty.items():
            self.proxy.set_faults(account_id, faults)
        started_at, started = timezone.now(), time.monotonic()
        run_ids = self.syncs_request()
        ended = self.syncs_wait(run_ids, timeout=self.args.sync_timeout)
        wall = time.monotonic() - started
        self.proxy.clear_faults()
        synced, duplicates, runs = self.sync_figures(run_ids, started_at)
        settled = [
            (run.finished_at - started_at).total_seconds()
            for run in runs
            if run.account.account_id in faulty and run.finished_at
        ]
        injected = ", ".join(f"{n} {kind}" for kind, n in sorted(self.proxy.injected.items()))
        notes = [
            f"faults on {len(faulty) - 1} accounts ({mixed.describe()}), and on "
            f"{self.accounts[6].name} ({always.describe()}); injected: {injected or 'none'}",
            f"rows rewritten with AWS unchanged: {self.rewritten(runs)}",
        ]
        if not ended:
            notes.append("not every sync ended within --sync-timeout")
        return Result(
            label="throttling, 5xx and resets",
            done=f"{synced}/{len(run_ids)} synced",
            lost=rows_lost(self.reference),
            duplicates=duplicates,
            wall=wall,
            recover=max(settled) if settled else None,
            recovered=ended,
            notes=notes + self.failures(runs),
        )

    def hung(self) -> Result:
        from django.utils import timezone

        from bench.faultproxy import Faults

        hung, slow = self.accounts[7], self.accounts[8]
        self.proxy.set_faults(hung.account_id, Faults(delay=HUNG_DELAY))
        self.proxy.set_faults(slow.account_id, Faults(delay=SLOW_DELAY))
        started_at, started = timezone.now(), time.monotonic()
        run_ids = self.syncs_request()
        ended = self.syncs_wait(run_ids, timeout=self.args.sync_timeout)
        wall = time.monotonic() - started
        self.proxy.clear_faults()
        synced, duplicates, runs = self.sync_figures(run_ids, started_at)
        took = [
            (run.finished_at - started_at).total_seconds()
            for run in runs
            if run.account.pk in (hung.pk, slow.pk) and run.finished_at
        ]
        notes = [
            f"{hung.name}: every call held {HUNG_DELAY:g} s (read timeout {READ_TIMEOUT} s); "
            f"{slow.name}: every call held {SLOW_DELAY:g} s; sync deadline {self.args.deadline} s",
            f"rows rewritten with AWS unchanged: {self.rewritten(runs)}",
        ]
        if not ended:
            notes.append("not every sync ended within --sync-timeout")
        return Result(
            label="a hung and a slow account",
            done=f"{synced}/{len(run_ids)} synced",
            lost=rows_lost(self.reference),
            duplicates=duplicates,
            wall=wall,
            recover=max(took) if len(took) == 2 else None,
            recovered=len(took) == 2,
            notes=notes + self.failures(runs),
        )

    def kill_sync(self) -> Result:
        from django.utils import timezone

        from accounts.models import SyncRun
        from accounts.services import sync_runs_recover
        from bench.faultproxy import Faults

        # Slow every call a little, so that the sync is still going when it is killed.
        for account in self.accounts:
            self.proxy.set_faults(account.account_id, Faults(delay=0.3))
        started_at, started = timezone.now(), time.monotonic()
        run_ids = self.syncs_request()
        quarter = max(1, len(run_ids) // 4)
        self.syncs_wait(
            run_ids,
            timeout=self.args.sync_timeout,
            until=lambda s: (
                s.get(SyncRun.Status.SUCCEEDED, 0) + s.get(SyncRun.Status.WARNINGS, 0) >= quarter
            ),
        )
        statuses = Counter(SyncRun.objects.filter(pk__in=run_ids).values_list("status", flat=True))
        self.clusters[-1].kill()
        killed = time.monotonic()
        self.proxy.clear_faults()
        self.cluster_start()
        sweeps = Counter[str]()

        def sweep() -> None:
            sweeps.update(sync_runs_recover())

        ended = self.syncs_wait(
            run_ids,
            timeout=self.args.recover_timeout,
            until=lambda s: (
                s.get(SyncRun.Status.SUCCEEDED, 0) + s.get(SyncRun.Status.WARNINGS, 0)
                == len(run_ids)
            ),
            every=sweep,
        )
        recover = time.monotonic() - killed
        wall = time.monotonic() - started
        synced, duplicates, runs = self.sync_figures(run_ids, started_at)
        at_kill = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        notes = [
            f"killed with {at_kill}; the sweep re-enqueued {sweeps['requeued']} and gave up on "
            f"{sweeps['failed']} (lease {self.args.lease} s, requeue {self.args.requeue} s, "
            f"swept every {SWEEP_EVERY:g} s)",
            f"rows rewritten with AWS unchanged: {self.rewritten(runs)}",
        ]
        if not ended:
            notes.append(f"not all synced within --recover-timeout ({self.args.recover_timeout} s)")
        return Result(
            label="workers killed mid-sync",
            done=f"{synced}/{len(run_ids)} synced",
            lost=rows_lost(self.reference),
            duplicates=duplicates,
            wall=wall,
            recover=recover if ended else None,
            recovered=ended,
            notes=notes + self.failures(runs),
        )

    def kill_apply(self) -> Result:
        from django.contrib.auth.models import User
        from django_q.models import Schedule

        from bench.faultproxy import Faults
        from requests_app import services
        from requests_app.models import Change, PolicyRequest

        recover_service: Callable[[], Any] | None = getattr(services, "requests_work_recover", None)
        sweep_scheduled = Schedule.objects.filter(name="requests_app.work_sweep").exists()
        targets = self.accounts[-3:]
        request_ids = requests_submit(targets)
        rita = User.objects.get(username="rita")
        # Hold every call of these accounts, so the applies are under way when killed.
        for account in targets:
            self.proxy.set_faults(account.account_id, Faults(delay=0.8))
        self.proxy.reset_counts()
        started = time.monotonic()
        for request_id in request_ids:
            revision = PolicyRequest.objects.values_list("revision", flat=True).get(pk=request_id)
            services.policy_request_approve(
                request_id=request_id, reviewer=rita, revision=revision, findings_acknowledged=True
            )
        ends = time.monotonic() + self.args.sync_timeout
        while time.monotonic() < ends and self.proxy.count(action="PutRolePolicy") < 2:
            time.sleep(0.1)
        self.clusters[-1].kill()
        killed = time.monotonic()
        at_kill = Counter(
            PolicyRequest.objects.filter(pk__in=request_ids).values_list("status", flat=True)
        )
        written_at_kill = self.proxy.count(action="PutRolePolicy")
        self.proxy.clear_faults()
        self.cluster_start()
        ends = time.monotonic() + self.args.apply_timeout
        swept = time.monotonic()
        recover_error = ""
        applied = False
        while time.monotonic() < ends:
            statuses = set(
                PolicyRequest.objects.filter(pk__in=request_ids).values_list("status", flat=True)
            )
            if statuses == {PolicyRequest.Status.APPLIED}:
                applied = True
                break
            if recover_service and not recover_error and time.monotonic() - swept >= SWEEP_EVERY:
                try:
                    recover_service()
                except TypeError as exc:
                    recover_error = f"requests_work_recover() could not be called: {exc}"
                swept = time.monotonic()
            time.sleep(POLL)
        recover = time.monotonic() - killed
        wall = time.monotonic() - started
        puts = {
            call: n
            for call, n in self.proxy.calls("PutRolePolicy").items()
            if "bench-apply" in call.target
        }
        duplicates = sum(n - 1 for n in puts.values() if n > 1)
        final = Counter(
            PolicyRequest.objects.filter(pk__in=request_ids).values_list("status", flat=True)
        )
        change_statuses = Counter(
            Change.objects.filter(request_id__in=request_ids).values_list("status", flat=True)
        )
        if recover_service or sweep_scheduled:
            how = ", ".join(
                name
                for name, present in (
                    (
                        "requests_app.services.requests_work_recover (called every "
                        f"{SWEEP_EVERY:g} s)",
                        recover_service,
                    ),
                    ("the requests_app.work_sweep schedule", sweep_scheduled),
                )
                if present
            )
        else:
            how = (
                "none in this version: a request left 'applying' is released only after "
                "Q_TIMEOUT + 300 s, as failed, for a reviewer to retry"
            )
        notes = [
            f"{len(request_ids)} requests x {APPLY_POLICIES} inline policies; killed with "
            f"{', '.join(f'{n} {s}' for s, n in sorted(at_kill.items()))} and "
            f"{written_at_kill} policies written",
            f"recovery: {how}",
            f"requests now: {', '.join(f'{n} {s}' for s, n in sorted(final.items()))}; changes: "
            f"{', '.join(f'{n} {s}' for s, n in sorted(change_statuses.items()))}; inline policies "
            f"written in AWS: {len(puts)} of {len(request_ids) * APPLY_POLICIES}",
        ]
        marked = change_statuses[Change.Status.APPLIED]
        if len(puts) > marked:
            notes.append(
                f"{len(puts) - marked} written in AWS but not marked applied: in flight when the "
                "workers died, they reached AWS anyway; applying them again writes them twice"
            )
        if recover_error:
            notes.append(recover_error)
        if not applied:
            notes.append(f"not all applied within --apply-timeout ({self.args.apply_timeout} s)")
        return Result(
            label="workers killed mid-apply",
            done=f"{final[PolicyRequest.Status.APPLIED]}/{len(request_ids)} applied",
            lost=rows_lost(self.reference),
            duplicates=duplicates,
            wall=wall,
            recover=recover if applied else None,
            recovered=applied,
            notes=notes,
        )


def summary(results: list[Result]) -> None:
    header = (
        f"{'scenario':<34} {'done':>14} {'rows lost':>9} {'dup applies':>11} "
        f"{'recover':>14} {'wall s':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    for number, result in enumerate(results, 1):
        print(
            f"{number}. {result.label:<31} {result.done:>14} {result.lost:>9} "
            f"{result.duplicates:>11} {result.recover_text():>14} {result.wall:>7.1f}"
        )
    print()
    lost = sum(r.lost for r in results)
    duplicates = sum(r.duplicates for r in results)
    print(f"rows lost: {lost} (target 0: {'met' if lost == 0 else 'MISSED'})")
    print(f"duplicate applies: {duplicates} (target 0: {'met' if duplicates == 0 else 'MISSED'})")
    stuck = [str(number) for number, r in enumerate(results, 1) if not r.recovered]
    print(f"not recovered: {', '.join(stuck) or 'none'}")
    print(
        "time to recover: 2 and 3, from the start until the last faulty account's sync ended; "
        "4 and 5,\nfrom the kill until every account was synced / every request applied."
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20, help="accounts (default 20, min 9)")
    parser.add_argument(
        "--database-url",
        default="postgres://root@127.0.0.1:5432/iamportal_faults",
        help="a PostgreSQL database to create, use and drop",
    )
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument("--workers", type=int, default=4, help="qcluster workers (default 4)")
    parser.add_argument("--deadline", type=int, default=30, help="sync deadline, s (min 30)")
    parser.add_argument("--lease", type=int, default=30, help="sync and apply lease, s (min 30)")
    parser.add_argument(
        "--requeue", type=int, default=30, help="sync and apply requeue delay, s (min 30)"
    )
    parser.add_argument("--sync-timeout", type=int, default=120, help="wait for a sync, s")
    parser.add_argument("--recover-timeout", type=int, default=150, help="wait after a kill, s")
    parser.add_argument(
        "--apply-timeout", type=int, default=90, help="wait for applies after a kill, s"
    )
    args = parser.parse_args()
    if args.accounts < 9:
        parser.error("--accounts must be at least 9")
    if min(args.deadline, args.lease, args.requeue) < 30:
        parser.error("iamportal's settings refuse a deadline, lease or requeue under 30 s")

    sys.path.insert(0, str(ROOT))
    from moto.server import ThreadedMotoServer

    from bench.faultproxy import FaultProxy

    # Also SIGINT: a shell that starts the script in the background ignores it otherwise.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    database_recreate(args.database_url)
    moto_port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    server.start()
    proxy = FaultProxy(moto_port)
    proxy.start()
    os.environ.update(environment(args, proxy.url))
    for name in ("AWS_PROFILE",):
        os.environ.pop(name, None)
    log_dir = Path(tempfile.mkdtemp(prefix="iamportal-faults-"))
    bench: Bench | None = None
    try:
        import django

        django.setup()
        # The workers log to their files; here only the figures matter.
        for name in ("django-q", "accounts"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from django.core.management import call_command
        from django.utils import timezone
        from django_q.models import Schedule

        started = time.monotonic()
        call_command("migrate", interactive=False, verbosity=0)
        # Only the benchmark queues syncs: the periodic sync of every account waits a day.
        Schedule.objects.filter(name="accounts.sync_all").update(
            next_run=timezone.now() + timedelta(days=1)
        )
        print(f"Seeding {args.accounts} accounts into the embedded AWS ...", flush=True)
        organisation_build(args.accounts)
        print(
            f"Database {urlsplit(args.database_url).path.lstrip('/')} migrated and seeded in "
            f"{time.monotonic() - started:.1f} s; worker logs in {log_dir}",
            flush=True,
        )
        print(
            f"Workers: {args.workers} (database broker); AWS_MAX_ATTEMPTS {MAX_ATTEMPTS}, read "
            f"timeout {READ_TIMEOUT} s; sync deadline {args.deadline} s, lease {args.lease} s, "
            f"requeue {args.requeue} s. Load average: {_load()}",
            flush=True,
        )
        bench = Bench(args, proxy, log_dir)
        bench.cluster_start()
        results: list[Result] = []
        for scenario in (
            bench.baseline,
            bench.flaky,
            bench.hung,
            bench.kill_sync,
            bench.kill_apply,
        ):
            result = scenario()
            results.append(result)
            print(result.line(len(results)), flush=True)
            for note in result.notes:
                print(f"      {note}", flush=True)
        summary(results)
    except KeyboardInterrupt:
        print("\nInterrupted: stopping the workers and dropping the database.")
    finally:
        if bench is not None:
            bench.clusters_stop()
        proxy.stop()
        server.stop()
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if not args.keep_database:
            database_recreate(args.database_url, drop_only=True)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
