"""The user, group and database pages, and the guardrails on account and role pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from accounts.models import (
    AwsAccount,
    Database,
    IamGroup,
    IamRole,
    IamUser,
    ManagedPolicy,
    OrgAccount,
    OrgNode,
    ServiceControlPolicy,
)
from tests.factories import client_for

DENY_LEAVING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}],
}


def _synced(**fields: Any) -> dict[str, Any]:
    return {"content_hash": "x", "synced_at": timezone.now(), **fields}


@pytest.fixture
def payments(db: None) -> AwsAccount:
    return AwsAccount.objects.create(account_id="111111111111", name="payments", environment="prod")


@pytest.fixture
def analytics(db: None) -> AwsAccount:
    return AwsAccount.objects.create(account_id="222222222222", name="analytics")


def make_user(account: AwsAccount, name: str, **extra: Any) -> IamUser:
    return IamUser.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:user/{name}",
        name=name,
        **_synced(**extra),
    )


def make_group(account: AwsAccount, name: str, **extra: Any) -> IamGroup:
    return IamGroup.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:group/{name}",
        name=name,
        **_synced(**extra),
    )


def make_database(account: AwsAccount, name: str, **extra: Any) -> Database:
    return Database.objects.create(
        account=account,
        arn=f"arn:aws:rds:us-east-1:{account.account_id}:db:{name}",
        name=name,
        type="rds-instance",
        region="us-east-1",
        **_synced(**extra),
    )


@pytest.fixture
def inventory(payments: AwsAccount, analytics: AwsAccount) -> dict[str, Any]:
    policy = ManagedPolicy.objects.create(
        account=payments,
        arn="arn:aws:iam::111111111111:policy/reports-read",
        name="reports-read",
        **_synced(),
    )
    created = (timezone.now() - timedelta(days=400)).isoformat()
    bot = make_user(
        payments,
        "deploy-bot",
        groups=["deployers"],
        inline_policies={"deploy": DENY_LEAVING},
        managed_policies=[{"arn": policy.arn, "name": policy.name}],
        access_keys=[
            {
                "id": "AKIAEXAMPLEKEY000001",
                "status": "Active",
                "created": created,
                "last_used_on": "2026-11-30",
                "last_used_service": "s3",
                "last_used_region": "us-east-1",
            }
        ],
    )
    other = make_user(analytics, "deploy-bot-analytics")
    group = make_group(payments, "deployers", members=["deploy-bot"])
    database = make_database(
        payments,
        "payments-db",
        engine="postgres",
        endpoint="payments-db.abc.us-east-1.rds.amazonaws.com",
        port=5432,
        iam_auth=True,
        resource_id="db-ABCDEF",
    )
    role = IamRole.objects.create(
        account=payments,
        arn="arn:aws:iam::111111111111:role/payments-api",
        name="payments-api",
        **_synced(),
    )
    return {"bot": bot, "other": other, "group": group, "database": database, "role": role}


@pytest.fixture
def organisation(payments: AwsAccount) -> None:
    _synced_org = {"content_hash": "x", "synced_at": timezone.now()}
    OrgNode.objects.create(
        node_id="r-root", kind="root", arn="a", name="Root", path="Root", **_synced_org
    )
    OrgNode.objects.create(
        node_id="ou-work",
        kind="ou",
        arn="b",
        name="Workloads",
        parent_id="r-root",
        path="Root / Workloads",
        **_synced_org,
    )
    OrgAccount.objects.create(
        account_id=payments.account_id, name="payments", parent_id="ou-work", **_synced_org
    )
    ServiceControlPolicy.objects.create(
        policy_id="p-deny",
        arn="c",
        name="deny-leaving",
        description="Accounts stay.",
        document=DENY_LEAVING,
        targets=["ou-work"],
        **_synced_org,
    )


def _urls(inventory: dict[str, Any]) -> dict[str, str]:
    bot, group, database = inventory["bot"], inventory["group"], inventory["database"]
    return {
        "users": reverse("iam_user_list"),
        "user": reverse("iam_user_detail", args=[bot.account.account_id, bot.name]),
        "group": reverse("group_detail", args=[group.account.account_id, group.name]),
        "database": reverse("database_detail", args=[database.pk]),
    }


def test_it_sends_anonymous_visitors_to_the_login_page(
    anonymous: Any, inventory: dict[str, Any]
) -> None:
    for page, url in _urls(inventory).items():
        response = anonymous.get(url)
        assert response.status_code == 302, page
        assert response["Location"].startswith(reverse("login") + "?next="), page


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_it_shows_the_pages_to_whoever_may_see_roles(
    who: str, request: pytest.FixtureRequest, inventory: dict[str, Any]
) -> None:
    """The same rule as the role pages: every signed-in user sees the inventory."""
    client = client_for(request.getfixturevalue(who))
    for page, url in _urls(inventory).items():
        assert client.get(url).status_code == 200, page
    role = inventory["role"]
    assert client.get(reverse("role_detail", args=["111111111111", role.name])).status_code == 200


def test_it_answers_404_for_unknown_users_groups_and_databases(
    requester: User, inventory: dict[str, Any]
) -> None:
    client = client_for(requester)
    for url in (
        reverse("iam_user_detail", args=["111111111111", "nobody"]),
        # A user of another account is not found under this one.
        reverse("iam_user_detail", args=["111111111111", "deploy-bot-analytics"]),
        reverse("group_detail", args=["222222222222", "deployers"]),
        reverse("database_detail", args=[999999]),
    ):
        assert client.get(url).status_code == 404, url


def test_it_searches_users_by_partial_name_per_account(
    requester: User, inventory: dict[str, Any]
) -> None:
    client = client_for(requester)
    page = client.get(reverse("iam_user_list"), {"q": "DEPLOY"}).content.decode()
    assert "deploy-bot" in page and "deploy-bot-analytics" in page
    page = client.get(
        reverse("iam_user_list"), {"q": "deploy", "account": "222222222222"}
    ).content.decode()
    assert "deploy-bot-analytics" in page
    assert "/accounts/111111111111/users/deploy-bot/" not in page


def test_it_lists_groups_when_asked(requester: User, inventory: dict[str, Any]) -> None:
    page = client_for(requester).get(reverse("iam_user_list"), {"kind": "groups"}).content.decode()
    assert "/accounts/111111111111/groups/deployers/" in page
    assert "/users/deploy-bot/" not in page


def test_it_answers_htmx_searches_with_the_results_only(
    requester: User, inventory: dict[str, Any]
) -> None:
    response = client_for(requester).get(
        reverse("iam_user_list"), {"q": "deploy"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="results"')
    assert "deploy-bot" in body


def test_a_user_or_group_search_without_a_match_says_so(
    requester: User, inventory: dict[str, Any]
) -> None:
    client = client_for(requester)
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get(reverse("iam_user_list"), {"q": "nobody"}, headers=headers)
        body = html.content.decode()
        assert "No user matches “nobody”." in body
        assert f'<a href="{reverse("iam_user_list")}">Show all users</a>' in body
    body = client.get(reverse("iam_user_list"), {"q": "nobody", "kind": "groups"}).content.decode()
    assert "No group matches “nobody”." in body
    assert f'<a href="{reverse("iam_user_list")}?kind=groups">Show all groups</a>' in body


def test_it_rejects_bad_search_input_with_a_message(
    requester: User, inventory: dict[str, Any]
) -> None:
    client = client_for(requester)
    for params in ({"q": "x" * 201}, {"account": "000000000000"}, {"kind": "roles"}):
        response = client.get(reverse("iam_user_list"), params)
        assert response.status_code == 200
        assert 'class="errorlist"' in response.content.decode()


def test_it_shows_a_user_with_key_age_last_use_groups_and_policies(
    requester: User, inventory: dict[str, Any]
) -> None:
    bot = inventory["bot"]
    page = client_for(requester).get(_urls(inventory)["user"]).content.decode()
    assert "AKIAEXAMPLEKEY000001" in page
    assert "400 days" in page
    assert "2026-11-30" in page and "s3" in page
    assert "/accounts/111111111111/groups/deployers/" in page
    assert "organizations:LeaveOrganization" in page
    assert reverse("policy_detail", args=[ManagedPolicy.objects.get().pk]) in page
    assert bot.arn in page


def test_it_shows_a_group_with_its_members(requester: User, inventory: dict[str, Any]) -> None:
    page = client_for(requester).get(_urls(inventory)["group"]).content.decode()
    assert "/accounts/111111111111/users/deploy-bot/" in page


def test_it_shows_a_database_with_endpoint_and_iam_authentication(
    requester: User, inventory: dict[str, Any]
) -> None:
    page = client_for(requester).get(_urls(inventory)["database"]).content.decode()
    assert "payments-db.abc.us-east-1.rds.amazonaws.com:5432" in page
    assert "enabled" in page
    assert "arn:aws:rds-db:us-east-1:111111111111:dbuser:db-ABCDEF/" in page


def test_the_account_page_shows_databases_users_and_guardrails(
    requester: User, inventory: dict[str, Any], organisation: None
) -> None:
    page = client_for(requester).get(reverse("account_detail", args=["111111111111"]))
    body = page.content.decode()
    assert reverse("database_detail", args=[inventory["database"].pk]) in body
    assert "Root / Workloads" in body
    assert "deny-leaving" in body
    assert "organizations:LeaveOrganization" in body
    assert f"{reverse('iam_user_list')}?account=111111111111" in body


def test_the_role_page_lists_the_guardrails_of_its_account(
    requester: User, inventory: dict[str, Any], organisation: None
) -> None:
    role = inventory["role"]
    body = client_for(requester).get(reverse("role_detail", args=["111111111111", role.name]))
    text = body.content.decode()
    assert 'id="guardrails"' in text
    assert "deny-leaving" in text
    assert "Root / Workloads" in text


def test_the_pages_say_when_the_organisation_is_not_known(
    requester: User, inventory: dict[str, Any]
) -> None:
    role = inventory["role"]
    text = client_for(requester).get(reverse("role_detail", args=["111111111111", role.name]))
    assert "the organisation is not read" in text.content.decode()
