"""The status page, /healthz and /metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, IamRole, SyncRun
from iamportal import jobs
from iamportal.models import JobStatus
from tests.factories import client_for

TOKEN = "scrape-me-0123456789"


@pytest.fixture
def payments(db: None) -> AwsAccount:
    return AwsAccount.objects.create(account_id="111111111111", name="payments")


def sync_run(account: AwsAccount, status: str, *, minutes_ago: int = 0, error: str = "") -> SyncRun:
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    run = SyncRun.objects.create(
        account=account, status=status, started_at=finished, finished_at=finished, error=error
    )
    account.latest_sync = run
    account.save(update_fields=["latest_sync"])
    return run


# --- status -------------------------------------------------------------------------


def test_the_status_page_names_jobs_for_people(requester: User) -> None:
    jobs.heartbeat()
    jobs.job_record_success(name="accounts.sync.111111111111")
    jobs.job_record_failure(name="requests_app.expire", error="Throttling")

    html = client_for(requester).get(reverse("status")).content.decode()

    assert "Worker heartbeat" in html
    assert "Inventory sync of account 111111111111" in html
    assert "Expire grants" in html


def test_the_status_page_shows_no_never_started_beside_a_success(requester: User) -> None:
    jobs.job_record_success(name="accounts.sync.111111111111")  # records no start time

    html = client_for(requester).get(reverse("status")).content.decode()

    assert "never" in html  # no failure yet
    row = html.split("Inventory sync of account 111111111111")[1].split("</tr>")[0]
    started, success, _failure = row.split('<td class="nowrap">')[1:4]
    assert "never" not in started
    assert "Not recorded" in started
    assert "never" not in success


def test_it_sends_anonymous_visitors_of_the_status_page_to_login(anonymous: Any) -> None:
    response = anonymous.get(reverse("status"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_shows_workers_down_and_every_job_on_the_status_page(requester: User) -> None:
    jobs.job_record_failure(name="accounts.sync.111111111111", error="AccessDenied: no spoke role")
    jobs.job_record_success(name="accounts.sync_all")

    response = client_for(requester).get(reverse("status"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "reachable" in html
    assert "down" in html
    assert "accounts.sync.111111111111" in html and "accounts.sync_all" in html
    assert "AccessDenied: no spoke role" in html
    assert "Database" in html
    assert response.context["queued_tasks"] == 0


def test_it_shows_workers_alive_after_a_heartbeat(requester: User) -> None:
    jobs.heartbeat()
    response = client_for(requester).get(reverse("status"))
    assert response.context["workers_alive"] is True
    assert "alive" in response.content.decode()


def test_it_names_the_redis_broker_when_configured(requester: User, settings: Any) -> None:
    settings.Q_BROKER = "redis://127.0.0.1:1/0"
    response = client_for(requester).get(reverse("status"))
    assert response.context["broker"] == "Redis"


# --- healthz --------------------------------------------------------------------------


def test_it_reports_workers_down_without_a_heartbeat(anonymous: Any, db: None) -> None:
    response = anonymous.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json() == {"status": "fail", "database": "ok", "workers": "down"}


def test_it_reports_healthy_after_a_heartbeat(anonymous: Any, db: None) -> None:
    jobs.heartbeat()
    response = anonymous.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "workers": "ok"}


def test_it_reports_workers_down_when_the_heartbeat_is_too_old(
    anonymous: Any, db: None, settings: Any
) -> None:
    settings.IAMPORTAL_WORKER_HEARTBEAT_GRACE_SECONDS = 60
    JobStatus.objects.create(
        name=jobs.HEARTBEAT, last_success_at=timezone.now() - timedelta(minutes=5)
    )
    assert anonymous.get(reverse("healthz")).json()["workers"] == "down"


def test_it_reports_the_database_down_when_queries_fail(
    anonymous: Any, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs.heartbeat()

    class Unreachable:
        def cursor(self) -> Any:
            raise OperationalError("connection refused")

    monkeypatch.setattr("iamportal.views.connection", Unreachable())
    response = anonymous.get(reverse("healthz"))

    assert response.status_code == 503
    assert response.json() == {"status": "fail", "database": "fail", "workers": "down"}


# --- metrics --------------------------------------------------------------------------


def test_it_rejects_anonymous_metrics_scrapes(anonymous: Any, db: None) -> None:
    response = anonymous.get(reverse("metrics"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "iamportal_" not in response.content.decode()


def test_it_rejects_a_wrong_metrics_token(anonymous: Any, db: None, settings: Any) -> None:
    settings.IAMPORTAL_METRICS_TOKEN = TOKEN
    for header in ("Bearer wrong-token", TOKEN, f"Basic {TOKEN}", "Bearer "):
        response = anonymous.get(reverse("metrics"), headers={"Authorization": header})
        assert response.status_code == 401, header


def test_it_rejects_every_token_when_none_is_configured(
    anonymous: Any, db: None, settings: Any
) -> None:
    settings.IAMPORTAL_METRICS_TOKEN = ""
    response = anonymous.get(reverse("metrics"), headers={"Authorization": "Bearer "})
    assert response.status_code == 401


def test_it_serves_metrics_to_a_scraper_with_the_token(
    anonymous: Any, payments: AwsAccount, settings: Any
) -> None:
    settings.IAMPORTAL_METRICS_TOKEN = TOKEN
    jobs.heartbeat()
    jobs.job_record_failure(name="accounts.sync.111111111111", error="AccessDenied")
    sync_run(payments, SyncRun.Status.SUCCEEDED, minutes_ago=60)
    failed = sync_run(payments, SyncRun.Status.FAILED, error="AccessDenied")
    IamRole.objects.create(
        account=payments,
        arn="arn:aws:iam::111111111111:role/ci",
        name="ci",
        content_hash="x",
        synced_at=timezone.now(),
    )

    response = anonymous.get(reverse("metrics"), headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = response.content.decode().splitlines()
    assert "# TYPE iamportal_job_last_success_timestamp_seconds gauge" in lines
    assert any(
        line.startswith('iamportal_job_last_success_timestamp_seconds{job="iamportal.heartbeat"} 1')
        for line in lines
    )
    assert (
        'iamportal_job_last_success_timestamp_seconds{job="accounts.sync.111111111111"} 0.0'
        in lines
    )
    assert any(
        line.startswith(
            'iamportal_job_last_failure_timestamp_seconds{job="accounts.sync.111111111111"} 1'
        )
        for line in lines
    )
    labels = '{account_id="111111111111",account_name="payments"}'
    assert failed.finished_at is not None
    failed_at = repr(round(failed.finished_at.timestamp(), 3))
    assert f"iamportal_account_last_sync_failure_timestamp_seconds{labels} {failed_at}" in lines
    assert any(
        line.startswith(f"iamportal_account_last_sync_success_timestamp_seconds{labels} 1")
        for line in lines
    )
    assert 'iamportal_account_sync_failing{account_id="111111111111"} 1.0' in lines
    assert 'iamportal_inventory_items{account_id="111111111111",kind="role"} 1.0' in lines
    assert 'iamportal_inventory_items{account_id="111111111111",kind="resource"} 0.0' in lines
    assert "iamportal_workers_alive 1.0" in lines
    for line in lines:
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert f"# TYPE {name} gauge" in lines


def test_it_reports_zero_for_an_account_that_never_synced(
    requester: User, payments: AwsAccount
) -> None:
    lines = client_for(requester).get(reverse("metrics")).content.decode().splitlines()
    labels = '{account_id="111111111111",account_name="payments"}'
    assert f"iamportal_account_last_sync_success_timestamp_seconds{labels} 0.0" in lines
    assert 'iamportal_account_sync_failing{account_id="111111111111"} 0.0' in lines
    assert "iamportal_workers_alive 0.0" in lines


def test_it_serves_metrics_to_a_signed_in_user(requester: User, db: None) -> None:
    response = client_for(requester).get(reverse("metrics"))
    assert response.status_code == 200
    assert "iamportal_workers_alive" in response.content.decode()


def test_it_escapes_label_values_in_metrics(requester: User, db: None) -> None:
    AwsAccount.objects.create(account_id="333333333333", name='odd "name" \\ here')
    body = client_for(requester).get(reverse("metrics")).content.decode()
    assert 'account_name="odd \\"name\\" \\\\ here"' in body


def test_it_reports_healthy_as_soon_as_a_worker_starts(anonymous: Any, db: None) -> None:
    from multiprocessing import Queue, Value

    from django_q.worker import worker

    tasks: Queue[Any] = Queue()
    tasks.put("STOP")  # the worker starts, then stops before any task or schedule ran
    worker(tasks, Queue(), Value("f", -1))

    response = anonymous.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json()["workers"] == "ok"


def test_a_worker_starts_even_when_its_first_heartbeat_cannot_be_written(
    db: None, monkeypatch: Any
) -> None:
    def database_down() -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(jobs, "heartbeat", database_down)
    jobs.heartbeat_on_worker_start(proc_name="Process-1")  # logs, does not raise
    assert not jobs.workers_alive()


def test_a_revocation_that_gave_up_is_shown_until_its_sessions_expire(
    requester: User, reviewer: User
) -> None:
    from brokering.models import SessionRevocation

    now = timezone.now()
    given_up = SessionRevocation.objects.create(
        role_arn="arn:aws:iam::111111111111:role/ci",
        session_name="alice@example.com",
        issued_before=now,
        remove_after=now + timedelta(hours=12),
        status=SessionRevocation.Status.FAILED,
        last_error="Gave up after 3 attempts: Throttling",
    )
    metric = "iamportal_session_revocations_failed 1.0"

    def status_page(user: User) -> str:
        return client_for(user).get(reverse("status")).content.decode()

    assert metric in client_for(requester).get(reverse("metrics")).content.decode()
    page = status_page(reviewer)
    assert 'id="revocations-given-up"' in page
    assert "status__exact=failed" in page
    # Engineers are told it is in hand, not sent to an admin page they cannot open.
    assert (
        "status__exact=failed" not in client_for(requester).get(reverse("status")).content.decode()
    )

    SessionRevocation.objects.filter(pk=given_up.pk).update(remove_after=now)
    assert "iamportal_session_revocations_failed 0.0" in (
        client_for(requester).get(reverse("metrics")).content.decode()
    )
    assert (
        'id="revocations-given-up"'
        not in client_for(reviewer).get(reverse("status")).content.decode()
    )
