"""Job bookkeeping behind /metrics and /healthz, and the schedules declared in code."""

from __future__ import annotations

from typing import Any

import pytest
from django_q.models import Schedule

from iamportal import jobs
from iamportal.models import JobStatus

pytestmark = pytest.mark.django_db


def test_the_schedules_are_declared_after_migrate() -> None:
    schedules = {s.name: s for s in Schedule.objects.all()}
    assert schedules["accounts.sync_all"].func == "accounts.tasks.accounts_sync_all_task"
    assert schedules["accounts.sync_all"].minutes == 30
    assert schedules[jobs.HEARTBEAT].minutes == 1


def test_a_changed_interval_setting_updates_the_schedule(settings: Any) -> None:
    settings.IAMPORTAL_SYNC_INTERVAL_MINUTES = 10
    jobs.schedules_ensure()
    assert Schedule.objects.get(name="accounts.sync_all").minutes == 10
    assert Schedule.objects.filter(name="accounts.sync_all").count() == 1


def test_a_tracked_job_records_success_and_failure() -> None:
    @jobs.tracked("demo.job")
    def job(fail: bool) -> str:
        if fail:
            raise RuntimeError("throttled")
        return "ok"

    assert job(False) == "ok"
    status = JobStatus.objects.get(name="demo.job")
    assert status.last_success_at is not None
    assert status.last_failure_at is None
    with pytest.raises(RuntimeError):
        job(True)
    status.refresh_from_db()
    assert status.last_failure_at is not None
    assert status.last_error == "RuntimeError: throttled"


def test_workers_are_alive_only_after_a_recent_heartbeat() -> None:
    assert not jobs.workers_alive()
    jobs.heartbeat()
    assert jobs.workers_alive()


def test_every_scheduled_job_has_a_name_for_people() -> None:
    for schedule in Schedule.objects.all():
        assert jobs.job_label(schedule.name) != schedule.name, schedule.name
