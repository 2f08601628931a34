"""Browser tests: Playwright (sync API) drives Debian's Chromium against the
live test server, which runs in a thread of the test process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

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
