"""The editors in a real browser: alice edits a role's trust policy (from a
preset) and a bucket's policy (in the policy editor), rita approves both, a
worker applies them, and AWS has them. A screenshot of every step is kept."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django_q.models import Task

from accounts.models import AwsAccount, CloudResource
from iamportal import aws, demo
from requests_app.models import PolicyRequest
from tests.factories import PASSWORD, settled

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "editors"
ROLE = "payments-api"
WHY = "OPS-9: the payouts lambda assumes this role; the auditors read the exports."


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def signed_in(browser: Browser, live_server: Any, username: str) -> Page:
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


def test_a_trust_policy_and_a_bucket_policy_edited_approved_and_applied(
    browser: Browser,
    live_server: Any,
    organisation: list[AwsAccount],
    task_queue: None,
    worker_run: Callable[[], list[Task]],
) -> None:
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dev = next(account for account in organisation if account.environment == "dev")
    bucket = CloudResource.objects.get(account=dev, name="acme-dev-payments-data")

    # alice adds a statement to the trust policy from a preset.
    alice = signed_in(browser, live_server, "alice")
    alice.goto(f"/accounts/{dev.account_id}/roles/{ROLE}/")
    alice.get_by_role("navigation", name="Parts of this role").get_by_role(
        "link", name="Trust"
    ).click()
    expect(alice).to_have_url(re.compile(r"/trust/$"))
    alice.get_by_role("link", name="Edit the trust policy").click()
    expect(alice.get_by_role("heading", name="Edit the trust policy")).to_be_visible()
    expect(alice.locator(".policy-editor .cm-content")).to_contain_text("ecs-tasks.amazonaws.com")
    alice.get_by_label("Add a statement for").select_option("service")
    alice.get_by_label("Principal").fill("lambda.amazonaws.com")
    alice.get_by_role("button", name="Preview").click()
    expect(alice.locator("pre.diff")).to_contain_text("lambda.amazonaws.com")
    alice.get_by_label("Why is this change needed?").fill(WHY)
    shot(alice, "01-trust-preview")
    alice.get_by_role("button", name="Submit the request").click()
    expect(alice.locator("#request-status")).to_have_text("Pending")
    trust_request = PolicyRequest.objects.get()

    # and writes a bucket policy in the policy editor.
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AuditorsReadExports",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{dev.account_id}:role/ReadOnly"},
                "Action": "s3:GetObject",
                "Resource": f"{bucket.arn}/exports/*",
            }
        ],
    }
    alice.goto(f"/resources/{bucket.pk}/")
    alice.get_by_role("link", name="Edit the resource policy").click()
    editor = alice.locator(".policy-editor .cm-content")
    expect(editor).to_be_visible()
    editor.fill(json.dumps(document))
    alice.get_by_label("Request on behalf of").select_option(label=ROLE)
    alice.get_by_role("button", name="Preview").click()
    expect(alice.locator("pre.diff")).to_contain_text("AuditorsReadExports")
    settled(alice)
    alice.get_by_label("Why is this change needed?").fill(WHY)
    shot(alice, "02-bucket-policy-preview")
    alice.get_by_role("button", name="Submit the request").click()
    expect(alice.locator("#request-status")).to_have_text("Pending")
    bucket_request = PolicyRequest.objects.exclude(pk=trust_request.pk).get()

    # rita approves both; a worker applies them.
    rita = signed_in(browser, live_server, "rita")
    for request in (trust_request, bucket_request):
        rita.goto(f"/requests/{request.pk}/")
        expect(rita.locator("#request-status")).to_have_text("Pending")
        rita.get_by_role("button", name="Approve").click()
        expect(rita.locator("#request-status")).to_have_text("Approved")
    shot(rita, "03-approved")
    worker_run()
    for request in (trust_request, bucket_request):
        request.refresh_from_db()
        assert request.status == PolicyRequest.Status.APPLIED, request.status

    session = demo.account_session(dev.account_id)
    trust = aws.client("iam", session=session).get_role(RoleName=ROLE)["Role"]
    principals = [s["Principal"] for s in trust["AssumeRolePolicyDocument"]["Statement"]]
    assert {"Service": "lambda.amazonaws.com"} in principals
    live = aws.client("s3", session=session).get_bucket_policy(Bucket=bucket.name)["Policy"]
    assert json.loads(live)["Statement"][0]["Sid"] == "AuditorsReadExports"

    alice.goto(f"/requests/{bucket_request.pk}/")
    expect(alice.locator("#request-status")).to_have_text("Applied")
    shot(alice, "04-applied")
