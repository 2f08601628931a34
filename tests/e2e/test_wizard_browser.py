"""The wizard in a real browser: alice signs in, picks a role, adds a
permission, reviews it, does a dry run and submits; the request is pending.
A screenshot of every step is kept for people to look at."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from requests_app.models import Change, PolicyRequest
from tests.factories import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
from tests.factories import settled

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "wizard"
BUCKET = "acme-prod-payments-data"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_alice_requests_read_access_to_a_bucket(
    browser: Browser, live_server: Any, organisation: list[Any]
) -> None:
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)

    page.goto("/login/?next=/requests/new/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    shot(page, "01-sign-in")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Request permissions")).to_be_visible()

    # Step 1: the typeahead finds the role; alice may use payments-api.
    page.fill("#id_q", "payments-api")
    expect(page).to_have_url(re.compile(r"q=payments-api"))
    settled(page)
    prod_row = page.locator("li.role-row", has_text="acme-prod").filter(has_text="payments-api")
    expect(prod_row).to_have_count(1)
    expect(prod_row).to_contain_text("you may use it")
    shot(page, "02-pick-the-role")
    prod_row.get_by_role("link", name="Choose").click()
    expect(page.get_by_role("heading", name="Permissions for payments-api")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/requests/new/\d+/permissions/$"))
    settled(page)

    # Step 2: a service, a bucket from the inventory, plain-language access.
    page.select_option("#id_service", "s3")
    resource = page.locator("#id_resource")
    expect(resource).to_be_visible()
    settled(page)
    resource.fill("payments-data")
    expect(page.locator("#resource-options option")).to_have_count(3)  # one per account
    settled(page)
    resource.fill(f"arn:aws:s3:::{BUCKET}")
    settled(page)
    page.get_by_label("List objects").check()
    page.get_by_label("Read objects").check()
    page.get_by_role("button", name="Add this permission").click()
    added = page.locator(".permission-list li")
    expect(added).to_have_count(1)
    expect(added).to_contain_text(f"Read objects on arn:aws:s3:::{BUCKET}")
    expect(page.locator("#policy-so-far")).to_contain_text("s3:GetObject")
    settled(page)
    shot(page, "03-permissions")

    # The JSON editor lints as one types.
    # The JSON editor: line numbers, completion of actions, lint marked in place,
    # and the form's textarea kept in step (it is what is posted).
    page.get_by_role("link", name="Write the policy as JSON instead").click()
    source = page.locator("#id_document")
    expect(source).to_have_value(re.compile("s3:GetObject"))
    expect(source).to_be_hidden()
    editor = page.locator(".policy-editor .cm-content")
    expect(editor).to_be_visible()
    expect(page.locator(".policy-editor .cm-lineNumbers")).to_contain_text("1")
    settled(page)
    editor.fill(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": '
        '"s3:GetObject", "Resource": "*"}]}'
    )
    expect(source).to_have_value(re.compile(r'"Resource": "\*"'))
    expect(page.locator("#findings")).to_contain_text('Resource "*" where the actions can be')
    expect(page.locator(".policy-editor .cm-lintRange-warning").first).to_be_visible()
    settled(page)
    # Typing inside Action offers the actions the policy data knows.
    typed = '{"Statement": [{"Action": ["s3:GetObjec'
    editor.fill(typed + '"]}]}')
    page.keyboard.press("Home")
    for _ in typed:
        page.keyboard.press("ArrowRight")
    page.keyboard.type("t")
    expect(page.locator(".cm-tooltip-autocomplete")).to_contain_text("s3:GetObjectTagging")
    page.keyboard.press("Escape")
    shot(page, "04-json-editor")
    page.get_by_role("button", name="Back to the builder").click()
    expect(page.locator("#policy-so-far")).to_contain_text(f"arn:aws:s3:::{BUCKET}/*")
    settled(page)

    # Step 3: review, justify, dry run, submit.
    page.get_by_role("link", name="Review and submit", exact=True).click()
    expect(page.get_by_role("heading", name="Review the request for payments-api")).to_be_visible()
    expect(page.locator("pre.diff .add").first).to_be_visible()
    settled(page)
    page.fill("#id_justification", "Monthly settlement reports (PAY-1234).")
    page.get_by_label("For 7 days").check()
    shot(page, "05-review")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("#preview")).to_contain_text("this is exactly what would be requested")
    settled(page)
    assert PolicyRequest.objects.count() == 0
    shot(page, "06-dry-run")
    page.get_by_role("button", name="Submit").click()

    expect(page.locator("#request-status")).to_have_text("Pending")
    assert re.search(r"/requests/\d+/$", page.url)
    expect(page.locator("body")).to_contain_text("Monthly settlement reports (PAY-1234).")
    shot(page, "07-request")
    created = PolicyRequest.objects.get()
    assert created.status == PolicyRequest.Status.PENDING
    assert created.requester.username == "alice"
    assert created.expires_at is not None
    change = Change.objects.get(request=created)
    assert change.payload["document"]["Statement"][1]["Resource"] == [f"arn:aws:s3:::{BUCKET}/*"]
    page.close()
