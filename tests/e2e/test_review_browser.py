"""Review and apply in a real browser: alice asks for a permission on a role in
the dev account, rita finds the request in the review queue and approves it, a
worker takes the apply off the task queue and runs it, and the role's page
shows the new inline policy. A screenshot of every step is kept for people to
look at."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django_q.brokers import get_broker
from django_q.models import Task

from accounts.models import AwsAccount
from requests_app.models import Change, PolicyRequest
from tests.factories import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
from tests.factories import settled

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "review"
ROLE = "payments-api"
POLICY_NAME = "publish-payments-alerts"
APPLY_TASK = "requests_app.tasks.policy_request_apply_task"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def signed_in(browser: Browser, live_server: Any, username: str) -> Page:
    """A browser of its own for `username`, signed in with a password."""
    from playwright.sync_api import expect

    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))
    return page


def test_a_reviewer_approves_and_a_worker_applies_the_change(
    browser: Browser,
    live_server: Any,
    organisation: list[AwsAccount],
    task_queue: None,
    worker_run: Callable[[], list[Task]],
) -> None:
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dev = next(account for account in organisation if account.environment == "dev")
    topic = f"arn:aws:sns:us-east-1:{dev.account_id}:payments-alerts"

    # alice asks for publishing to the alerts topic, for the dev account's payments-api.
    alice = signed_in(browser, live_server, "alice")
    alice.goto(f"/requests/new/?q={ROLE}")
    alice.get_by_role("link", name=f"Choose {ROLE} in {dev.name}").click()
    expect(alice.get_by_role("heading", name=f"Permissions for {ROLE}")).to_be_visible()
    settled(alice)
    alice.get_by_label("Service", exact=True).select_option("sns")
    resource = alice.get_by_label("Topic ARN")
    expect(resource).to_be_visible()
    settled(alice)
    resource.fill(topic)
    settled(alice)
    alice.get_by_label("Publish messages").check()
    alice.get_by_role("button", name="Add this permission").click()
    expect(alice.locator("#policy-so-far")).to_contain_text("sns:Publish")
    settled(alice)
    alice.get_by_role("link", name="Review and submit", exact=True).click()
    expect(alice.get_by_role("heading", name=f"Review the request for {ROLE}")).to_be_visible()
    settled(alice)
    alice.get_by_label("Why do you need this access?").fill("Page on-call on failed payouts.")
    alice.get_by_label("Policy name").fill(POLICY_NAME)
    alice.get_by_role("button", name="Submit").click()
    expect(alice.locator("#request-status")).to_have_text("Pending")
    shot(alice, "01-alice-submitted")
    request = PolicyRequest.objects.get()
    assert request.account == dev

    # rita finds it in her review queue.
    rita = signed_in(browser, live_server, "rita")
    nav = rita.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Review", exact=True).click()
    expect(rita).to_have_url(re.compile(r"/requests/review/$"))
    expect(rita.get_by_role("heading", name="Review queue")).to_be_visible()
    row = rita.get_by_role("row").filter(has=rita.get_by_role("link", name=f"#{request.pk}"))
    expect(row).to_contain_text("alice")
    expect(row).to_contain_text(ROLE)
    expect(row).to_contain_text(dev.name)
    shot(rita, "02-review-queue")
    row.get_by_role("link", name=f"#{request.pk}").click()

    # She reads it and approves it; the apply waits in the queue for a worker.
    expect(rita.locator("#request-status")).to_have_text("Pending")
    expect(rita.get_by_role("button", name="Reject")).to_be_visible()
    expect(rita.get_by_label("Add a comment")).to_be_visible()
    expect(rita.locator("body")).to_contain_text("sns:Publish")
    shot(rita, "03-request-to-review")
    rita.get_by_role("button", name="Approve").click()
    expect(rita.locator("#request-status")).to_have_text("Approved")
    expect(rita.get_by_role("button", name="Approve")).to_have_count(0)
    shot(rita, "04-approved")
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPROVED
    assert get_broker().queue_size() >= 1

    # The worker applies it in AWS.
    done = worker_run()
    applies = [task for task in done if task.func == APPLY_TASK]
    assert [(task.args, task.success) for task in applies] == [((request.pk,), True)], [
        task.result for task in applies
    ]
    assert Change.objects.get(request=request).status == Change.Status.APPLIED

    rita.reload()
    expect(rita.locator("#request-status")).to_have_text("Applied")
    shot(rita, "05-applied")

    # alice sees her request applied, and the policy on the role's Inline policies tab.
    alice.reload()
    expect(alice.locator("#request-status")).to_have_text("Applied")
    shot(alice, "06-alice-sees-it-applied")
    alice.get_by_role("link", name=ROLE, exact=True).click()
    expect(alice.get_by_role("heading", name=ROLE, exact=True)).to_be_visible()
    expect(alice.locator("body")).to_contain_text(request.role_arn)
    alice.get_by_role("navigation", name="Parts of this role").get_by_role(
        "link", name="Inline policies"
    ).click()
    policy = alice.get_by_role("heading", name=POLICY_NAME, exact=True)
    expect(policy).to_be_visible()
    document = policy.locator("xpath=following-sibling::pre[1]")
    expect(document).to_contain_text("sns:Publish")
    expect(document).to_contain_text(topic)
    shot(alice, "07-role-page")
