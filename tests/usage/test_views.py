"""The usage page of a role, the notice banner on the role page, and the roles
list's "has unused permissions" filter."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from accounts.usage.models import AdvisorRun, RemovalNotice, ServiceUsage
from tests.factories import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def account() -> AwsAccount:
    return AwsAccount.objects.create(account_id="111122223333", name="acme-prod")


@pytest.fixture
def role(account: AwsAccount) -> IamRole:
    return IamRole.objects.create(
        account=account,
        arn="arn:aws:iam::111122223333:role/payments-api",
        name="payments-api",
        inline_policies={
            "payments-data": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            },
            "payments-events": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}],
            },
        },
        content_hash="x",
        synced_at=timezone.now() - timedelta(days=2),
        created_in_aws_at=timezone.now() - timedelta(days=400),
    )


@pytest.fixture
def other(account: AwsAccount) -> IamRole:
    return IamRole.objects.create(
        account=account,
        arn="arn:aws:iam::111122223333:role/web",
        name="web",
        content_hash="x",
        synced_at=timezone.now() - timedelta(days=2),
    )


def read(account: AwsAccount, *, hours_ago: int = 1) -> AdvisorRun:
    return AdvisorRun.objects.create(
        account=account,
        status=AdvisorRun.Status.SUCCEEDED,
        finished_at=timezone.now() - timedelta(hours=hours_ago),
    )


@pytest.fixture
def usage(role: IamRole, other: IamRole) -> None:
    now = timezone.now()
    ServiceUsage.objects.create(
        role=role,
        namespace="s3",
        service_name="Amazon S3",
        last_accessed_at=now - timedelta(days=2),
        last_entity=role.arn,
        last_region="eu-west-1",
        content_hash="a",
    )
    ServiceUsage.objects.create(
        role=role, namespace="sqs", service_name="Amazon SQS", content_hash="b"
    )
    ServiceUsage.objects.create(
        role=other, namespace="s3", last_accessed_at=now - timedelta(days=1), content_hash="c"
    )


def page(user: User, role: IamRole) -> str:
    response = client_for(user).get(
        reverse("role_usage", args=[role.account.account_id, role.name])
    )
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_each_service_its_policy_and_its_last_use(
    requester: User, role: IamRole, usage: None
) -> None:
    read(role.account)
    html = page(requester, role)
    assert "inline policy payments-data" in html
    assert "inline policy payments-events" in html
    assert "eu-west-1" in html
    assert "never" in html
    assert "unused for 90+ days" in html
    assert "stale" not in html


def test_old_data_is_shown_as_stale(requester: User, role: IamRole, usage: None) -> None:
    read(role.account, hours_ago=30)
    assert "stale" in page(requester, role)


def test_no_pass_yet_is_stale_too(requester: User, role: IamRole, usage: None) -> None:
    assert "has not read this account yet" in page(requester, role)


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_user_sees_the_usage_of_a_role(
    who: str, request: pytest.FixtureRequest, role: IamRole, usage: None
) -> None:
    html = page(request.getfixturevalue(who), role)
    assert "<h1>payments-api" in html
    assert re.search(r'<a href="[^"]*/usage/"[^>]*aria-current="page">Usage</a>', html)


def test_anonymous_visitors_are_sent_to_sign_in(anonymous: Client, role: IamRole) -> None:
    response = anonymous.get(reverse("role_usage", args=[role.account.account_id, role.name]))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_an_unknown_role_is_a_404(requester: User, account: AwsAccount) -> None:
    response = client_for(requester).get(reverse("role_usage", args=[account.account_id, "nope"]))
    assert response.status_code == 404


def test_the_role_page_links_to_usage_and_shows_a_pending_notice(
    requester: User, role: IamRole
) -> None:
    url = reverse("role_detail", args=[role.account.account_id, role.name])
    html = client_for(requester).get(url).content.decode()
    assert reverse("role_usage", args=[role.account.account_id, role.name]) in html
    assert "will be removed" not in html
    RemovalNotice.objects.create(
        role=role,
        removals=[
            {
                "kind": "inline",
                "key": "payments-events",
                "label": "inline policy payments-events",
                "services": ["sqs"],
                "actions": [],
            }
        ],
        created_at=timezone.now(),
        remove_after=timezone.now() + timedelta(days=14),
    )
    html = client_for(requester).get(url).content.decode()
    assert "Unused permissions will be removed" in html
    assert "inline policy payments-events" in html
    assert "iamportal-rightsizing=off" in html


def test_the_roles_list_filters_roles_with_unused_permissions(
    requester: User, role: IamRole, other: IamRole, usage: None
) -> None:
    read(role.account)
    client = client_for(requester)
    everything = client.get(reverse("role_list")).content.decode()
    assert "payments-api" in everything and ">web<" in everything
    unused = client.get(reverse("role_list"), {"usage": "unused"}).content.decode()
    assert "payments-api" in unused
    assert ">web<" not in unused


def test_the_filter_ignores_stale_data(requester: User, role: IamRole, usage: None) -> None:
    read(role.account, hours_ago=30)
    unused = client_for(requester).get(reverse("role_list"), {"usage": "unused"}).content.decode()
    assert "payments-api" not in unused


def test_a_bad_filter_value_is_a_form_error(requester: User) -> None:
    response = client_for(requester).get(reverse("role_list"), {"usage": "<script>"})
    assert response.status_code == 200
    assert "Choose any usage" in response.content.decode()
