"""Business actions on accounts and the inventory: onboarding and sync."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts import fetch
from accounts.models import (
    AwsAccount,
    CloudResource,
    IamRole,
    InventoryItem,
    ManagedPolicy,
    SyncRun,
)
from iamportal import aws, jobs
from iamportal.revisions import revision_bump

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


def _stale_after() -> timedelta:
    # A run still "active" after a worker's timeout and retry window was abandoned.
    return timedelta(seconds=int(settings.Q_CLUSTER["retry"]) * 2)


def account_sync_request(
    *,
    account: AwsAccount,
    trigger: str = SyncRun.Trigger.MANUAL,
    user: User | AnonymousUser | None = None,
) -> SyncRun:
    """Queue a sync of `account`, or return the one already queued or running."""
    from accounts.tasks import enqueue_account_sync

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
            if active.queued_at > timezone.now() - _stale_after():
                return active
            _sync_finish(active, error="Abandoned: the worker running it stopped.")
        run = SyncRun.objects.create(
            account=account,
            trigger=trigger,
            requested_by=user if user is not None and user.is_authenticated else None,
        )
        AwsAccount.objects.filter(pk=account.pk).update(latest_sync=run)
        transaction.on_commit(lambda: enqueue_account_sync(run.pk))
    return run


def _progress(run: SyncRun, percent: int, stage: str) -> None:
    run.progress = percent
    run.stage = stage
    run.save(update_fields=["progress", "stage"])


def _sync_finish(run: SyncRun, *, error: str = "") -> None:
    run.status = SyncRun.Status.FAILED if error else SyncRun.Status.SUCCEEDED
    run.error = error
    run.finished_at = timezone.now()
    if not error:
        run.progress = 100
        run.stage = "Done"
    run.save(update_fields=["status", "error", "finished_at", "progress", "stage"])
    job = f"accounts.sync.{run.account.account_id}"
    if error:
        jobs.job_record_failure(name=job, error=error)
    else:
        jobs.job_record_success(name=job)


def inventory_fetch(
    account: AwsAccount, on_progress: Callable[[int, str], None] | None = None
) -> fetch.Inventory:
    """Every AWS call a sync of `account` needs, and nothing else."""

    def progress(percent: int, stage: str) -> None:
        if on_progress:
            on_progress(percent, stage)

    progress(5, "Assuming the spoke role")
    session = aws.spoke_session(account)
    inventory = fetch.Inventory()
    progress(10, "Reading IAM roles and policies")
    inventory.roles, inventory.policies = fetch.iam_fetch(session, account.account_id)
    progress(50, "Reading S3 buckets")
    fetch.s3_fetch(session, inventory)
    regions = account.sync_regions
    for index, region in enumerate(regions):
        progress(60 + 30 * index // max(len(regions), 1), f"Reading SQS and SNS in {region}")
        fetch.sqs_fetch(session, region, account.account_id, inventory)
        fetch.sns_fetch(session, region, account.account_id, inventory)
    return inventory


def account_sync_run(*, run_id: int) -> SyncRun | None:
    """Perform a queued sync. A run that is no longer queued (a task delivered
    twice) is left alone. AWS errors fail this account's run only."""
    claimed = SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.QUEUED).update(
        status=SyncRun.Status.RUNNING, started_at=timezone.now(), stage="Starting"
    )
    if not claimed:
        return None
    run = SyncRun.objects.select_related("account").get(pk=run_id)
    try:
        inventory = inventory_fetch(run.account, lambda p, s: _progress(run, p, s))
        _progress(run, 95, "Saving")
        counts = inventory_write(account=run.account, inventory=inventory)
    except (ClientError, BotoCoreError, fetch.ForeignRowError) as exc:
        error = fetch.describe_error(exc)
        if isinstance(exc, ClientError) and exc.operation_name == "AssumeRole":
            error = f"Could not assume {run.account.spoke_role_arn}: {error}"
        log.warning("sync of account %s failed: %s", run.account.account_id, error)
        _sync_finish(run, error=error)
        return run
    except Exception as exc:
        _sync_finish(run, error=f"Internal error: {fetch.describe_error(exc)}")
        raise
    run.counts = counts
    run.save(update_fields=["counts"])
    _sync_finish(run)
    return run


def inventory_write(*, account: AwsAccount, inventory: fetch.Inventory) -> dict[str, Any]:
    """Upsert one account's inventory: new rows created, changed rows updated,
    unchanged rows untouched, vanished rows deleted. All or nothing."""
    now = timezone.now()
    with transaction.atomic():
        roles = _upsert(IamRole, account, inventory.roles, now)
        policies = _upsert(ManagedPolicy, account, inventory.policies, now)
        resources = _upsert(CloudResource, account, inventory.resources, now)
        if roles.written:
            # Role tags grant access and rules match role ARNs.
            access_changed()
    totals = [roles, policies, resources]
    return {
        "roles": len(inventory.roles),
        "policies": len(inventory.policies),
        "resources": len(inventory.resources),
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

    @property
    def written(self) -> int:
        return self.created + self.updated + self.deleted


def content_hash(row: dict[str, Any]) -> str:
    encoded = json.dumps(row, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def _upsert(
    model: type[M], account: AwsAccount, rows: list[dict[str, Any]], now: datetime
) -> UpsertResult:
    result = UpsertResult()
    existing: dict[str, tuple[int, str]] = {
        arn: (pk, digest)
        for pk, arn, digest in model._default_manager.filter(account=account).values_list(
            "pk", "arn", "content_hash"
        )
    }
    to_create: list[M] = []
    to_update: list[M] = []
    seen: set[str] = set()
    for row in rows:
        if row["arn"] in seen:
            continue
        seen.add(row["arn"])
        digest = content_hash(row)
        found = existing.pop(row["arn"], None)
        if found is None:
            to_create.append(model(account=account, content_hash=digest, synced_at=now, **row))
        elif found[1] != digest:
            to_update.append(
                model(pk=found[0], account=account, content_hash=digest, synced_at=now, **row)
            )
    moved = 0
    if to_create:
        # Bucket ARNs name no account: a bucket deleted in one account and created
        # in this one keeps its ARN. AWS just said it is here now.
        moved, _ = (
            model._default_manager.filter(arn__in=[row.arn for row in to_create])
            .exclude(account=account)
            .delete()
        )
        model._default_manager.bulk_create(to_create, batch_size=BATCH_SIZE)
    if to_update:
        fields = [*rows[0].keys(), "content_hash", "synced_at"]
        model._default_manager.bulk_update(to_update, fields, batch_size=BATCH_SIZE)
    if existing:
        model._default_manager.filter(pk__in=[pk for pk, _ in existing.values()]).delete()
    result.created, result.updated = len(to_create), len(to_update)
    result.deleted = len(existing) + moved
    return result


def sync_history_prune() -> int:
    """Forget finished sync runs older than the history setting; each account's
    latest run is always kept."""
    cutoff = timezone.now() - timedelta(days=settings.IAMPORTAL_SYNC_HISTORY_DAYS)
    keep = AwsAccount.objects.exclude(latest_sync=None).values("latest_sync")
    deleted, _ = SyncRun.objects.filter(finished_at__lt=cutoff).exclude(pk__in=keep).delete()
    return deleted


# --- one role -------------------------------------------------------------------


REFRESH_MIN_INTERVAL = timedelta(seconds=30)


def role_refresh_request(*, role: IamRole) -> None:
    """Queue a refresh of one role; a refresh asked for in the last 30 seconds and
    still pending is not queued again (anyone signed in can press the button)."""
    from accounts.tasks import enqueue_role_refresh

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
    transaction.on_commit(lambda: enqueue_role_refresh(role.pk))


def role_refresh(*, role: IamRole) -> IamRole | None:
    """Re-read one role from AWS now. Returns None when the role no longer exists."""
    session = aws.spoke_session(role.account)
    iam = aws.client("iam", session=session)
    try:
        detail = iam.get_role(RoleName=role.name)["Role"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            role.delete()
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
    now = timezone.now()
    fields = [*row.keys(), "content_hash", "synced_at"]
    for key, value in row.items():
        setattr(role, key, value)
    role.content_hash = digest
    role.synced_at = now
    role.save(update_fields=fields)
    if grants_changed:
        access_changed()
    return role
