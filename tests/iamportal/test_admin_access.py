"""Who reaches which part of Django admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import AwsAccount
from tests.factories import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("member", "accounts", "roles", "users"),
    [
        ("admin_user", 200, 200, 403),
        ("reviewer", 403, 200, 403),
        ("requester", None, None, None),
        ("outsider", None, None, None),
        ("superuser", 200, 200, 200),
    ],
)
def test_admin_sections_follow_the_permission_role(
    request: pytest.FixtureRequest,
    member: str,
    accounts: int | None,
    roles: int | None,
    users: int | None,
) -> None:
    user: User = request.getfixturevalue(member)
    client = client_for(user)
    pages = {
        "/admin/accounts/awsaccount/": accounts,
        "/admin/accounts/iamrole/": roles,
        "/admin/auth/user/": users,
    }
    for path, expected in pages.items():
        response = client.get(path)
        if expected is None:  # not staff: sent to the admin login
            assert response.status_code == 302, path
            assert "/admin/login/" in response["Location"]
        else:
            assert response.status_code == expected, path


def test_anonymous_users_are_sent_to_the_admin_login(anonymous: Client) -> None:
    response = anonymous.get("/admin/accounts/awsaccount/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_an_admin_may_add_an_account_but_a_reviewer_may_not(
    admin_user: User, reviewer: User
) -> None:
    data = {
        "account_id": "111122223333",
        "name": "payments",
        "aliases": "[]",
        "regions": "[]",
        "approvals_required": "2",
        "enabled": "on",
    }
    assert client_for(reviewer).post("/admin/accounts/awsaccount/add/", data).status_code == 403
    response = client_for(admin_user).post("/admin/accounts/awsaccount/add/", data)
    assert response.status_code == 302
    assert AwsAccount.objects.get(account_id="111122223333").approvals_required == 2


@pytest.mark.parametrize(
    ("member", "listing", "adding"),
    [
        ("admin_user", 200, 403),
        ("reviewer", 403, 403),
        ("requester", None, None),
        ("outsider", None, None),
        ("superuser", 200, 200),
    ],
)
def test_only_a_superuser_links_an_identity_to_an_account_by_hand(
    request: pytest.FixtureRequest, member: str, listing: int | None, adding: int | None
) -> None:
    user: User = request.getfixturevalue(member)
    client = client_for(user)
    pages = {
        "/admin/iamportal/externalidentity/": listing,
        "/admin/iamportal/externalidentity/add/": adding,
    }
    for path, expected in pages.items():
        response = client.get(path)
        if expected is None:  # not staff: sent to the admin login
            assert response.status_code == 302, path
            assert "/admin/login/" in response["Location"]
        else:
            assert response.status_code == expected, path


@pytest.mark.parametrize("member", ["admin_user", "reviewer"])
def test_the_admin_carries_iamportals_name_and_links_back_to_the_site(
    request: pytest.FixtureRequest, member: str
) -> None:
    user: User = request.getfixturevalue(member)

    response = client_for(user).get("/admin/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<title>Accounts, access rules, requests and background jobs | iamportal admin" in html
    assert "iamportal administration" in html
    assert "Django administration" not in html
    assert '<a href="/">View site</a>' in html
