"""Access Advisor passes: one per account per interval, spread over the interval
by account, each a row with a lease that the sweep finishes after a crash.

A pass asks IAM for every role's service-last-accessed details (action level)
a few jobs at a time, polls them with back-off, and writes per role and
service what changed: a second pass over unchanged data writes no row. Right
after a pass succeeds, the right-sizing policy judges the account on the
fresh data (`usage.rightsizing`)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.fetch import describe_error
from accounts.models import AwsAccount, IamRole
from accounts.usage import enqueue, rightsizing
from accounts.usage.models import AdvisorRun, ServiceUsage
from accounts.usage.selectors import interval
from iamportal import aws, jobs

log = logging.getLogger(__name__)

# Waiting for AWS; tests and the benchmark replace it.
sleep: Callable[[float], None] = time.sleep

THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "LimitExceeded", "RequestLimitExceeded"}
)
# Back-off between polls of running jobs, and after a throttled call, in seconds.
POLL_FIRST = 1.0
POLL_MAX = 16.0
THROTTLE_RETRIES = 6


class AdvisorLeaseLost(Exception):
    """Another worker took the pass over: this one stops without writing."""


def _lease() -> timedelta:
    return timedelta(seconds=settings.IAMPORTAL_USAGE_LEASE_SECONDS)


# --- when each account's pass is due ------------------------------------------------


def account_slot_offset(account_id: str) -> timedelta:
    """Where in the interval an account's pass falls: drawn from its id, so
    passes spread over the day and stay at the same time from day to day."""
    seconds = int(interval().total_seconds())
    return timedelta(seconds=zlib.crc32(account_id.encode()) % seconds)


def account_slot_latest(account_id: str, now: datetime) -> datetime:
    """The most recent time, at or before `now`, at which the account's pass was due."""
    period = int(interval().total_seconds())
    offset = int(account_slot_offset(account_id).total_seconds())
    epoch = int(now.timestamp())
    start = epoch - ((epoch - offset) % period)
    return datetime.fromtimestamp(start, tz=UTC)


def advisor_runs_schedule(*, now: datetime | None = None) -> int:
    """The schedule (every few minutes): queue the pass of every enabled account
    whose slot has come since its latest pass was queued. Returns how many."""
    now = now or timezone.now()
    queued = 0
    for account in AwsAccount.objects.filter(enabled=True):
        slot = account_slot_latest(account.account_id, now)
        latest = (
            AdvisorRun.objects.filter(account=account).order_by("-queued_at").only("queued_at")
        ).first()
        if latest is not None and latest.queued_at >= slot:
            continue
        advisor_run_request(account=account)
        queued += 1
    return queued


def advisor_run_request(*, account: AwsAccount) -> AdvisorRun:
    """Queue a pass over `account`, or return the one queued or running."""
    with transaction.atomic():
        AwsAccount.objects.select_for_update().filter(pk=account.pk).first()
        active = AdvisorRun.objects.filter(
            account=account, status__in=[AdvisorRun.Status.QUEUED, AdvisorRun.Status.RUNNING]
        ).first()
        if active is not None:
            return active
        run = AdvisorRun.objects.create(account=account, enqueued_at=timezone.now(), attempts=1)
        transaction.on_commit(lambda: enqueue.advisor_run(run.pk))
    return run


# --- reading AWS ------------------------------------------------------------------


@dataclass
class AdvisorFetch:
    """What one pass read: per role ARN, per service prefix, the normalised usage."""

    usage: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    calls: int = 0


def _when(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(UTC).replace(microsecond=0).isoformat())


def _service_row(item: dict[str, Any]) -> dict[str, Any]:
    namespace = str(item.get("ServiceNamespace", "")).lower()
    actions = [
        {
            "action": f"{namespace}:{action.get('ActionName', '')}".lower(),
            "last_accessed_at": _when(action.get("LastAccessedTime")),
            "entity": str(action.get("LastAccessedEntity", "")),
            "region": str(action.get("LastAccessedRegion", "")),
        }
        for action in item.get("TrackedActionsLastAccessed") or []
    ]
    return {
        "service_name": str(item.get("ServiceName", ""))[:256],
        "last_accessed_at": _when(item.get("LastAuthenticated")),
        "entity": str(item.get("LastAuthenticatedEntity", ""))[:2048],
        "region": str(item.get("LastAuthenticatedRegion", ""))[:32],
        "actions": sorted(actions, key=lambda a: a["action"]),
    }


def _call(fetched: AdvisorFetch, operation: Callable[..., Any], **params: Any) -> Any:
    """One IAM call, waiting and trying again (doubling) while IAM throttles,
    on top of the client's own retries."""
    wait = POLL_FIRST
    for attempt in range(THROTTLE_RETRIES + 1):
        fetched.calls += 1
        try:
            return operation(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in THROTTLED or attempt == THROTTLE_RETRIES:
                raise
            sleep(wait)
            wait = min(wait * 2, POLL_MAX)
    raise AssertionError("unreachable")


def advisor_fetch(
    session: Any, arns: list[str], *, checkpoint: Callable[[], None] = lambda: None
) -> AdvisorFetch:
    """Every role's service-last-accessed details, at most
    IAMPORTAL_USAGE_JOBS_IN_FLIGHT jobs at once. A role that is gone is noted;
    a role whose job fails is noted with the error (its data stays as it was)."""
    iam = aws.client("iam", session=session)
    fetched = AdvisorFetch()
    waiting = list(reversed(arns))
    running: dict[str, str] = {}
    pages: dict[str, list[dict[str, Any]]] = {}
    wait = POLL_FIRST
    while waiting or running:
        while waiting and len(running) < settings.IAMPORTAL_USAGE_JOBS_IN_FLIGHT:
            arn = waiting.pop()
            try:
                job = _call(
                    fetched,
                    iam.generate_service_last_accessed_details,
                    Arn=arn,
                    Granularity="ACTION_LEVEL",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
                    fetched.gone.add(arn)
                else:
                    fetched.failed[arn] = describe_error(exc)
                continue
            running[job["JobId"]] = arn
        finished = 0
        for job_id, arn in list(running.items()):
            params: dict[str, Any] = {"JobId": job_id}
            while True:
                try:
                    answer = _call(fetched, iam.get_service_last_accessed_details, **params)
                except ClientError as exc:
                    fetched.failed[arn] = describe_error(exc)
                    running.pop(job_id)
                    break
                status = answer.get("JobStatus")
                if status == "IN_PROGRESS":
                    break
                if status == "FAILED":
                    error = answer.get("Error", {}).get("Message", "the job failed")
                    fetched.failed[arn] = f"Access Advisor: {error}"
                    running.pop(job_id)
                    finished += 1
                    break
                pages.setdefault(arn, []).extend(answer.get("ServicesLastAccessed") or [])
                if answer.get("IsTruncated") and answer.get("Marker"):
                    params["Marker"] = answer["Marker"]
                    continue
                fetched.usage[arn] = {
                    str(item.get("ServiceNamespace", "")).lower(): _service_row(item)
                    for item in pages.pop(arn)
                    if item.get("ServiceNamespace")
                }
                running.pop(job_id)
                finished += 1
                break
        checkpoint()
        if running:
            # Jobs still running: wait longer each round nothing finished.
            wait = POLL_FIRST if finished else min(wait * 2, POLL_MAX)
            sleep(wait)
    return fetched


# --- writing ---------------------------------------------------------------------


def _hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def usage_write(*, account: AwsAccount, fetched: AdvisorFetch) -> dict[str, int]:
    """Write what changed for the roles read: new services created, changed ones
    updated, services no longer granted deleted, unchanged ones untouched.
    Roles that could not be read keep their rows."""
    roles = dict(
        IamRole.objects.filter(account=account, arn__in=fetched.usage).values_list("arn", "pk")
    )
    existing: dict[tuple[int, str], tuple[int, str]] = {
        (role_id, namespace): (pk, content_hash)
        for pk, role_id, namespace, content_hash in ServiceUsage.objects.filter(
            role_id__in=roles.values()
        ).values_list("pk", "role_id", "namespace", "content_hash")
    }
    create: list[ServiceUsage] = []
    update: list[ServiceUsage] = []
    seen: set[tuple[int, str]] = set()
    for arn, services in fetched.usage.items():
        role_id = roles.get(arn)
        if role_id is None:
            continue  # not in the inventory (yet): the next pass after a sync reads it
        for namespace, row in services.items():
            key = (role_id, namespace[:64])
            seen.add(key)
            digest = _hash(row)
            found = existing.get(key)
            if found is not None and found[1] == digest:
                continue
            item = ServiceUsage(
                pk=found[0] if found else None,
                role_id=role_id,
                namespace=namespace[:64],
                service_name=row["service_name"],
                last_accessed_at=_at(row["last_accessed_at"]),
                last_entity=row["entity"],
                last_region=row["region"],
                actions=row["actions"],
                content_hash=digest,
            )
            (update if found else create).append(item)
    gone = [pk for key, (pk, _) in existing.items() if key not in seen]
    ServiceUsage.objects.bulk_create(create, batch_size=500)
    ServiceUsage.objects.bulk_update(
        update,
        [
            "service_name",
            "last_accessed_at",
            "last_entity",
            "last_region",
            "actions",
            "content_hash",
        ],
        batch_size=500,
    )
    deleted = ServiceUsage.objects.filter(pk__in=gone).delete()[0] if gone else 0
    return {
        "roles": len(fetched.usage),
        "created": len(create),
        "updated": len(update),
        "deleted": deleted,
        "failed": len(fetched.failed),
        "calls": fetched.calls,
    }


# --- one pass, under a lease --------------------------------------------------------


@dataclass
class _Lease:
    run_id: int
    owner: str
    renewed: float = field(default_factory=time.monotonic)

    def renew(self) -> None:
        if time.monotonic() - self.renewed < settings.IAMPORTAL_USAGE_LEASE_SECONDS / 4:
            return
        now = timezone.now()
        held = AdvisorRun.objects.filter(
            pk=self.run_id, status=AdvisorRun.Status.RUNNING, lease_owner=self.owner
        ).update(heartbeat_at=now, lease_expires_at=now + _lease())
        if not held:
            raise AdvisorLeaseLost(f"Access Advisor run {self.run_id} was taken over")
        self.renewed = time.monotonic()

    def hold(self) -> None:
        held = (
            AdvisorRun.objects.select_for_update()
            .filter(pk=self.run_id, status=AdvisorRun.Status.RUNNING, lease_owner=self.owner)
            .exists()
        )
        if not held:
            raise AdvisorLeaseLost(f"Access Advisor run {self.run_id} was taken over")


def _job_name(account_id: str) -> str:
    return f"usage.advisor.{account_id}"


def _finish(lease: _Lease, **fields: Any) -> bool:
    return bool(
        AdvisorRun.objects.filter(
            pk=lease.run_id, status=AdvisorRun.Status.RUNNING, lease_owner=lease.owner
        ).update(finished_at=timezone.now(), lease_owner="", **fields)
    )


def advisor_run(*, run_id: int) -> AdvisorRun | None:
    """Perform a pass. Claims the run when queued, or running under a lapsed
    lease (its worker died); otherwise does nothing and returns None. A task
    delivered twice finds the run claimed or done; writing is conditional on
    the lease, and an unchanged result writes nothing anyway."""
    now = timezone.now()
    owner = jobs.worker_id()
    lapsed = Q(lease_expires_at__lt=now) | Q(lease_expires_at=None)
    claimed = AdvisorRun.objects.filter(
        Q(status=AdvisorRun.Status.QUEUED) | Q(lapsed, status=AdvisorRun.Status.RUNNING), pk=run_id
    ).update(
        status=AdvisorRun.Status.RUNNING,
        started_at=now,
        lease_owner=owner,
        heartbeat_at=now,
        lease_expires_at=now + _lease(),
    )
    if not claimed:
        return None
    run = AdvisorRun.objects.select_related("account").get(pk=run_id)
    account = run.account
    lease = _Lease(run_id=run_id, owner=owner)
    try:
        session = aws.spoke_session(account)
        arns = list(
            IamRole.objects.filter(account=account).order_by("pk").values_list("arn", flat=True)
        )
        fetched = advisor_fetch(session, arns, checkpoint=lease.renew)
        with transaction.atomic():
            lease.hold()
            counts = usage_write(account=account, fetched=fetched)
            status = AdvisorRun.Status.WARNINGS if fetched.failed else AdvisorRun.Status.SUCCEEDED
            _finish(lease, status=status, counts=counts, failed_roles=sorted(fetched.failed))
        jobs.job_record_success(name=_job_name(account.account_id))
        # Judged right after the pass, on the data it just read.
        rightsizing.rightsizing_evaluate(account=account)
    except AdvisorLeaseLost:
        log.warning("Access Advisor run %s was taken over; stopping", run_id)
        return None
    except (ClientError, BotoCoreError) as exc:
        error = describe_error(exc)
        log.warning("Access Advisor of account %s failed: %s", account.account_id, error)
        _finish(lease, status=AdvisorRun.Status.FAILED, error=error)
        jobs.job_record_failure(name=_job_name(account.account_id), error=error)
    run.refresh_from_db()
    return run


def advisor_runs_recover(*, now: datetime | None = None) -> dict[str, int]:
    """The sweep: a pass running under a lapsed lease (its worker died), or
    queued and not started within a lease's time (its task was lost), is
    handed to the broker again, up to IAMPORTAL_USAGE_MAX_ATTEMPTS times;
    then it fails, and the account's next slot starts afresh."""
    now = now or timezone.now()
    due = (
        Q(status=AdvisorRun.Status.RUNNING)
        & (Q(lease_expires_at__lt=now) | Q(lease_expires_at=None))
        & (Q(enqueued_at=None) | Q(enqueued_at__lt=F("lease_expires_at")))
    ) | Q(status=AdvisorRun.Status.QUEUED, enqueued_at__lt=now - _lease())
    outcome = {"requeued": 0, "failed": 0}
    for run_id in AdvisorRun.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            run = (
                AdvisorRun.objects.select_for_update(skip_locked=True)
                .filter(due, pk=run_id)
                .select_related("account")
                .first()
            )
            if run is None:
                continue
            if run.attempts >= settings.IAMPORTAL_USAGE_MAX_ATTEMPTS:
                error = f"Gave up after {run.attempts} attempts: no worker finished it."
                AdvisorRun.objects.filter(pk=run_id).update(
                    status=AdvisorRun.Status.FAILED, error=error, finished_at=now, lease_owner=""
                )
                jobs.job_record_failure(name=_job_name(run.account.account_id), error=error)
                outcome["failed"] += 1
                continue
            AdvisorRun.objects.filter(pk=run_id).update(attempts=F("attempts") + 1, enqueued_at=now)
            transaction.on_commit(lambda run_id=run_id: enqueue.advisor_run(run_id))  # type: ignore[misc]
            outcome["requeued"] += 1
    return outcome
