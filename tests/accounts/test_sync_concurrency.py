"""Sync runs claimed by racing workers on PostgreSQL: a run whose worker died is
taken over by exactly one of the tasks redelivered for it. (SQLite runs one
writer at a time, so the race cannot happen there.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts import services
from accounts.models import AwsAccount, IamRole, SyncRun
from iamportal import demo
from tests.factories import race

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"
    ),
]


def test_two_tasks_redelivered_for_a_dead_worker_s_run_take_it_over_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prod: AwsAccount = demo.accounts_onboard(demo.organisation_seed())[0]
    monkeypatch.setattr("accounts.enqueue.async_task", lambda *a, **k: None)
    run = services.account_sync_request(account=prod)
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.RUNNING,
        lease_owner="worker-1:4242:0badcafe",
        lease_expires_at=now - timedelta(seconds=1),
    )

    results = race(*[lambda: services.account_sync_run(run_id=run.pk)] * 3)

    done = [r for r in results if isinstance(r, SyncRun)]
    assert len(done) == 1, results
    assert results.count(None) == 2, results
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.lease_owner == done[0].lease_owner != "worker-1:4242:0badcafe"
    assert IamRole.objects.filter(account=prod).exists()
