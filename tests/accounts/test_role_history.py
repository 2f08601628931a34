"""A role's history: versions of its parts recorded by syncs and refreshes, and
the History page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import AwsAccount, IamRole, RoleVersion
from iamportal import aws
from tests.factories import (
    OTHER_DOCUMENT,
    READ_INVOICES,
    account_create,
    admin_iam,
    client_for,
    sync,
)

pytestmark = pytest.mark.django_db

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.fixture
def account() -> AwsAccount:
    aws.client("organizations").create_organization(FeatureSet="ALL")
    return account_create("acme-prod", environment="prod")


@pytest.fixture
def iam(account: AwsAccount) -> Any:
    iam = admin_iam(account.account_id)
    iam.create_role(
        RoleName="payments-api",
        AssumeRolePolicyDocument=json.dumps(TRUST),
        Tags=[{"Key": "team", "Value": "payments"}],
    )
    iam.put_role_policy(
        RoleName="payments-api",
        PolicyName="invoices-read",
        PolicyDocument=json.dumps(READ_INVOICES),
    )
    return iam


def _role(account: AwsAccount) -> IamRole:
    return IamRole.objects.get(account=account, name="payments-api")


def _versions(role: IamRole) -> list[tuple[str, str, str]]:
    return [(v.part, v.key, v.source) for v in role.versions.order_by("pk")]


def test_the_first_sync_records_a_baseline_of_every_part(account: AwsAccount, iam: Any) -> None:
    sync(account)
    role = _role(account)
    assert _versions(role) == [
        ("inline", "invoices-read", "first_seen"),
        ("managed", "", "first_seen"),
        ("trust", "", "first_seen"),
        ("boundary", "", "first_seen"),
        ("tags", "", "first_seen"),
    ]
    inline = role.versions.get(part="inline")
    assert inline.document == READ_INVOICES
    assert role.versions.get(part="tags").document == {"team": "payments"}
    assert role.versions.get(part="boundary").document is None


def test_each_version_of_a_first_sync_belongs_to_the_role_of_its_arn(
    account: AwsAccount, iam: Any
) -> None:
    # New roles are inserted without getting their keys back: the history finds them.
    sync(account)
    role = _role(account)
    assert len(_versions(role)) == 5
    versions = RoleVersion.objects.select_related("role")
    assert all(v.role is not None and v.role.arn == v.role_arn for v in versions)


def test_a_sync_that_sees_no_change_writes_no_version(account: AwsAccount, iam: Any) -> None:
    sync(account)
    first = RoleVersion.objects.count()
    assert first > 0
    sync(account)
    sync(account)
    assert RoleVersion.objects.count() == first


def test_a_change_made_in_aws_is_recorded_as_outside_iamportal(
    account: AwsAccount, iam: Any
) -> None:
    sync(account)
    iam.put_role_policy(
        RoleName="payments-api",
        PolicyName="invoices-read",
        PolicyDocument=json.dumps(OTHER_DOCUMENT),
    )
    iam.tag_role(RoleName="payments-api", Tags=[{"Key": "owner", "Value": "rita"}])
    before = RoleVersion.objects.count()
    sync(account)
    role = _role(account)
    new = list(role.versions.filter(pk__gt=0).order_by("-pk")[:2])
    assert RoleVersion.objects.count() == before + 2
    assert {(v.part, v.source) for v in new} == {("inline", "outside"), ("tags", "outside")}
    assert role.versions.filter(part="inline").order_by("-pk").first().document == OTHER_DOCUMENT  # type: ignore[union-attr]
    assert role.versions.filter(part="tags").order_by("-pk").first().document == {  # type: ignore[union-attr]
        "owner": "rita",
        "team": "payments",
    }


def test_a_deleted_inline_policy_is_a_version_without_a_document(
    account: AwsAccount, iam: Any
) -> None:
    sync(account)
    iam.delete_role_policy(RoleName="payments-api", PolicyName="invoices-read")
    sync(account)
    latest = _role(account).versions.filter(part="inline").order_by("-pk")
    assert [v.document for v in latest] == [None, READ_INVOICES]
    assert latest[0].source == "outside"
    sync(account)
    assert _role(account).versions.filter(part="inline").count() == 2


def test_a_refresh_records_what_changed_since_the_sync(account: AwsAccount, iam: Any) -> None:
    sync(account)
    arn = iam.create_policy(PolicyName="read-all", PolicyDocument=json.dumps(OTHER_DOCUMENT))[
        "Policy"
    ]["Arn"]
    iam.attach_role_policy(RoleName="payments-api", PolicyArn=arn)
    services.role_refresh(role=_role(account), attribution={("managed", ""): 42})
    managed = _role(account).versions.filter(part="managed").order_by("-pk").first()
    assert managed is not None
    assert managed.document == [arn]
    assert managed.source == "request"
    assert managed.source_text == "iamportal request #42"
    count = RoleVersion.objects.count()
    sync(account)
    assert RoleVersion.objects.count() == count


# --- the History page ------------------------------------------------------------------


def _history_url(account: AwsAccount) -> str:
    return reverse("role_history", args=[account.account_id, "payments-api"])


def test_the_history_page_shows_each_version_with_its_diff_newest_first(
    account: AwsAccount, iam: Any, requester: User
) -> None:
    sync(account)
    iam.put_role_policy(
        RoleName="payments-api",
        PolicyName="invoices-read",
        PolicyDocument=json.dumps(OTHER_DOCUMENT),
    )
    sync(account)
    response = client_for(requester).get(_history_url(account))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Changed outside iamportal" in html
    assert "First seen" in html
    assert html.index("Changed outside iamportal") < html.index("First seen")
    assert "sqs:SendMessage" in html
    assert "invoices-read (before)" in html
    assert "Restore this version" in html


def test_the_role_page_links_to_its_history(account: AwsAccount, iam: Any, requester: User) -> None:
    sync(account)
    page = client_for(requester).get(
        reverse("role_detail", args=[account.account_id, "payments-api"])
    )
    assert _history_url(account) in page.content.decode()


def test_the_history_is_paginated(account: AwsAccount, iam: Any, requester: User) -> None:
    sync(account)
    for n in range(25):
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::b{n}/*"}
            ],
        }
        iam.put_role_policy(
            RoleName="payments-api", PolicyName="invoices-read", PolicyDocument=json.dumps(document)
        )
        services.role_refresh(role=_role(account))
    client = client_for(requester)
    first = client.get(_history_url(account)).content.decode()
    assert "arn:aws:s3:::b24/*" in first
    assert "Page 1 of 2" in first
    second = client.get(_history_url(account) + "?page=2").content.decode()
    assert "First seen" in second
    assert "arn:aws:s3:::b24/*" not in second


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_user_sees_a_role_s_history_as_they_see_the_role(
    account: AwsAccount, iam: Any, who: str, request: pytest.FixtureRequest
) -> None:
    sync(account)
    client = client_for(request.getfixturevalue(who))
    assert client.get(_history_url(account)).status_code == 200
    missing = reverse("role_history", args=[account.account_id, "no-such-role"])
    assert client.get(missing).status_code == 404


def test_anonymous_visitors_of_a_history_go_to_the_login_page(
    account: AwsAccount, iam: Any, anonymous: Client
) -> None:
    sync(account)
    response = anonymous.get(_history_url(account))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- a deleted role's history ------------------------------------------------------------


def test_a_role_a_sync_finds_gone_keeps_its_history(
    account: AwsAccount, iam: Any, requester: User
) -> None:
    sync(account)
    role = _role(account)
    recorded = _versions(role)
    iam.delete_role_policy(RoleName="payments-api", PolicyName="invoices-read")
    iam.delete_role(RoleName="payments-api")

    sync(account)

    assert not IamRole.objects.filter(account=account, name="payments-api").exists()
    kept = RoleVersion.objects.filter(account=account, role_name="payments-api").order_by("pk")
    assert [(v.part, v.key, v.source) for v in kept] == recorded
    assert {v.role_arn for v in kept} == {role.arn}
    html = client_for(requester).get(_history_url(account)).content.decode()
    assert "payments-api" in html
    assert "This role was deleted" in html
    assert role.arn in html
    assert "Inline policy invoices-read" in html
    assert "s3:GetObject" in html
    assert "Restore this version" not in html


def test_a_role_created_again_under_the_name_starts_a_new_history(
    account: AwsAccount, iam: Any, requester: User
) -> None:
    sync(account)
    iam.delete_role_policy(RoleName="payments-api", PolicyName="invoices-read")
    iam.delete_role(RoleName="payments-api")
    sync(account)
    iam.create_role(RoleName="payments-api", AssumeRolePolicyDocument=json.dumps(TRUST))
    sync(account)

    html = client_for(requester).get(_history_url(account)).content.decode()
    assert "This role was deleted" not in html
    assert "Inline policy invoices-read" not in html
    assert RoleVersion.objects.filter(role=None, role_name="payments-api").exists()


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_a_deleted_role_s_history_is_as_visible_as_the_role_was(
    account: AwsAccount, iam: Any, who: str, request: pytest.FixtureRequest
) -> None:
    sync(account)
    IamRole.objects.filter(account=account, name="payments-api").delete()
    client = client_for(request.getfixturevalue(who))
    assert client.get(_history_url(account)).status_code == 200
    # Other tabs of a deleted role stay "not found".
    gone = reverse("role_detail", args=[account.account_id, "payments-api"])
    assert client.get(gone).status_code == 404


def test_anonymous_visitors_of_a_deleted_role_s_history_go_to_the_login_page(
    account: AwsAccount, iam: Any, anonymous: Client
) -> None:
    sync(account)
    IamRole.objects.filter(account=account, name="payments-api").delete()
    response = anonymous.get(_history_url(account))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
