"""Hand work to the broker. Services call these; the tasks they name (by dotted
path) live in `usage.tasks`, which imports the services: no circle."""

from __future__ import annotations

from django_q.tasks import async_task


def advisor_run(run_id: int) -> None:
    async_task(
        "accounts.usage.tasks.advisor_run_task",
        run_id,
        task_name=f"advisor-run-{run_id}",
        group="usage",
    )


def notice_email(notice_id: int) -> None:
    async_task("accounts.usage.tasks.removal_notice_email_task", notice_id, group="usage")
