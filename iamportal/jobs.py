"""Background job bookkeeping: the schedules (declared here, in code), the
worker heartbeat, and the last success/failure of every job for /metrics."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule

from iamportal.models import JobStatus

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

HEARTBEAT = "iamportal.heartbeat"


# What each job is called on the status page (its name stays the key in /metrics).
JOB_LABELS = {
    HEARTBEAT: "Worker heartbeat",
    "accounts.sync_all": "Inventory sync (every account)",
    "accounts.sync_runs_recover": "Recover stalled syncs",
    "accounts.role_refresh": "Role refresh",
    "accounts.organization_sync": "Organisation and guardrails sync",
    "accounts.denied_events_poll": "Read denied calls from CloudTrail",
    "brokering.cli_challenges_prune": "Prune CLI sign-in challenges",
    "brokering.session_revocation_apply": "Revoke sessions on a role",
    "brokering.session_revocations_sweep": "Recover session revocations, lift expired denies",
    "requests_app.apply": "Apply approved changes",
    "requests_app.expire": "Expire grants",
    "requests_app.notify": "Send emails",
    "requests_app.work_sweep": "Recover stalled applies and emails",
    "requests_app.expiry_sweep": "Find expired grants",
    "usage.advisor_schedule": "Access Advisor (queue the accounts whose time has come)",
    "usage.recover": "Recover stalled Access Advisor passes and notice emails",
}
_ACCOUNT_SYNC_PREFIX = "accounts.sync."
_ACCOUNT_ADVISOR_PREFIX = "usage.advisor."


def job_label(name: str) -> str:
    """A person's name for the job recorded under `name`."""
    if name in JOB_LABELS:
        return JOB_LABELS[name]
    if name.startswith(_ACCOUNT_SYNC_PREFIX):
        return f"Inventory sync of account {name.removeprefix(_ACCOUNT_SYNC_PREFIX)}"
    if name.startswith(_ACCOUNT_ADVISOR_PREFIX):
        return f"Access Advisor of account {name.removeprefix(_ACCOUNT_ADVISOR_PREFIX)}"
    return name


def tracked(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record the start, success and failure of a job under `name`."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            JobStatus.objects.update_or_create(
                name=name, defaults={"last_started_at": timezone.now()}
            )
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                JobStatus.objects.filter(name=name).update(
                    last_failure_at=timezone.now(), last_error=f"{type(exc).__name__}: {exc}"[:2000]
                )
                raise
            JobStatus.objects.filter(name=name).update(last_success_at=timezone.now())
            return result

        return run

    return decorate


def job_record_failure(*, name: str, error: str) -> None:
    """For jobs that handle their own errors (one account's sync) but must still show them."""
    JobStatus.objects.update_or_create(
        name=name, defaults={"last_failure_at": timezone.now(), "last_error": error[:2000]}
    )


def job_record_success(*, name: str) -> None:
    JobStatus.objects.update_or_create(name=name, defaults={"last_success_at": timezone.now()})


@tracked(HEARTBEAT)
def heartbeat() -> None:
    """Runs every minute on any worker; /healthz reads its time to tell workers are alive."""


def heartbeat_on_worker_start(**kwargs: Any) -> None:
    """A worker that has just started is alive: /healthz says so at once instead of
    waiting for the scheduler's first round and the first scheduled heartbeat."""
    try:
        heartbeat()
    except DatabaseError as exc:  # the worker runs anyway; the schedule tries again
        log.warning("could not record the worker heartbeat at start-up: %s", exc)


def broker_backlog() -> int | None:
    """Tasks waiting in the broker for a worker (None: the broker did not answer).
    The sweeps re-enqueue long-queued work only when nothing else is waiting,
    since with a backlog a task may simply not have had its turn yet."""
    try:
        return int(get_broker().queue_size() or 0)
    except Exception as exc:  # a Redis broker that is down, for one
        log.warning("could not read the broker's queue size: %s", exc)
        return None


def worker_id() -> str:
    """Who holds a lease: host:pid names the worker for an operator; the random
    part tells two claims by one process apart (a task redelivered to it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def workers_alive() -> bool:
    grace = timedelta(seconds=settings.IAMPORTAL_WORKER_HEARTBEAT_GRACE_SECONDS)
    return JobStatus.objects.filter(
        name=HEARTBEAT, last_success_at__gte=timezone.now() - grace
    ).exists()


def _declared_schedules() -> list[dict[str, Any]]:
    return [
        {
            "name": HEARTBEAT,
            "func": "iamportal.jobs.heartbeat",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "accounts.sync_all",
            "func": "accounts.tasks.accounts_sync_all_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.IAMPORTAL_SYNC_INTERVAL_MINUTES,
        },
        {
            # Does nothing unless IAMPORTAL_ORG_ACCOUNT_ID is set.
            "name": "accounts.organization_sync",
            "func": "accounts.tasks.organization_sync_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.IAMPORTAL_SYNC_INTERVAL_MINUTES,
        },
        {
            # Does nothing unless IAMPORTAL_DENIED_EVENTS_QUEUE_URL is set.
            "name": "accounts.denied_events_poll",
            "func": "accounts.tasks.denied_events_poll_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "accounts.sync_runs_recover",
            "func": "accounts.tasks.sync_runs_recover_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "brokering.cli_challenges_prune",
            "func": "brokering.tasks.cli_challenges_prune_task",
            "schedule_type": Schedule.HOURLY,
        },
        {
            "name": "brokering.session_revocations_sweep",
            "func": "brokering.tasks.session_revocations_sweep_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "requests_app.work_sweep",
            "func": "requests_app.tasks.requests_work_sweep_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        {
            "name": "requests_app.expiry_sweep",
            "func": "requests_app.tasks.policy_requests_expiry_sweep_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 5,
        },
        {
            "name": "usage.advisor_schedule",
            "func": "accounts.usage.tasks.advisor_runs_schedule_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 10,
        },
        {
            "name": "usage.recover",
            "func": "accounts.usage.tasks.usage_recover_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 5,
        },
    ]


def schedules_ensure() -> None:
    """Create or update the schedules declared above; leave ones an operator added."""
    for spec in _declared_schedules():
        schedule, created = Schedule.objects.get_or_create(
            name=spec["name"],
            defaults={**spec, "next_run": timezone.now(), "repeats": -1},
        )
        changed = [k for k, v in spec.items() if getattr(schedule, k) != v]
        if not created and changed:
            for key in changed:
                setattr(schedule, key, spec[key])
            schedule.save(update_fields=changed)


def schedules_ensure_after_migrate(**kwargs: Any) -> None:
    schedules_ensure()


def job_statuses() -> list[JobStatus]:
    """Every job's status, each with `label`: its name as people read it."""
    statuses = list(JobStatus.objects.order_by(F("name").asc()))
    for status in statuses:
        status.label = job_label(status.name)  # type: ignore[attr-defined]
    return statuses
