"""The global search: the box in every page's header and its /search/ page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import selectors, services
from accounts.models import Database, IamRole, IamUser
from tests.factories import Inventory, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed(inv: Inventory) -> Inventory:
    account = inv.account
    synced = {"content_hash": "x", "synced_at": timezone.now()}
    IamUser.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:user/payments-bot",
        name="payments-bot",
        **synced,
    )
    Database.objects.create(
        account=account,
        arn=f"arn:aws:rds:us-east-1:{account.account_id}:db:payments-db",
        name="payments-db",
        type="rds-instance",
        region="us-east-1",
        **synced,
    )
    services.inventory_entries_refresh(account=account)
    return inv


def search(client: Client, q: str) -> str:
    response = client.get(reverse("inventory_search"), {"q": q})
    assert response.status_code == 200
    return response.content.decode()


def test_it_groups_what_matches_by_kind(indexed: Inventory, requester: User) -> None:
    page = search(client_for(requester), "PAYMENTS")

    roles = page.index('id="group-role"')
    users = page.index('id="group-user"')
    resources = page.index('id="group-resource"')
    databases = page.index('id="group-database"')
    assert roles < users < resources < databases
    assert 'id="group-policy"' not in page  # no managed policy matches
    assert page.index("payments-api") > roles
    assert page.index("payments-bot") > users
    assert page.index("payments-events") > resources
    db = Database.objects.get(name="payments-db")
    assert f'href="{reverse("database_detail", args=[db.pk])}"' in page


def test_a_kind_with_more_matches_than_shown_links_to_the_policies_page(
    indexed: Inventory, requester: User
) -> None:
    account = indexed.account
    now = timezone.now()
    IamRole.objects.bulk_create(
        IamRole(
            account=account,
            arn=f"arn:aws:iam::{account.account_id}:role/svc-{index:02d}",
            name=f"svc-{index:02d}",
            content_hash="x",
            synced_at=now,
        )
        for index in range(selectors.GLOBAL_SEARCH_LIMIT + 1)
    )
    services.inventory_entries_refresh(account=account)

    page = search(client_for(requester), "svc-")

    assert page.count("/roles/svc-") == selectors.GLOBAL_SEARCH_LIMIT
    assert f"svc-{selectors.GLOBAL_SEARCH_LIMIT:02d}" not in page
    assert 'href="/policies/?q=svc-&amp;type=role"' in page


def test_it_says_when_nothing_matches(indexed: Inventory, requester: User) -> None:
    page = search(client_for(requester), "zebra<b>")
    assert "Nothing matches “zebra&lt;b&gt;”." in page


def test_too_long_a_search_is_a_form_error(indexed: Inventory, requester: User) -> None:
    page = search(client_for(requester), "x" * 201)
    assert 'class="errorlist"' in page
    assert "at most 200 characters" in page


def test_every_page_has_the_search_box_in_its_header(requester: User) -> None:
    page = client_for(requester).get(reverse("role_list")).content.decode()
    header = page[page.index('<header class="topbar">') : page.index("</header>")]
    assert f'action="{reverse("inventory_search")}"' in header
    form = header.split('class="header-search"')[1].split("</form>")[0]
    assert '<input type="search" name="q"' in form
    # Neither htmx nor an id: htmx would settle an element with an id by copying
    # its style attribute, which the Content-Security-Policy refuses.
    assert "hx-" not in form
    assert " id=" not in form


def test_anonymous_visitors_see_no_search_box(anonymous: Client) -> None:
    page = anonymous.get(reverse("login")).content.decode()
    assert "header-search" not in page


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_user_may_search(
    indexed: Inventory, who: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    assert "payments-bot" in search(client_for(user), "bot")
