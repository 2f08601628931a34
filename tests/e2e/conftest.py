"""Browser tests: Playwright (sync API) drives Debian's Chromium against the
live test server, which runs in a thread of the test process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from multiprocessing import Value
from typing import TYPE_CHECKING, Any

import pytest
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Task
from django_q.monitor import monitor
from django_q.queues import Queue
from django_q.signing import SignedPackage
from django_q.worker import worker

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from accounts.models import AwsAccount

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def orm_beside_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Playwright's sync API runs an asyncio event loop in the test's own
    thread, so Django refuses ORM calls from that thread (the test's setup and
    its checks) with SynchronousOnlyOperation, although none of them runs
    inside the loop: the browser is driven synchronously, and the server under
    test answers from its own thread. Only these tests lift the guard."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Chromium from the system packages; a browser is never downloaded."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api: Any = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    # What a page shows may take a while on a busy machine (CI runs the browser
    # beside the other tests): the assertions wait as long as the actions do.
    sync_api.expect.set_options(timeout=15_000)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def organisation(transactional_db: None) -> list[AwsAccount]:
    """The demo organisation in the embedded AWS, onboarded and synced once, with
    the demo users (password: tests.conftest.PASSWORD) and the wizard's templates."""
    from django.test import TestCase

    from accounts.models import SyncRun
    from accounts.services import account_sync_request
    from iamportal import demo
    from tests.factories import PASSWORD

    accounts = demo.accounts_onboard(demo.organisation_seed())
    demo.users_create(PASSWORD)
    demo.policy_templates_seed()
    for account in accounts:
        with TestCase.captureOnCommitCallbacks(execute=True):
            run = account_sync_request(account=account)
        run.refresh_from_db()
        assert run.status == SyncRun.Status.SUCCEEDED, run.error
    return accounts


@pytest.fixture
def task_queue(organisation: list[AwsAccount], monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, tasks go to the broker as in production instead of running
    in the request that enqueued them (after the organisation's sync, which
    still runs inline); `worker_run` runs them."""
    monkeypatch.setattr(Conf, "SYNC", False)


def _worker_run() -> list[Task]:
    """Do what a worker cluster does with the queued tasks: take each off the
    broker, run it in django-q's worker loop, and let its monitor save the
    result and acknowledge the task. Returns the saved results.

    It runs in this process, not in a `qcluster` of its own, because the
    embedded AWS the test seeded lives in this process's memory, out of a
    worker process's reach."""
    broker = get_broker()
    tasks: Queue = Queue()
    results: Queue = Queue()
    ids = []
    while queued := broker.dequeue():
        for ack_id, payload in queued:
            task = SignedPackage.loads(payload)
            task["ack_id"] = ack_id
            tasks.put(task)
            ids.append(task["id"])
    tasks.put("STOP")
    worker(tasks, results, Value("f", -1))
    results.put("STOP")
    monitor(results, broker)
    for queue in (tasks, results):
        queue.close()
        queue.join_thread()
    return list(Task.objects.filter(id__in=ids))


@pytest.fixture
def worker_run() -> Callable[[], list[Task]]:
    """Runs the queued tasks as a worker cluster would (see `_worker_run`)."""
    return _worker_run
