"""The Policies page and the header's search in a real browser, under the
Content-Security-Policy: a search from the header, then filters that update the
table as they change, with nothing refused in the console."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from accounts.models import AwsAccount
from tests.factories import PASSWORD, settled

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_searching_from_the_header_and_filtering_the_policies_page(
    browser: Browser, live_server: Any, organisation: list[AwsAccount]
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/login/")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))

    # The header's search, from any page.
    box = page.get_by_role("searchbox", name="Search roles, users, resources, policies")
    box.fill("payments")
    box.press("Enter")
    expect(page.get_by_role("heading", name="Search", exact=True)).to_be_visible()
    expect(page.locator("#group-role")).to_contain_text("payments-api")
    expect(page.locator("#group-resource")).to_contain_text("payments-events")

    # The Policies page, filtered as the filters change.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Policies").click()
    expect(page.get_by_role("heading", name="Policies", exact=True)).to_be_visible()
    settled(page)
    page.get_by_label("Type").select_option("sqs")
    expect(page.locator("#results tbody tr").first).to_contain_text("SQS queue")
    settled(page)
    page.get_by_label("Name or ARN").fill("zebra-unicorn")
    expect(page.locator("#no-match")).to_contain_text("No item matches")
    expect(page).to_have_url(re.compile(r"q=zebra-unicorn"))
    settled(page)
    page.get_by_label("Name or ARN").fill("")
    page.get_by_label("Type").select_option("")
    settled(page)
    page.get_by_label("Has a resource policy").check()
    expect(page).to_have_url(re.compile(r"has_policy=on"))
    expect(page.locator("#results tbody tr").first).to_be_visible()
    expect(page.locator("#results").get_by_role("link", name="CSV")).to_have_attribute(
        "href", re.compile(r"^/policies/export\.csv\?.*has_policy=on")
    )

    settled(page)
    assert problems == []
    context.close()
