"""Hand work to the broker. Services call these; the tasks they name (by dotted
path, as queued rows and schedules store them) live in `accounts.tasks`, which
imports the services: this module imports neither, so there is no circle."""

from __future__ import annotations

from django_q.tasks import async_task


def account_sync(run_id: int) -> None:
    async_task(
        "accounts.tasks.account_sync_task", run_id, task_name=f"sync-run-{run_id}", group="sync"
    )


def role_refresh(role_id: int) -> None:
    async_task("accounts.tasks.role_refresh_task", role_id, group="refresh")
