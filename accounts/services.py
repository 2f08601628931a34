"""Business actions on accounts and the inventory: onboarding and sync."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import OperationalError, connection, transaction
from django.db.models import Exists, F, Max, Model, OuterRef, Q
from django.db.models.functions import Length, Substr
from django.utils import timezone
from django_q.exceptions import TimeoutException

from accounts import enqueue, entries, fetch
from accounts.models import (
    AwsAccount,
    CloudResource,
    Database,
    IamGroup,
    IamRole,
    IamUser,
    InventoryEntry,
    InventoryItem,
    ManagedPolicy,
    OrgAccount,
    OrgNode,
    RoleArnHead,
    RoleArnTail,
    RoleVersion,
    ServiceControlPolicy,
    SyncRun,
)
from iamportal import aws, jobs
from iamportal.revisions import revision_bump
from iamportal.rows import insert_all

log = logging.getLogger(__name__)

M = TypeVar("M", bound=InventoryItem)
BATCH_SIZE = 500


def account_add(
    *,
    account_id: str,
    name: str,
    environment: str = "",
    spoke_role_name: str = "",
    external_id: str = "",
    regions: list[str] | None = None,
    approvals_required: int | None = None,
) -> AwsAccount:
    """Onboard an account (or update the one with that id). Validates like the admin form."""
    account = AwsAccount.objects.filter(account_id=account_id).first() or AwsAccount(
        account_id=account_id
    )
    account.name = name
    account.environment = environment
    account.spoke_role_name = spoke_role_name
    account.external_id = external_id
    account.regions = regions or []
    if approvals_required is not None:
        account.approvals_required = approvals_required
    account.full_clean(exclude=["latest_sync"])
    account.save()
    return account


def organization_accounts() -> list[dict[str, str]]:
    """The accounts of the hub's AWS Organization: id, name, email, status."""
    org = aws.client("organizations")
    found = []
    for page in org.get_paginator("list_accounts").paginate():
        for item in page["Accounts"]:
            found.append(
                {
                    "account_id": item["Id"],
                    "name": item["Name"],
                    "email": item.get("Email", ""),
                    "status": item.get("Status", ""),
                }
            )
    return sorted(found, key=lambda a: a["name"].lower())


ACCESS_REVISION = "access"


def access_changed() -> None:
    """Roles changed: the brokering access index must be rebuilt."""
    revision_bump(ACCESS_REVISION)


# --- sync ----------------------------------------------------------------------


class SyncDeadlineExceeded(Exception):
    """One account's sync ran past IAMPORTAL_SYNC_DEADLINE_SECONDS."""


class SyncLeaseLost(Exception):
    """Another worker took the run over (this one's lease had expired): this one
    must stop without writing anything."""


# Monotonic seconds for the sync deadline and lease renewals; tests move it.
clock: Callable[[], float] = time.monotonic


def _lease_duration() -> timedelta:
    return timedelta(seconds=settings.IAMPORTAL_SYNC_LEASE_SECONDS)


@dataclass
class SyncLease:
    """A worker's hold on a running sync: every write it makes is conditional on
    still holding it, and it is renewed as the sync makes progress."""

    run_id: int
    owner: str
    started: float
    renewed: float
    stage: str = "Starting"

    def _renew(self, **fields: Any) -> None:
        now = timezone.now()
        renewed = SyncRun.objects.filter(
            pk=self.run_id, status=SyncRun.Status.RUNNING, lease_owner=self.owner
        ).update(heartbeat_at=now, lease_expires_at=now + _lease_duration(), **fields)
        if not renewed:
            raise SyncLeaseLost(f"sync run {self.run_id} is no longer held by {self.owner}")
        self.renewed = clock()

    def _deadline_check(self) -> None:
        deadline = settings.IAMPORTAL_SYNC_DEADLINE_SECONDS
        if clock() - self.started > deadline:
            raise SyncDeadlineExceeded(
                f"Exceeded the sync deadline of {deadline} s (IAMPORTAL_SYNC_DEADLINE_SECONDS) "
                f"at: {self.stage}. An AWS endpoint of this account may be hanging."
            )

    def checkpoint(self) -> None:
        """Between AWS calls: stop at the deadline, and renew the lease every
        quarter of its duration so it never lapses while the sync is alive."""
        self._deadline_check()
        if clock() - self.renewed >= settings.IAMPORTAL_SYNC_LEASE_SECONDS / 4:
            self._renew()

    def progress(self, percent: int, stage: str) -> None:
        self._deadline_check()
        self.stage = stage
        self._renew(progress=percent, stage=stage)

    def hold(self) -> None:
        """Inside the write transaction: lock the run row and make sure it is
        still ours, so a superseded worker can never overwrite the inventory a
        newer holder wrote (the lock keeps a takeover out until the commit)."""
        held = (
            SyncRun.objects.select_for_update()
            .filter(pk=self.run_id, status=SyncRun.Status.RUNNING, lease_owner=self.owner)
            .exists()
        )
        if not held:
            raise SyncLeaseLost(f"sync run {self.run_id} is no longer held by {self.owner}")


def account_sync_request(
    *,
    account: AwsAccount,
    trigger: str = SyncRun.Trigger.MANUAL,
    user: User | AnonymousUser | None = None,
) -> SyncRun:
    """Queue a sync of `account`, or return the one already queued or running (a
    run whose worker died or whose task was lost is the sweep's to recover)."""
    with transaction.atomic():
        AwsAccount.objects.select_for_update().filter(pk=account.pk).first()
        active = (
            SyncRun.objects.filter(
                account=account, status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]
            )
            .order_by("-queued_at")
            .first()
        )
        if active is not None:
            return active
        run = SyncRun.objects.create(
            account=account,
            trigger=trigger,
            requested_by=user if user is not None and user.is_authenticated else None,
            enqueued_at=timezone.now(),
            attempts=1,
        )
        AwsAccount.objects.filter(pk=account.pk).update(latest_sync=run)
        transaction.on_commit(lambda: enqueue.account_sync(run.pk))
    return run


def _sync_job(account_id: str) -> str:
    return f"accounts.sync.{account_id}"


def _sync_finish(
    lease: SyncLease, *, account_id: str, error: str = "", counts: dict[str, Any] | None = None
) -> bool:
    """Record the outcome of a run this worker still holds; False when it was
    taken over meanwhile (then the new holder records the outcome)."""
    fields: dict[str, Any] = {"error": error, "finished_at": timezone.now()}
    if error:
        fields["status"] = SyncRun.Status.FAILED
    else:
        counts = counts or {}
        # Unreadable resources, and listings or access keys that were refused.
        warned = counts.get("unreadable") or counts.get("warnings")
        fields.update(
            status=SyncRun.Status.WARNINGS if warned else SyncRun.Status.SUCCEEDED,
            counts=counts,
            progress=100,
            stage="Done",
        )
    finished = SyncRun.objects.filter(
        pk=lease.run_id, status=SyncRun.Status.RUNNING, lease_owner=lease.owner
    ).update(**fields)
    if not finished:
        return False
    if error:
        jobs.job_record_failure(name=_sync_job(account_id), error=error)
    else:
        jobs.job_record_success(name=_sync_job(account_id))
    return True


def _stopped_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutException):
        return (
            f"Stopped by the task timeout after {settings.Q_CLUSTER['timeout']} s (Q_TIMEOUT); "
            "the next scheduled sync will try again."
        )
    if isinstance(exc, Exception):
        return f"Internal error: {fetch.describe_error(exc)}"
    return f"Stopped: the worker was interrupted ({type(exc).__name__})."


def inventory_fetch(
    account: AwsAccount,
    on_progress: Callable[[int, str], None] | None = None,
    *,
    checkpoint: fetch.Checkpoint = fetch.no_checkpoint,
) -> fetch.Inventory:
    """Every AWS call a sync of `account` needs, and nothing else. `checkpoint`
    runs between calls (the deadline and the lease)."""

    def progress(percent: int, stage: str) -> None:
        if on_progress:
            on_progress(percent, stage)

    progress(5, "Assuming the spoke role")
    session = aws.spoke_session(account)
    inventory = fetch.Inventory()
    progress(10, "Reading IAM roles, users, groups and policies")
    inventory.roles, inventory.policies = fetch.iam_fetch(
        session, account.account_id, checkpoint, identities=inventory
    )
    progress(40, "Reading access keys")
    fetch.access_keys_fetch(session, inventory, checkpoint)
    coverage = fetch.ConfigCoverage()
    if settings.IAMPORTAL_CONFIG_AGGREGATOR:
        progress(45, "Reading resources from AWS Config")
        coverage = fetch.config_fetch(
            aws.config_client(),
            settings.IAMPORTAL_CONFIG_AGGREGATOR,
            account.account_id,
            inventory,
            checkpoint,
        )
    inventory.config_resources = coverage.resources
    if not coverage.covers("s3"):
        progress(50, "Reading S3 buckets")
        fetch.s3_fetch(session, inventory, checkpoint)
    regions = account.sync_regions
    for index, region in enumerate(regions):
        progress(
            60 + 30 * index // max(len(regions), 1), f"Reading SQS, SNS and databases in {region}"
        )
        if not coverage.covers("sqs", region):
            fetch.sqs_fetch(session, region, account.account_id, inventory, checkpoint)
        if not coverage.covers("sns", region):
            fetch.sns_fetch(session, region, account.account_id, inventory, checkpoint)
        fetch.rds_fetch(session, region, account.account_id, inventory, checkpoint)
        fetch.redshift_fetch(session, region, account.account_id, inventory, checkpoint)
    return inventory


CONFIG_OPERATIONS = frozenset(
    {
        "GetAggregateDiscoveredResourceCounts",
        "SelectAggregateResourceConfig",
        "ListAggregateDiscoveredResources",
        "BatchGetAggregateResourceConfig",
    }
)


def account_sync_run(*, run_id: int) -> SyncRun | None:
    """Perform a sync. The task claims the run when it is queued, or when it is
    running under an expired lease (its worker died: a redelivered or re-enqueued
    task takes it over); otherwise (done, or alive elsewhere) it does nothing
    and returns None. AWS errors and the deadline fail this account's run only;
    anything else, down to the task timeout's SystemExit, is recorded as a
    failure before it propagates, so the account is never left "running"."""
    now = timezone.now()
    owner = jobs.worker_id()
    lapsed = Q(lease_expires_at__lt=now) | Q(lease_expires_at=None)
    claimed = SyncRun.objects.filter(
        Q(status=SyncRun.Status.QUEUED) | Q(lapsed, status=SyncRun.Status.RUNNING), pk=run_id
    ).update(
        status=SyncRun.Status.RUNNING,
        started_at=now,
        progress=0,
        stage="Starting",
        lease_owner=owner,
        heartbeat_at=now,
        lease_expires_at=now + _lease_duration(),
    )
    if not claimed:
        return None
    run = SyncRun.objects.select_related("account").get(pk=run_id)
    account_id = run.account.account_id
    lease = SyncLease(run_id=run_id, owner=owner, started=clock(), renewed=clock())
    try:
        inventory = inventory_fetch(run.account, lease.progress, checkpoint=lease.checkpoint)
        lease.progress(95, "Saving")
        with transaction.atomic():
            lease.hold()
            counts = inventory_write(account=run.account, inventory=inventory)
            _sync_finish(lease, account_id=account_id, counts=counts)
    except SyncLeaseLost:
        log.warning("sync run %s of account %s was taken over; stopping", run_id, account_id)
        return None
    except (ClientError, BotoCoreError, fetch.ForeignRowError, SyncDeadlineExceeded) as exc:
        error = str(exc) if isinstance(exc, SyncDeadlineExceeded) else fetch.describe_error(exc)
        if isinstance(exc, ClientError) and exc.operation_name == "AssumeRole":
            error = f"Could not assume {run.account.spoke_role_arn}: {error}"
        elif isinstance(exc, ClientError) and exc.operation_name in CONFIG_OPERATIONS:
            error = f"AWS Config aggregator {settings.IAMPORTAL_CONFIG_AGGREGATOR}: {error}"
        log.warning("sync of account %s failed: %s", account_id, error)
        _sync_finish(lease, account_id=account_id, error=error)
    except BaseException as exc:
        # Includes django-q's timeout (a SystemExit) and a worker shutting down.
        _sync_finish_interrupted(lease, account_id=account_id, error=_stopped_error(exc))
        raise
    run.refresh_from_db()
    return run


def _sync_finish_interrupted(lease: SyncLease, *, account_id: str, error: str) -> None:
    """Record a failure while an exception unwinds. The signal that raised it
    may have interrupted a database call and left the connection unusable: then
    try once more on a new connection; if even that fails, the lease expires and
    the sweep recovers the run."""
    for attempt in range(2):
        try:
            _sync_finish(lease, account_id=account_id, error=error)
            return
        except Exception:
            if attempt or connection.in_atomic_block:
                log.exception("could not record the failure of sync run %s", lease.run_id)
                return
            connection.close()


def sync_runs_recover() -> dict[str, int]:
    """The sweep (on the schedule): re-enqueue syncs that no worker is doing.

    - running under an expired lease: its worker died, so its task is gone
      (the Redis broker popped it; the database broker redelivers only after
      Q_CLUSTER["retry"]): re-enqueued at once, once per expiry;
    - queued, or re-enqueued and still not picked up, for longer than
      IAMPORTAL_SYNC_REQUEUE_SECONDS while the broker holds nothing else (with
      a backlog, its task may simply be waiting its turn);
    - after IAMPORTAL_SYNC_MAX_ATTEMPTS hand-overs to the broker, it gives up
      and fails the run, so the next schedule starts afresh.
    """
    now = timezone.now()
    due = _recover_due(now=now, backlog=jobs.broker_backlog())
    outcome = {"requeued": 0, "failed": 0}
    for run_id in SyncRun.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:1000]:
        result = _sync_run_recover(run_id=run_id, due=due, now=now)
        if result:
            outcome[result] += 1
    return outcome


def _recover_due(*, now: datetime, backlog: int | None) -> Q:
    lapsed = Q(status=SyncRun.Status.RUNNING) & (
        Q(lease_expires_at__lt=now) | Q(lease_expires_at=None)
    )
    # Rows from before leases existed have no enqueued_at: their queued_at stands in.
    never_requeued = Q(enqueued_at=None) | Q(enqueued_at__lt=F("lease_expires_at"))
    due = lapsed & never_requeued
    if backlog == 0:
        stale = Q(enqueued_at__lt=now - timedelta(seconds=settings.IAMPORTAL_SYNC_REQUEUE_SECONDS))
        stale |= Q(
            enqueued_at=None,
            queued_at__lt=now - timedelta(seconds=settings.IAMPORTAL_SYNC_REQUEUE_SECONDS),
        )
        due |= (Q(status=SyncRun.Status.QUEUED) | lapsed) & stale
    return due


def _sync_run_recover(*, run_id: int, due: Q, now: datetime) -> str | None:
    with transaction.atomic():
        # skip_locked: a run being written or claimed right now is not lost.
        run = (
            SyncRun.objects.select_for_update(skip_locked=True)
            .filter(due, pk=run_id)
            .only("pk", "status", "attempts", "lease_owner", "lease_expires_at", "account")
            .first()
        )
        if run is None:
            return None
        if run.attempts >= settings.IAMPORTAL_SYNC_MAX_ATTEMPTS:
            if run.status == SyncRun.Status.RUNNING:
                cause = (
                    f"the worker running it ({run.lease_owner or 'unknown'}) stopped "
                    "without finishing"
                )
            else:
                cause = (
                    f"no worker started it within {settings.IAMPORTAL_SYNC_REQUEUE_SECONDS} s "
                    "(is a qcluster running?)"
                )
            error = f"Gave up after {run.attempts} attempts: {cause}."
            SyncRun.objects.filter(pk=run.pk).update(
                status=SyncRun.Status.FAILED, error=error, finished_at=now, lease_owner=""
            )
            account_id = AwsAccount.objects.values_list("account_id", flat=True).get(
                pk=run.account_id
            )
            jobs.job_record_failure(name=_sync_job(account_id), error=error)
            log.warning("sync run %s of account %s: %s", run.pk, account_id, error)
            return "failed"
        SyncRun.objects.filter(pk=run.pk).update(attempts=F("attempts") + 1, enqueued_at=now)
        transaction.on_commit(lambda: enqueue.account_sync(run_id))
    log.info("sync run %s re-enqueued (attempt %s)", run_id, run.attempts + 1)
    return "requeued"


def inventory_write(*, account: AwsAccount, inventory: fetch.Inventory) -> dict[str, Any]:
    """Upsert one account's inventory: new rows created, changed rows updated,
    unchanged rows untouched, vanished rows deleted. A resource that was listed
    but could not be read keeps its row, marked with the error (or is recorded
    with what is known of it when it is new). All or nothing."""
    now = timezone.now()
    with transaction.atomic():
        written: list[IamRole] = []
        roles = _upsert(IamRole, account, inventory.roles, now, written=written)
        _role_versions_after_sync(account=account, roles=written, now=now)
        policies = _upsert(ManagedPolicy, account, inventory.policies, now)
        resources = _upsert(
            CloudResource, account, inventory.resources, now, unreadable=inventory.unreadable
        )
        identities = identities_write(account=account, inventory=inventory, now=now)
        databases = _upsert(Database, account, inventory.databases, now, keep=_unlisted(inventory))
        users = identities[0]  # groups have no entries
        inventory_entries_refresh(
            account=account,
            written={
                InventoryEntry.Kind.ROLE: roles.rows,
                InventoryEntry.Kind.USER: users.rows,
                InventoryEntry.Kind.POLICY: policies.rows,
                InventoryEntry.Kind.RESOURCE: resources.rows,
                InventoryEntry.Kind.DATABASE: databases.rows,
            },
        )
        if roles.written:
            # Role tags grant access and rules match role ARNs.
            access_changed()
    totals = [roles, policies, resources, *identities, databases]
    return {
        "roles": len(inventory.roles),
        "policies": len(inventory.policies),
        "resources": len(inventory.resources) + len(inventory.unreadable),
        "config_resources": inventory.config_resources,
        "users": len(inventory.users),
        "groups": len(inventory.groups),
        "databases": len(inventory.databases),
        "access_key_calls": inventory.access_key_calls,
        "unreadable": len(inventory.unreadable),
        "created": sum(t.created for t in totals),
        "updated": sum(t.updated for t in totals),
        "deleted": sum(t.deleted for t in totals),
        "written": sum(t.written for t in totals),
        "warnings": inventory.warnings[:20],
    }


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    # The rows created or rewritten from what AWS listed, by ARN, as written.
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def written(self) -> int:
        return self.created + self.updated + self.deleted


def content_hash(row: dict[str, Any]) -> str:
    encoded = json.dumps(row, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def _upsert(
    model: type[M],
    account: AwsAccount,
    rows: list[dict[str, Any]],
    now: datetime,
    *,
    unreadable: list[dict[str, Any]] | None = None,
    keep: Q | None = None,
    written: list[M] | None = None,
) -> UpsertResult:
    """`unreadable` (resources only): rows of what is known (arn, name, type,
    region) plus "error"; never deleted, never overwritten with less. `keep`:
    existing rows that are not deleted when missing from `rows` (their listing
    failed). `written`, when given, receives the rows created or updated from
    `rows`, as written."""
    result = UpsertResult()
    manager = model._default_manager
    existing: dict[str, tuple[int, str]] = {
        arn: (pk, digest)
        for pk, arn, digest in manager.filter(account=account).values_list(
            "pk", "arn", "content_hash"
        )
    }
    marked: set[int] = set()
    if unreadable is not None:
        marked = set(
            manager.filter(account=account).exclude(read_error="").values_list("pk", flat=True)
        )
    # New rows as values, not model instances: a first sync creates thousands.
    to_create: list[dict[str, Any]] = []
    to_update: list[M] = []
    to_mark: list[M] = []
    readable: set[int] = set()
    seen: set[str] = set()
    for row in rows:
        if row["arn"] in seen:
            continue
        seen.add(row["arn"])
        digest = content_hash(row)
        found = existing.pop(row["arn"], None)
        if found is None:
            to_create.append(
                {**row, "account_id": account.pk, "content_hash": digest, "synced_at": now}
            )
            result.rows[row["arn"]] = to_create[-1]
            continue
        readable.add(found[0])
        if found[1] != digest:
            to_update.append(
                model(pk=found[0], account_id=account.pk, content_hash=digest, synced_at=now, **row)
            )
            result.rows[row["arn"]] = {**row, "synced_at": now}
    for item in unreadable or []:
        if item["arn"] in seen:
            continue
        seen.add(item["arn"])
        known = {key: value for key, value in item.items() if key != "error"}
        found = existing.pop(item["arn"], None)
        if found is None:
            to_create.append(
                {
                    **known,
                    "account_id": account.pk,
                    "content_hash": content_hash(known),
                    "synced_at": now,
                    "read_error": item["error"],
                    "read_error_at": now,
                }
            )
        else:
            to_mark.append(model(pk=found[0], read_error=item["error"], read_error_at=now))
    moved = 0
    if to_create:
        # Bucket ARNs name no account: a bucket deleted in one account and created
        # in this one keeps its ARN. AWS just said it is here now. An ARN that
        # names this account can have no row in another one.
        elsewhere = [
            row["arn"] for row in to_create if _arn_account(row["arn"]) != account.account_id
        ]
        if elsewhere:
            moved, _ = manager.filter(arn__in=elsewhere).exclude(account=account).delete()
        insert_all(model, to_create)
    if to_update:
        fields = [*rows[0].keys(), "content_hash", "synced_at"]
        manager.bulk_update(to_update, fields, batch_size=BATCH_SIZE)
    if written is not None:
        written += [*(model(**row) for row in to_create), *to_update]
    if to_mark:
        manager.bulk_update(to_mark, ["read_error", "read_error_at"], batch_size=BATCH_SIZE)
    if marked & readable:
        manager.filter(pk__in=marked & readable).update(read_error="", read_error_at=None)
    if existing and keep is not None:
        kept = set(
            manager.filter(keep, pk__in=[pk for pk, _ in existing.values()]).values_list(
                "pk", flat=True
            )
        )
        existing = {arn: found for arn, found in existing.items() if found[0] not in kept}
    if existing:
        manager.filter(pk__in=[pk for pk, _ in existing.values()]).delete()
    result.created, result.updated = len(to_create), len(to_update)
    result.deleted = len(existing) + moved
    return result


def _arn_account(arn: str) -> str:
    """The account an ARN names ("" for an S3 bucket's)."""
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 else ""


def sync_history_prune() -> int:
    """Forget finished sync runs older than the history setting; each account's
    latest run is always kept."""
    cutoff = timezone.now() - timedelta(days=settings.IAMPORTAL_SYNC_HISTORY_DAYS)
    keep = AwsAccount.objects.exclude(latest_sync=None).values("latest_sync")
    deleted, _ = SyncRun.objects.filter(finished_at__lt=cutoff).exclude(pk__in=keep).delete()
    return deleted


def role_search_names_prune() -> tuple[int, int]:
    """Forget the role ARN tails and heads (what role search looks text up in)
    that no role has any more, and the duplicates two syncs may have added at
    the same moment. Returns how many tails and heads went.

    On PostgreSQL the two tables are locked against writes first: the roles
    table's triggers add a tail only when they do not see it, so a tail removed
    while a sync's uncommitted role still counts on it would leave that role
    out of search. The lock waits for those syncs to commit; the syncs wait a
    moment for the prune. If it cannot have the locks within a second each, the
    prune is left to its next turn, so that role writes never wait long."""
    has_tail = IamRole.objects.filter(search_tail=OuterRef("search_key"))
    head = Substr("search_key", 1, Length("search_key") - Length("search_tail"))
    has_head = (
        IamRole.objects.filter(account_id=OuterRef("account_id"))
        .annotate(head=head)
        .filter(head=OuterRef("search_key"))
    )
    earlier_tail = RoleArnTail.objects.filter(
        search_key=OuterRef("search_key"), pk__lt=OuterRef("pk")
    )
    earlier_head = RoleArnHead.objects.filter(
        account_id=OuterRef("account_id"), search_key=OuterRef("search_key"), pk__lt=OuterRef("pk")
    )
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '1s'")
                    cursor.execute(
                        f"LOCK TABLE {RoleArnTail._meta.db_table}, {RoleArnHead._meta.db_table} "
                        "IN SHARE ROW EXCLUSIVE MODE"
                    )
            tails, _ = RoleArnTail.objects.filter(~Exists(has_tail) | Exists(earlier_tail)).delete()
            heads, _ = RoleArnHead.objects.filter(~Exists(has_head) | Exists(earlier_head)).delete()
    except OperationalError as exc:  # the lock was not had in time
        log.warning("role search names not pruned this time: %s", exc)
        return 0, 0
    return tails, heads


# --- one role -------------------------------------------------------------------


REFRESH_MIN_INTERVAL = timedelta(seconds=30)


def role_refresh_request(*, role: IamRole) -> None:
    """Queue a refresh of one role; a refresh asked for in the last 30 seconds and
    still pending is not queued again (anyone signed in can press the button)."""
    now = timezone.now()
    claimed = (
        IamRole.objects.filter(pk=role.pk)
        .exclude(
            refresh_requested_at__gt=now - REFRESH_MIN_INTERVAL,
            refresh_requested_at__gte=F("synced_at"),
        )
        .update(refresh_requested_at=now)
    )
    if not claimed:
        return
    transaction.on_commit(lambda: enqueue.role_refresh(role.pk))


def role_refresh(
    *, role: IamRole, attribution: dict[tuple[str, str], int] | None = None
) -> IamRole | None:
    """Re-read one role from AWS now. Returns None when the role no longer exists.
    `attribution`: the parts of the role, as (part, key), a request just changed,
    with its number (the apply refreshes the roles it touched), so their new
    versions are recorded as that request's."""
    session = aws.spoke_session(role.account)
    iam = aws.client("iam", session=session)
    try:
        detail = iam.get_role(RoleName=role.name)["Role"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            role.delete()
            inventory_entries_refresh(account=role.account)
            access_changed()
            return None
        raise
    detail["RolePolicyList"] = [
        {
            "PolicyName": name,
            "PolicyDocument": iam.get_role_policy(RoleName=role.name, PolicyName=name)[
                "PolicyDocument"
            ],
        }
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role.name)
        for name in page["PolicyNames"]
    ]
    detail["AttachedManagedPolicies"] = [
        policy
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role.name)
        for policy in page["AttachedPolicies"]
    ]
    row = fetch.role_row(detail)
    grants_changed = row["tags"] != role.tags or row["arn"] != role.arn
    digest = content_hash(row)
    changed = digest != role.content_hash
    now = timezone.now()
    fields = [*row.keys(), "content_hash", "synced_at"]
    for key, value in row.items():
        setattr(role, key, value)
    role.content_hash = digest
    role.synced_at = now
    with transaction.atomic():
        role.save(update_fields=fields)
        if changed:
            role_versions_record(roles=[role], now=now, attribution=attribution)
        inventory_entries_refresh(account=role.account)
    if grants_changed:
        access_changed()
    return role


def role_adopt(
    *, account: AwsAccount, arn: str, attribution: dict[tuple[str, str], int] | None = None
) -> IamRole | None:
    """Read into the inventory a role AWS has and the inventory does not yet
    (one a request just created), without waiting for the next sync. None
    when AWS has no such role."""
    role, _ = IamRole.objects.get_or_create(
        arn=arn,
        defaults={
            "account": account,
            "name": arn.rsplit("/", 1)[-1],
            "content_hash": "",
            "synced_at": timezone.now(),
        },
    )
    return role_refresh(role=role, attribution=attribution)


# --- role history -------------------------------------------------------------------


def role_parts(role: IamRole) -> dict[tuple[str, str], Any]:
    """Each part of a role whose versions are kept, as (part, key) -> document:
    every inline policy, the set of attached managed policies (their ARNs,
    sorted), the trust policy, the boundary's ARN and the tags."""
    parts: dict[tuple[str, str], Any] = {
        (RoleVersion.Part.INLINE, name): document
        for name, document in (role.inline_policies or {}).items()
    }
    parts[(RoleVersion.Part.MANAGED, "")] = sorted(
        str(p.get("arn")) for p in role.managed_policies or [] if isinstance(p, dict)
    )
    parts[(RoleVersion.Part.TRUST, "")] = role.trust_policy or None
    parts[(RoleVersion.Part.BOUNDARY, "")] = role.permissions_boundary_arn or None
    parts[(RoleVersion.Part.TAGS, "")] = dict(sorted((role.tags or {}).items()))
    return parts


def role_versions_latest(*, role_ids: Iterable[int]) -> dict[int, dict[tuple[str, str], Any]]:
    """The document of the latest version of each (part, key), by role."""
    ids = (
        RoleVersion.objects.filter(role_id__in=list(role_ids))
        .order_by()
        .values("role_id", "part", "key")
        .annotate(latest=Max("id"))
        .values("latest")
    )
    latest: dict[int, dict[tuple[str, str], Any]] = {}
    for role_id, part, key, document in RoleVersion.objects.filter(pk__in=ids).values_list(
        "role_id", "part", "key", "document"
    ):
        latest.setdefault(role_id, {})[(part, key)] = document
    return latest


def role_versions_record(
    *,
    roles: list[IamRole],
    now: datetime,
    attribution: dict[tuple[str, str], int] | None = None,
) -> int:
    """Record a version of every part of `roles` that differs from its latest
    version (a role never seen before gets a baseline of all its parts, "first
    seen"; an inline policy that disappeared, a version with no document). A
    part in `attribution` is recorded as that request's change; any other
    change was made outside iamportal. Returns how many versions were written."""
    if any(role.pk is None for role in roles):
        # A version without its role would be written with no link to it.
        raise ValueError("role versions are recorded for saved roles only")
    latest = role_versions_latest(role_ids=[role.pk for role in roles])
    attribution = attribution or {}
    # Values, not model instances: a first sync records thousands.
    versions: list[dict[str, Any]] = []
    for role in roles:
        known = latest.get(role.pk)
        parts = role_parts(role)
        of_role = {
            "role_id": role.pk,
            "account_id": role.account_id,
            "role_arn": role.arn,
            "role_name": role.name,
            "recorded_at": now,
        }
        if known is None:
            versions += [
                {
                    **of_role,
                    "part": part,
                    "key": key,
                    "document": document,
                    "source": RoleVersion.Source.FIRST_SEEN,
                }
                for (part, key), document in parts.items()
            ]
            continue
        for (part, key), document in known.items():
            if part == RoleVersion.Part.INLINE and document is not None:
                parts.setdefault((part, key), None)
        for (part, key), document in parts.items():
            if (part, key) in known and known[(part, key)] == document:
                continue
            if (part, key) not in known and document is None:
                continue
            request = attribution.get((part, key))
            versions.append(
                {
                    **of_role,
                    "part": part,
                    "key": key,
                    "document": document,
                    "source": RoleVersion.Source.OUTSIDE
                    if request is None
                    else RoleVersion.Source.REQUEST,
                    "request_number": request,
                }
            )
    insert_all(RoleVersion, versions)
    return len(versions)


def _role_versions_after_sync(*, account: AwsAccount, roles: list[IamRole], now: datetime) -> None:
    """History for the roles a sync created or rewrote (their content hash
    changed), from the rows as the sync wrote them: unchanged roles are not
    even read, and written ones are not read back."""
    ordered = sorted(roles, key=lambda role: role.arn)
    for start in range(0, len(ordered), BATCH_SIZE):
        batch = ordered[start : start + BATCH_SIZE]
        if any(role.pk is None for role in batch):
            # New rows: the insert did not give their keys back.
            keys = dict(
                IamRole.objects.filter(
                    account=account, arn__in=[role.arn for role in batch]
                ).values_list("arn", "pk")
            )
            for role in batch:
                role.pk = keys[role.arn]
        role_versions_record(roles=batch, now=now)


# --- users, groups and databases ----------------------------------------------------


def identities_write(
    *, account: AwsAccount, inventory: fetch.Inventory, now: datetime
) -> list[UpsertResult]:
    """Upsert the users and groups of `account`. A user whose access keys could
    not be read keeps the keys an earlier sync read, with the error."""
    unread = [user for user in inventory.users if user["access_keys_error"]]
    if unread:
        earlier = dict(
            IamUser.objects.filter(
                account=account, arn__in=[user["arn"] for user in unread]
            ).values_list("arn", "access_keys")
        )
        for user in unread:
            user["access_keys"] = earlier.get(user["arn"]) or []
    users = _upsert(IamUser, account, inventory.users, now)
    groups = _upsert(IamGroup, account, inventory.groups, now)
    return [users, groups]


def _unlisted(inventory: fetch.Inventory) -> Q | None:
    """The database rows whose listing failed in this sync: kept as they are."""
    keep = Q(pk__in=[])
    for kind, region in sorted(inventory.databases_unlisted):
        keep |= Q(type=kind, region=region)
    return keep if inventory.databases_unlisted else None


# --- the organisation ---------------------------------------------------------------


def _upsert_keyed(
    model: type[Any], key: str, rows: list[dict[str, Any]], now: datetime
) -> UpsertResult:
    """Like the inventory upsert, for organisation rows, which belong to no
    account: keyed by `key`, unchanged rows untouched, vanished rows deleted."""
    result = UpsertResult()
    manager = model._default_manager
    existing: dict[str, tuple[int, str]] = {
        value: (pk, digest) for pk, value, digest in manager.values_list("pk", key, "content_hash")
    }
    to_create: list[Any] = []
    to_update: list[Any] = []
    for row in rows:
        digest = content_hash(row)
        found = existing.pop(row[key], None)
        if found is None:
            to_create.append(model(content_hash=digest, synced_at=now, **row))
        elif found[1] != digest:
            to_update.append(model(pk=found[0], content_hash=digest, synced_at=now, **row))
    if to_create:
        manager.bulk_create(to_create, batch_size=BATCH_SIZE)
    if to_update:
        fields = [*rows[0].keys(), "content_hash", "synced_at"]
        manager.bulk_update(to_update, fields, batch_size=BATCH_SIZE)
    if existing:
        manager.filter(pk__in=[pk for pk, _ in existing.values()]).delete()
    result.created, result.updated, result.deleted = len(to_create), len(to_update), len(existing)
    return result


def organization_sync() -> dict[str, int] | None:
    """Read the OU tree, each account's place in it and the service control
    policies from the account IAMPORTAL_ORG_ACCOUNT_ID names, and store them;
    None when that setting is empty (the organisation is not read). All or
    nothing: a failed read raises and keeps what the last sync stored."""
    if not settings.IAMPORTAL_ORG_ACCOUNT_ID:
        return None
    found = fetch.organization_fetch(aws.organization_session())
    now = timezone.now()
    with transaction.atomic():
        totals = [
            _upsert_keyed(OrgNode, "node_id", found.nodes, now),
            _upsert_keyed(OrgAccount, "account_id", found.accounts, now),
            _upsert_keyed(ServiceControlPolicy, "policy_id", found.policies, now),
        ]
    return {
        "units": len(found.nodes),
        "accounts": len(found.accounts),
        "policies": len(found.policies),
        "written": sum(t.written for t in totals),
    }


# --- the Policies page's entries -------------------------------------------------------


def inventory_entries_refresh(
    *, account: AwsAccount, written: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None
) -> int:
    """Bring the account's `InventoryEntry` rows in line with its roles, users,
    managed policies, resources and databases: an entry is written only where
    its source row is new or was rewritten since (its `synced_at` moved), and
    removed with it, so a sync that changed nothing writes nothing here either.
    `written` (kind, then ARN: the row's values as just written, from
    `UpsertResult.rows`) saves reading those rows back; any other is read.
    Returns the number of entries written or deleted."""
    count = 0
    for kind, (model, columns) in entries.SOURCES.items():
        sources = dict(
            model._default_manager.filter(account=account).values_list("pk", "synced_at")
        )
        current = {
            object_id: (pk, changed_at)
            for pk, object_id, changed_at in InventoryEntry.objects.filter(
                account=account, kind=kind
            ).values_list("pk", "object_id", "changed_at")
        }
        stale = [
            pk
            for pk, synced_at in sources.items()
            if pk not in current or current[pk][1] != synced_at
        ]
        gone = [pk for object_id, (pk, _) in current.items() if object_id not in sources]
        given = (written or {}).get(kind, {})
        for start in range(0, len(stale), BATCH_SIZE):
            rows = _entry_sources(model, columns, stale[start : start + BATCH_SIZE], given)
            to_create: list[dict[str, Any]] = []
            to_update: list[InventoryEntry] = []
            for row in rows:
                fields = {"account_id": account.pk, **entries.entry_fields(kind, row)}
                if row["pk"] in current:
                    to_update.append(InventoryEntry(pk=current[row["pk"]][0], **fields))
                else:
                    to_create.append(fields)
            insert_all(InventoryEntry, to_create)
            if to_update:
                InventoryEntry.objects.bulk_update(
                    to_update, entries.UPDATED_FIELDS, batch_size=BATCH_SIZE
                )
            count += len(to_create) + len(to_update)
        if gone:
            InventoryEntry.objects.filter(pk__in=gone).delete()
            count += len(gone)
    return count


def _entry_sources(
    model: type[Model],
    columns: tuple[str, ...],
    pks: list[int],
    given: Mapping[str, Mapping[str, Any]],
) -> list[Mapping[str, Any]]:
    """The source rows `pks`, with "pk" and `columns`: from `given` (by ARN)
    where it holds them, read otherwise. Plain values: an entry needs a few
    columns, not model instances."""
    manager = model._default_manager
    if not given:
        return list(manager.filter(pk__in=pks).values("pk", *columns))
    rows: list[Mapping[str, Any]] = []
    unknown = []
    for pk, arn in manager.filter(pk__in=pks).values_list("pk", "arn"):
        row = given.get(arn)
        if row is None or not all(column in row for column in columns):
            unknown.append(pk)
        else:
            rows.append({**{column: row[column] for column in columns}, "pk": pk})
    if unknown:
        rows += manager.filter(pk__in=unknown).values("pk", *columns)
    return rows
