"""The tabs of a role page: each its own URL behind the role page's one gate, a
whole page for a plain request and only its panel for htmx, the current tab
marked, and each part's Edit link (none for iamportal's own roles)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import IamRole
from tests.factories import PROD, Inventory, client_for

TABS = {
    "role_detail": "Overview",
    "role_inline": "Inline policies",
    "role_managed": "Managed policies",
    "role_trust": "Trust",
    "role_tags": "Tags",
    "role_boundary": "Boundary",
    "role_history": "History",
    "role_usage": "Usage",
}
PARTS = {
    "role_inline": "inline",
    "role_managed": "managed",
    "role_trust": "trust",
    "role_tags": "tags",
    "role_boundary": "boundary",
}


def _url(name: str, role: IamRole) -> str:
    return reverse(name, args=[role.account.account_id, role.name])


def _current(html: str) -> list[str]:
    return re.findall(r'<a href="[^"]*" hx-get="[^"]*" aria-current="page">([^<]+)</a>', html)


@pytest.mark.parametrize("tab", TABS)
def test_each_tab_is_a_whole_page_with_the_tab_bar_and_itself_current(
    tab: str, inv: Inventory, requester: User
) -> None:
    response = client_for(requester).get(_url(tab, inv.api))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<!doctype html>" in html
    assert f"<h1>{inv.api.name}" in html
    assert '<nav class="tabs role-tabs" aria-label="Parts of this role"' in html
    assert _current(html) == [TABS[tab]]
    # Plain links: every tab is reachable without JavaScript.
    for other in TABS:
        assert f'<a href="{_url(other, inv.api)}"' in html


@pytest.mark.parametrize("tab", TABS)
def test_an_htmx_tab_link_gets_the_panel_alone(tab: str, inv: Inventory, requester: User) -> None:
    response = client_for(requester).get(
        _url(tab, inv.api), headers={"HX-Request": "true", "HX-Target": "role-panel"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    # htmx takes the page's title from the top of the answer, beside the panel.
    title, panel = html.strip().split("\n", 1)
    assert re.fullmatch(rf"<title>{inv.api.name}( · [A-Za-z ]+)? · iamportal</title>", title)
    assert panel.lstrip().startswith('<div id="role-panel">')
    assert "<!doctype html>" not in html
    assert "<h1>" not in html
    assert _current(html) == [TABS[tab]]
    assert "HX-Request" in response["Vary"]
    assert html.count("<title>") == 1


def test_a_tab_link_changes_the_title_to_the_tab_s(inv: Inventory, requester: User) -> None:
    client = client_for(requester)
    page = client.get(_url("role_trust", inv.api)).content.decode()
    panel = client.get(
        _url("role_trust", inv.api), headers={"HX-Request": "true", "HX-Target": "role-panel"}
    ).content.decode()

    title = f"<title>{inv.api.name} · Trust policy · iamportal</title>"
    assert page.count("<title>") == 1 and title in page
    assert title in panel


@pytest.mark.parametrize("tab", TABS)
def test_a_history_restore_gets_the_whole_page(tab: str, inv: Inventory, requester: User) -> None:
    response = client_for(requester).get(
        _url(tab, inv.api), headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<!doctype html>" in response.content.decode()


@pytest.mark.parametrize("tab", TABS)
@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_user_sees_every_tab(
    tab: str, who: str, request: pytest.FixtureRequest, inv: Inventory
) -> None:
    # As on the role page itself: the inventory is visible to every signed-in user.
    response = client_for(request.getfixturevalue(who)).get(_url(tab, inv.api))
    assert response.status_code == 200


@pytest.mark.parametrize("tab", TABS)
def test_anonymous_visitors_are_sent_to_sign_in(
    tab: str, inv: Inventory, anonymous: Client
) -> None:
    response = anonymous.get(_url(tab, inv.api))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("tab", TABS)
def test_a_tab_link_to_a_role_deleted_meanwhile_reloads_the_page(
    tab: str, inv: Inventory, requester: User
) -> None:
    url = _url(tab, inv.api)
    inv.api.delete()
    client = client_for(requester)

    clicked = client.get(url, headers={"HX-Request": "true", "HX-Target": "role-panel"})

    # htmx swaps nothing on a 404: the click would do nothing. The page reloads
    # and says the role is gone.
    assert clicked["HX-Refresh"] == "true"
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("tab", TABS)
def test_a_role_that_does_not_exist_is_404_on_every_tab(
    tab: str, inv: Inventory, requester: User
) -> None:
    response = client_for(requester).get(reverse(tab, args=[PROD, "no-such-role"]))
    assert response.status_code == 404


@pytest.mark.parametrize("tab", PARTS)
def test_each_part_tab_links_to_its_editor(tab: str, inv: Inventory, requester: User) -> None:
    html = client_for(requester).get(_url(tab, inv.api)).content.decode()
    edit = reverse(
        "role_part_edit",
        kwargs={"account_id": PROD, "role_name": inv.api.name, "part": PARTS[tab]},
    )
    assert f'href="{edit}' in html


@pytest.mark.parametrize("tab", PARTS)
def test_no_tab_of_a_protected_role_links_to_an_editor(
    tab: str, inv: Inventory, requester: User
) -> None:
    own = IamRole.objects.create(
        account=inv.account,
        arn=f"arn:aws:iam::{PROD}:role/iamportal-spoke",
        name="iamportal-spoke",
        inline_policies={"spoke": {"Version": "2012-10-17", "Statement": []}},
        tags={"owner": "platform"},
        content_hash="x",
        synced_at=timezone.now(),
    )
    html = client_for(requester).get(_url(tab, own)).content.decode()
    assert "managed by iamportal" in html
    assert reverse("role_part_edit", args=[PROD, own.name, PARTS[tab]]) not in html
    assert "/edit/" not in html


def test_the_refresh_poll_gets_the_overview_s_facts_alone(inv: Inventory, requester: User) -> None:
    inv.api.refresh_requested_at = timezone.now() + timedelta(seconds=1)
    inv.api.save(update_fields=["refresh_requested_at"])

    poll = client_for(requester).get(
        _url("role_detail", inv.api), headers={"HX-Request": "true", "HX-Target": "role-detail"}
    )

    html = poll.content.decode()
    assert html.lstrip().startswith('<section id="role-detail"')
    assert 'hx-trigger="every 2s"' in html
    assert "role-tabs" not in html


def test_the_overview_puts_your_access_first(inv: Inventory, requester: User) -> None:
    html = client_for(requester).get(_url("role_detail", inv.api)).content.decode()
    assert (
        html.index('id="role-access"')
        < html.index('id="role-detail"')
        < html.index('id="role-lifecycle"')
    )
    assert reverse("role_console", args=[inv.api.pk]) in html
