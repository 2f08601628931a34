"""A tour of iamportal in a real browser, at a desktop's width and a phone's:
alice (a requester), rita (a reviewer) and admin walk through the main pages,
alice asks for a permission with the wizard and rita approves it. Every step
checks what a person would notice on any page (nothing wider than the screen,
the navigation folded into a menu on a phone, no error in the browser's
console, which is where Content-Security-Policy refusals show) and keeps a
screenshot under test-artifacts/tour/ for people to look at.

A page's own checks go in its step in `walk`, before the `tour.step(...)` that
closes it; the checks every page gets are in `Tour.step`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django_q.models import Task

from accounts.models import AwsAccount
from requests_app.models import PolicyRequest
from tests.factories import PASSWORD, settled

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, ViewportSize

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "tour"
WIDTHS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 390, "height": 844},
}
ROLE = "payments-api"
# The innermost elements that reach past the right edge of the screen, to say
# what makes a page scroll sideways.
STICKING_OUT = """() => {
  const out = (e) => e.getBoundingClientRect().right > window.innerWidth + 0.5;
  return [...document.body.querySelectorAll("*")]
    .filter((e) => out(e) && ![...e.children].some(out))
    .slice(0, 5)
    .map((e) => `<${e.tagName.toLowerCase()} class="${e.className}">`
      + ` ${(e.textContent || "").trim().slice(0, 60)}`);
}"""


@dataclass
class Visitor:
    """One person's signed-in tab, and what its console said since the last step."""

    username: str
    page: Page
    problems: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            url = message.location.get("url", "")
            self.problems.append(f"console error: {message.text} {url}".strip())

    def page_error(self, error: Exception) -> None:
        self.problems.append(f"uncaught exception: {error}")


@dataclass
class Tour:
    browser: Browser
    base_url: str
    worker_run: Callable[[], list[Task]]
    width: str = "desktop"
    steps: int = 0
    visitors: dict[str, Visitor] = field(default_factory=dict)

    def sign_in(self, username: str) -> Visitor:
        """A browser context of its own for `username`, signed in once with a
        password and kept for the whole tour."""
        from playwright.sync_api import expect

        if username in self.visitors:
            return self.visitors[username]
        context = self.browser.new_context(base_url=self.base_url, viewport=WIDTHS[self.width])
        context.set_default_timeout(15_000)
        visitor = Visitor(username, context.new_page())
        visitor.page.on("console", visitor.console)
        visitor.page.on("pageerror", visitor.page_error)
        visitor.page.goto("/login/")
        visitor.page.get_by_label("User name").fill(username)
        visitor.page.get_by_label("Password").fill(PASSWORD)
        visitor.page.get_by_role("button", name="Sign in").click()
        expect(visitor.page).not_to_have_url(re.compile(r"/login/"))
        self.visitors[username] = visitor
        return visitor

    def resize(self, width: str) -> None:
        self.width = width
        self.steps = 0
        for visitor in self.visitors.values():
            visitor.page.set_viewport_size(WIDTHS[width])

    @property
    def phone(self) -> bool:
        return self.width == "phone"

    def nav(self, visitor: Visitor) -> Locator:
        """The main navigation, opened first where it is folded into a menu."""
        page = visitor.page
        menu = page.locator("details.menu")
        if self.phone and menu.get_attribute("open") is None:
            menu.locator("summary").click()
        return page.get_by_role("navigation", name="Main")

    def step(self, visitor: Visitor, name: str) -> None:
        """What every page must get right, at this width; and a screenshot."""
        from playwright.sync_api import expect

        page = visitor.page
        settled(page)
        self.steps += 1
        shot = SCREENSHOTS / self.width / f"{self.steps:02d}-{visitor.username}-{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        where = f"{self.width}, {visitor.username}, {name} ({page.url})"

        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], (
            f"{where}: the page is {widths[0]} px wide on a {widths[1]} px screen; "
            f"sticking out: {page.evaluate(STICKING_OUT)}"
        )
        assert visitor.problems == [], f"{where}: {visitor.problems}"

        nav = page.get_by_role("navigation", name="Main")
        if nav.count():
            menu = page.locator("details.menu > summary")
            if self.phone:
                expect(menu, where).to_be_visible()
                if page.locator("details.menu[open]").count() == 0:
                    expect(nav, where).to_be_hidden()
            else:
                expect(menu, where).to_be_hidden()
                expect(nav.get_by_role("link", name="Dashboard"), where).to_be_visible()


def walk(tour: Tour, dev: AwsAccount) -> None:
    """The tour at one width; `tour.phone` tells which."""
    from playwright.sync_api import expect

    alice = tour.sign_in("alice")
    rita = tour.sign_in("rita")
    admin = tour.sign_in("admin")
    page = alice.page

    # The dashboard, and the menu that opens and closes on a phone.
    page.goto("/dashboard/")
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    if tour.phone:
        menu = page.locator("details.menu > summary")
        menu.click()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Roles", exact=True)).to_be_visible()
        tour.step(alice, "menu-open")
        menu.click()
        expect(nav).to_be_hidden()
    tour.step(alice, "dashboard")

    # Every role, and a search that finds none.
    tour.nav(alice).get_by_role("link", name="Roles", exact=True).click()
    expect(page.get_by_role("heading", name="Roles", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=ROLE).first).to_be_visible()
    tour.step(alice, "roles")
    page.get_by_label("Role name or ARN").fill("no-such-role-anywhere")
    expect(page).to_have_url(re.compile(r"q=no-such-role-anywhere"))
    expect(page.locator("#results").get_by_role("link", name=ROLE)).to_have_count(0)
    expect(page.locator("#results")).to_contain_text("No role matches")
    tour.step(alice, "roles-no-match")

    # A role's page, with its long ARN.
    page.goto(f"/accounts/{dev.account_id}/roles/{ROLE}/")
    expect(page.get_by_role("heading", name=ROLE, exact=True)).to_be_visible()
    expect(page.locator("body")).to_contain_text(f"arn:aws:iam::{dev.account_id}:role/")
    expect(page.get_by_role("button", name="Copy ARN").first).to_be_visible()
    tabs = page.get_by_role("navigation", name="Parts of this role")
    expect(tabs.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    tour.step(alice, "role")

    # Its tabs: each swapped in place, each its own address, Back returns.
    tabs.get_by_role("link", name="Inline policies").click()
    expect(page).to_have_url(re.compile(r"/inline/$"))
    expect(page.get_by_role("heading", name="Inline policies", exact=True)).to_be_visible()
    expect(tabs.get_by_role("link", name="Inline policies")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page).to_have_title(f"{ROLE} · Inline policies · iamportal")
    # The title came along with the panel: none is left in the page's body.
    expect(page.locator("body title")).to_have_count(0)
    tour.step(alice, "role-inline-policies")
    page.go_back()
    expect(page).to_have_url(re.compile(rf"/roles/{ROLE}/$"))
    expect(page).to_have_title(f"{ROLE} · iamportal")
    expect(page.get_by_role("heading", name="Your access")).to_be_visible()

    # My roles.
    tour.nav(alice).get_by_role("link", name="My roles", exact=True).click()
    expect(page.get_by_role("heading", name="My roles", exact=True)).to_be_visible()
    expect(page.locator("li.role-row").first).to_be_visible()
    tour.step(alice, "my-roles")

    # Databases, and a password for payments-db, shown once with its copy button.
    tour.nav(alice).get_by_role("link", name="Databases", exact=True).click()
    expect(page.get_by_role("heading", name="Databases", exact=True)).to_be_visible()
    tour.step(alice, "databases")
    card = page.locator(".card").filter(has=page.get_by_role("link", name="payments-db"))
    card.get_by_role("button", name="Get a password").first.click()
    expect(card.locator("pre.secret").first).to_contain_text("DBUser=payments_app")
    expect(card.get_by_role("button", name="Copy the password")).to_be_visible()
    tour.step(alice, "database-password")

    # The wizard, to a submitted request.
    policy_name = f"tour-{tour.width}"
    topic = f"arn:aws:sns:us-east-1:{dev.account_id}:payments-alerts"
    page.goto(f"/requests/new/?q={ROLE}")
    expect(page.get_by_role("heading", name="Request permissions")).to_be_visible()
    tour.step(alice, "wizard-pick-a-role")
    page.get_by_role("link", name=f"Choose {ROLE} in {dev.name}").click()
    expect(page.get_by_role("heading", name=f"Permissions for {ROLE}")).to_be_visible()
    settled(page)
    page.get_by_label("Service", exact=True).select_option("sns")
    resource = page.get_by_label("Topic ARN")
    expect(resource).to_be_visible()
    settled(page)
    resource.fill(topic)
    settled(page)
    page.get_by_label("Publish messages").check()
    page.get_by_role("button", name="Add this permission").click()
    expect(page.locator("#policy-so-far")).to_contain_text("sns:Publish")
    tour.step(alice, "wizard-permissions")
    page.get_by_role("link", name="Review and submit", exact=True).click()
    expect(page.get_by_role("heading", name=f"Review the request for {ROLE}")).to_be_visible()
    # The policy shows once, as a diff; its JSON waits behind a toggle.
    expect(page.locator("pre.diff")).to_have_count(1)
    expect(page.locator("#policy")).to_be_hidden()
    tour.step(alice, "wizard-review")
    page.get_by_label("Why do you need this access?").fill("Page on-call on failed payouts.")
    page.get_by_label("Policy name").fill(policy_name)
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#request-status")).to_have_text("Pending")
    request = PolicyRequest.objects.get(changes__payload__policy_name=policy_name)
    tour.step(alice, "request-submitted")

    # rita's review queue, and her approval.
    rita.page.goto("/")
    tour.nav(rita).get_by_role("link", name="Review", exact=True).click()
    expect(rita.page.get_by_role("heading", name="Review queue")).to_be_visible()
    row = rita.page.get_by_role("row").filter(
        has=rita.page.get_by_role("link", name=f"#{request.pk}")
    )
    expect(row).to_contain_text("alice")
    tour.step(rita, "review-queue")
    row.get_by_role("link", name=f"#{request.pk}").click()
    expect(rita.page.locator("#request-status")).to_have_text("Pending")
    tour.step(rita, "request-to-review")
    rita.page.get_by_role("button", name="Approve").click()
    expect(rita.page.locator("#request-status")).to_have_text("Approved")
    tour.step(rita, "approved")

    # alice's request page follows the apply by itself, without a reload.
    page.goto(f"/requests/{request.pk}/")
    expect(page.locator("#request-status")).to_have_text("Approved")
    tour.worker_run()
    expect(page.locator("#request-status")).to_have_text("Applied", timeout=15_000)
    tour.step(alice, "request-applied")

    # Her requests, the status page, her profile, an account.
    tour.nav(alice).get_by_role("link", name="Requests", exact=True).click()
    expect(page.get_by_role("heading", name="My requests")).to_be_visible()
    expect(page.get_by_role("link", name=f"#{request.pk}")).to_be_visible()
    tour.step(alice, "my-requests")
    tour.nav(alice).get_by_role("link", name="Status", exact=True).click()
    expect(page.get_by_role("heading", name="Status", exact=True)).to_be_visible()
    tour.step(alice, "status")
    page.get_by_role("link", name="alice", exact=True).click()
    expect(page.get_by_role("heading", name="alice")).to_be_visible()
    tour.step(alice, "profile")
    page.goto(f"/accounts/{dev.account_id}/")
    expect(page.get_by_role("heading", name=dev.name)).to_be_visible()
    tour.step(alice, "account")

    # admin: Django's admin, and the API's documentation.
    admin.page.goto("/")
    tour.nav(admin).get_by_role("link", name="Admin", exact=True).click()
    expect(
        admin.page.get_by_role(
            "heading", name="Accounts, access rules, requests and background jobs"
        )
    ).to_be_visible()
    tour.step(admin, "admin")
    admin.page.goto("/admin/requests_app/policyrequest/")
    expect(admin.page.get_by_role("link", name=str(request.pk), exact=True)).to_be_visible()
    tour.step(admin, "admin-requests")
    admin.page.goto("/api/docs/")
    expect(admin.page.locator(".swagger-ui .info .title")).to_be_visible()
    tour.step(admin, "api-docs")


def test_a_tour_of_iamportal_at_desktop_and_phone_widths(
    browser: Browser,
    live_server: Any,
    organisation: list[AwsAccount],
    task_queue: None,
    worker_run: Callable[[], list[Task]],
) -> None:
    dev = next(account for account in organisation if account.environment == "dev")
    tour = Tour(browser, live_server.url, worker_run)
    for width in WIDTHS:
        (SCREENSHOTS / width).mkdir(parents=True, exist_ok=True)
        tour.resize(width)
        walk(tour, dev)
