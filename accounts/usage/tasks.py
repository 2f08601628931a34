"""django-q2 entry points for usage. Tasks take ids and call one service."""

from __future__ import annotations

from accounts.usage import rightsizing, services
from iamportal import jobs


@jobs.tracked("usage.advisor_schedule")
def advisor_runs_schedule_task() -> int:
    """Every few minutes: queue the passes whose slot in the interval has come."""
    return services.advisor_runs_schedule()


def advisor_run_task(run_id: int) -> None:
    services.advisor_run(run_id=run_id)


@jobs.tracked("usage.recover")
def usage_recover_task() -> dict[str, int]:
    """The sweep: passes whose worker died or whose task was lost, and notice
    emails not sent."""
    outcome = services.advisor_runs_recover()
    outcome["emails"] = rightsizing.removal_notice_emails_recover()
    return outcome


def removal_notice_email_task(notice_id: int) -> None:
    rightsizing.removal_notice_email_send(notice_id=notice_id)
