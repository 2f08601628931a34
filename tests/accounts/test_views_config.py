"""The resource pages with resources AWS Config brought: any type, its summary
and its last change time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource
from accounts.services import inventory_entries_refresh
from tests.factories import client_for

pytestmark = pytest.mark.django_db

CHANGED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def payments(db: None) -> AwsAccount:
    return AwsAccount.objects.create(account_id="111111111111", name="payments")


@pytest.fixture
def table(payments: AwsAccount) -> CloudResource:
    return CloudResource.objects.create(
        account=payments,
        arn="arn:aws:dynamodb:us-east-1:111111111111:table/orders",
        name="orders",
        type="AWS::DynamoDB::Table",
        region="us-east-1",
        source=CloudResource.Source.CONFIG,
        resource_id="orders",
        summary={"tableStatus": "ACTIVE", "itemCount": 42, "billingMode": "PAY_PER_REQUEST"},
        changed_in_aws_at=CHANGED,
        policy={"Version": "2012-10-17", "Statement": [{"Sid": "ReadOrders"}]},
        tags={"team": "payments"},
        content_hash="x",
        synced_at=timezone.now(),
    )


@pytest.fixture
def bucket(payments: AwsAccount) -> CloudResource:
    return CloudResource.objects.create(
        account=payments,
        arn="arn:aws:s3:::orders-archive",
        name="orders-archive",
        type="s3",
        content_hash="x",
        synced_at=timezone.now(),
    )


def test_it_filters_by_an_aws_config_type_it_offers(
    requester: User, table: CloudResource, bucket: CloudResource
) -> None:
    inventory_entries_refresh(account=table.account)  # as a sync leaves them
    client = client_for(requester)
    page = client.get(reverse("resource_list"))
    html = page.content.decode()
    assert '<option value="AWS::DynamoDB::Table">DynamoDB table</option>' in html
    assert '<option value="s3">S3 bucket</option>' in html
    filtered = client.get(reverse("resource_list"), {"type": "AWS::DynamoDB::Table"})
    assert [r.name for r in filtered.context["page"]] == ["orders"]
    both = client.get(reverse("resource_list"), {"q": "orders"})
    assert {r.name for r in both.context["page"]} == {"orders", "orders-archive"}


def test_the_list_shows_the_summary_and_the_last_change(
    requester: User, table: CloudResource
) -> None:
    html = client_for(requester).get(reverse("resource_list")).content.decode()
    assert "<strong>billingMode</strong> = PAY_PER_REQUEST" in html
    assert "<strong>itemCount</strong> = 42" in html
    assert 'title="2026-03-01 12:00:00 UTC"' in html


@pytest.mark.parametrize("value", ["AWS::Nothing::Here", "x" * 5000, "<script>"])
def test_an_unknown_type_is_a_form_error_not_a_server_error(
    requester: User, table: CloudResource, value: str
) -> None:
    response = client_for(requester).get(reverse("resource_list"), {"type": value})
    assert response.status_code == 200
    assert "Choose a type from the list." in response.content.decode()


def test_the_page_shows_the_config_summary_source_and_policy(
    requester: User, table: CloudResource
) -> None:
    html = client_for(requester).get(reverse("resource_detail", args=[table.pk])).content.decode()
    assert "AWS::DynamoDB::Table" in html
    assert "AWS Config" in html
    assert 'id="config-summary"' in html
    assert '<dt class="mono">tableStatus</dt><dd class="break">ACTIVE</dd>' in html
    assert 'id="changed-in-aws"' in html
    assert "&quot;Sid&quot;: &quot;ReadOrders&quot;" in html


def test_a_directly_read_resource_has_no_config_sections(
    requester: User, bucket: CloudResource
) -> None:
    html = client_for(requester).get(reverse("resource_detail", args=[bucket.pk])).content.decode()
    assert "Read directly" in html
    assert 'id="config-summary"' not in html
    assert 'id="changed-in-aws"' not in html


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_user_sees_config_resources(
    who: str, request: pytest.FixtureRequest, table: CloudResource
) -> None:
    client = client_for(request.getfixturevalue(who))
    assert client.get(reverse("resource_list"), {"type": table.type}).status_code == 200
    assert client.get(reverse("resource_detail", args=[table.pk])).status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(anonymous: Client, table: CloudResource) -> None:
    for url in (reverse("resource_list"), reverse("resource_detail", args=[table.pk])):
        response = anonymous.get(url)
        assert response.status_code == 302
        assert "/login" in response["Location"]
