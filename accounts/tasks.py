"""django-q2 entry points for accounts. Tasks take ids and call one service;
services queue them through `accounts.enqueue`, by these dotted paths."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from accounts import denied, services
from accounts.fetch import describe_error
from accounts.models import AwsAccount, IamRole, SyncRun
from iamportal import jobs

log = logging.getLogger(__name__)


@jobs.tracked("accounts.sync_all")
def accounts_sync_all_task() -> int:
    """The schedule: one sync task per enabled account, so accounts run in parallel."""
    services.sync_history_prune()
    services.role_search_names_prune()
    queued = 0
    for account in AwsAccount.objects.filter(enabled=True):
        services.account_sync_request(account=account, trigger=SyncRun.Trigger.SCHEDULE)
        queued += 1
    return queued


def account_sync_task(run_id: int) -> None:
    services.account_sync_run(run_id=run_id)


@jobs.tracked("accounts.sync_runs_recover")
def sync_runs_recover_task() -> dict[str, int]:
    """The sweep: re-enqueue syncs whose worker died or whose task was lost."""
    return services.sync_runs_recover()


@jobs.tracked("accounts.role_refresh")
def role_refresh_task(role_id: int) -> None:
    role = IamRole.objects.select_related("account").filter(pk=role_id).first()
    if role is None:
        return
    try:
        services.role_refresh(role=role)
    except (ClientError, BotoCoreError) as exc:
        IamRole.objects.filter(pk=role_id).update(refresh_requested_at=None)
        log.warning("refresh of %s failed: %s", role.arn, describe_error(exc))
        raise


@jobs.tracked("accounts.organization_sync")
def organization_sync_task() -> dict[str, int] | None:
    """The schedule: the OU tree and service control policies, when configured."""
    return services.organization_sync()


@jobs.tracked("accounts.denied_events_poll")
def denied_events_poll_task() -> dict[str, int]:
    """The schedule: read the denied-calls queue, when one is configured."""
    return denied.denied_events_poll()
