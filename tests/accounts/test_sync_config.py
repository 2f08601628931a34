"""Resources of every type from an AWS Config aggregator, in the sync.

The embedded AWS (moto) cannot answer aggregate queries across accounts, so the
aggregator's four operations are answered at the HTTP edge by the stand-in the
demo uses too; everything else (the spoke roles, the direct reads) is moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from accounts.models import AwsAccount, CloudResource, SyncRun
from iamportal import aws, demo
from iamportal.config_standin import ConfigAggregatorStandIn
from tests.factories import account_create, admin_client, sync

pytestmark = pytest.mark.django_db

AGGREGATOR = "acme-config"
CAPTURED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def item(
    account: AwsAccount,
    resource_type: str,
    resource_id: str,
    *,
    name: str = "",
    region: str = "us-east-1",
    arn: str | None = None,
    configuration: dict[str, Any] | None = None,
    supplementary: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    captured: datetime = CAPTURED,
) -> dict[str, Any]:
    service = resource_type.split("::")[1].lower()
    return {
        "resourceType": resource_type,
        "resourceId": resource_id,
        "resourceName": name,
        "arn": f"arn:aws:{service}:{region}:{account.account_id}:{resource_id}"
        if arn is None
        else arn,
        "awsRegion": region,
        "accountId": account.account_id,
        "configurationItemCaptureTime": captured,
        "configuration": configuration or {},
        "supplementaryConfiguration": supplementary or {},
        "tags": tags or {},
    }


def policy(sid: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": sid, "Effect": "Allow", "Principal": "*", "Action": "*"}],
    }


@pytest.fixture
def standin(settings: Any) -> Iterator[ConfigAggregatorStandIn]:
    settings.IAMPORTAL_CONFIG_AGGREGATOR = AGGREGATOR
    settings.IAMPORTAL_CONFIG_ACCOUNT_ID = "123456789012"
    aggregator = ConfigAggregatorStandIn(AGGREGATOR)
    aws.on_hub_call("before-call.config-service", aggregator)
    yield aggregator


@pytest.fixture
def accounts() -> list[AwsAccount]:
    aws.client("organizations").create_organization(FeatureSet="ALL")
    return [account_create("acme-one"), account_create("acme-two")]


def rows(account: AwsAccount) -> dict[str, CloudResource]:
    return {r.name: r for r in CloudResource.objects.filter(account=account)}


def mixed_items(account: AwsAccount) -> list[dict[str, Any]]:
    return [
        item(
            account,
            "AWS::DynamoDB::Table",
            "orders",
            name="orders",
            arn=f"arn:aws:dynamodb:us-east-1:{account.account_id}:table/orders",
            configuration={
                "tableName": "orders",
                "tableStatus": "ACTIVE",
                "itemCount": 42,
                "keySchema": [{"attributeName": "id", "keyType": "HASH"}],
                "description": "x" * 500,
            },
            tags={"team": "payments", "env": "prod"},
        ),
        item(
            account,
            "AWS::KMS::Key",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            configuration={"keyState": "Enabled", "keyUsage": "ENCRYPT_DECRYPT"},
        ),
        item(
            account,
            "AWS::Lambda::Function",
            "payments-worker",
            name="payments-worker",
            configuration={"runtime": "python3.12", "memorySize": 256},
            supplementary={"Policy": json.dumps(policy("InvokeFromEvents"))},
        ),
        item(
            account,
            "AWS::S3::Bucket",
            "acme-one-reports",
            name="acme-one-reports",
            arn="arn:aws:s3:::acme-one-reports",
            supplementary={"BucketPolicy": {"policyText": json.dumps(policy("ReadReports"))}},
            tags={"data": "reports"},
        ),
        item(
            account,
            "AWS::SQS::Queue",
            "https://sqs.us-east-1.amazonaws.com/x/events",
            name="events",
            arn=f"arn:aws:sqs:us-east-1:{account.account_id}:events",
            configuration={"Policy": policy("SendEvents"), "VisibilityTimeout": 30},
        ),
        item(
            account,
            "AWS::SNS::Topic",
            f"arn:aws:sns:us-east-1:{account.account_id}:alerts",
            name="alerts",
            arn=f"arn:aws:sns:us-east-1:{account.account_id}:alerts",
            configuration={"Policy": json.dumps(policy("PublishAlerts"))},
        ),
        # Read directly from IAM, into roles: never taken from Config.
        item(
            account,
            "AWS::IAM::Role",
            "AROAEXAMPLE",
            name="payments-api",
            arn=f"arn:aws:iam::{account.account_id}:role/payments-api",
        ),
    ]


def test_it_syncs_every_type_with_tags_policies_summary_and_change_time(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount]
) -> None:
    one = accounts[0]
    standin.items[one.account_id] = mixed_items(one)
    run = sync(one)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    found = rows(one)
    assert set(found) == {
        "orders",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "payments-worker",
        "acme-one-reports",
        "events",
        "alerts",
    }
    assert all(r.source == CloudResource.Source.CONFIG for r in found.values())
    table = found["orders"]
    assert table.type == "AWS::DynamoDB::Table"
    assert table.arn == f"arn:aws:dynamodb:us-east-1:{one.account_id}:table/orders"
    assert table.region == "us-east-1"
    assert table.tags == {"env": "prod", "team": "payments"}
    assert table.changed_in_aws_at == CAPTURED
    assert table.summary["tableStatus"] == "ACTIVE"
    assert table.summary["itemCount"] == 42
    # Bounded: no nested structures, long text cut.
    assert "keySchema" not in table.summary
    assert len(table.summary["description"]) == 120
    assert found["payments-worker"].policy == policy("InvokeFromEvents")
    # The three types iamportal also reads directly keep their short names.
    assert found["acme-one-reports"].type == "s3"
    assert found["acme-one-reports"].policy == policy("ReadReports")
    assert found["acme-one-reports"].tags == {"data": "reports"}
    assert found["events"].type == "sqs"
    assert found["events"].policy == policy("SendEvents")
    assert found["alerts"].type == "sns"
    assert found["alerts"].policy == policy("PublishAlerts")
    assert found["1234abcd-12ab-34cd-56ef-1234567890ab"].policy is None
    assert run.counts["config_resources"] == 6


def test_an_unchanged_resync_writes_nothing_and_a_change_rewrites_one_row(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount]
) -> None:
    one = accounts[0]
    standin.items[one.account_id] = mixed_items(one)
    assert sync(one).counts["written"] > 0
    again = sync(one)
    assert again.status == SyncRun.Status.SUCCEEDED, again.error
    assert again.counts["written"] == 0
    later = datetime(2026, 4, 1, tzinfo=UTC)
    standin.items[one.account_id][0]["tags"] = {"team": "ledger"}
    standin.items[one.account_id][0]["configurationItemCaptureTime"] = later
    del standin.items[one.account_id][1]  # the KMS key is gone
    changed = sync(one)
    assert (changed.counts["updated"], changed.counts["deleted"]) == (1, 1)
    table = rows(one)["orders"]
    assert table.tags == {"team": "ledger"}
    assert table.changed_in_aws_at == later
    assert "1234abcd-12ab-34cd-56ef-1234567890ab" not in rows(one)


def test_config_replaces_the_direct_reads_it_covers_and_nothing_else(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount], settings: Any
) -> None:
    settings.IAMPORTAL_REGIONS = ["us-east-1", "eu-west-1"]
    one = accounts[0]
    # In AWS: a bucket Config has not recorded (Config holds another bucket, so
    # S3 is Config's), a queue in each region and a topic.
    admin_client(one.account_id, "s3").create_bucket(Bucket="acme-one-unrecorded")
    east = admin_client(one.account_id, "sqs", "us-east-1")
    east.create_queue(QueueName="events")
    west = admin_client(one.account_id, "sqs", "eu-west-1")
    west.create_queue(QueueName="west-jobs")
    admin_client(one.account_id, "sns", "us-east-1").create_topic(Name="direct-topic")
    standin.items[one.account_id] = [
        i for i in mixed_items(one) if i["resourceType"] in ("AWS::S3::Bucket", "AWS::SQS::Queue")
    ]
    run = sync(one)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    found = rows(one)
    # S3 and SQS in us-east-1 from Config only: the queue is there once.
    assert "acme-one-unrecorded" not in found
    assert CloudResource.objects.filter(account=one, name="events").count() == 1
    assert found["events"].source == "config"
    # SQS in eu-west-1 and SNS everywhere: Config holds none, so they are read directly.
    assert found["west-jobs"].source == "direct"
    assert found["west-jobs"].region == "eu-west-1"
    assert found["direct-topic"].source == "direct"


def test_accounts_without_config_keep_the_direct_reads(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount]
) -> None:
    one, two = accounts
    standin.items[one.account_id] = mixed_items(one)
    admin_client(two.account_id, "s3").create_bucket(Bucket="acme-two-logs")
    admin_client(two.account_id, "sqs").create_queue(QueueName="two-jobs")
    admin_client(two.account_id, "sns").create_topic(Name="two-alerts")
    run = sync(two)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    found = rows(two)
    assert set(found) == {"acme-two-logs", "two-jobs", "two-alerts"}
    assert {r.source for r in found.values()} == {"direct"}
    assert {r.type for r in found.values()} == {"s3", "sqs", "sns"}
    assert run.counts["config_resources"] == 0


def test_a_config_failure_fails_that_account_only_and_keeps_its_inventory(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount]
) -> None:
    one, two = accounts
    standin.items[one.account_id] = mixed_items(one)
    standin.items[two.account_id] = [item(two, "AWS::DynamoDB::Table", "two-table", name="t")]
    sync(one)
    before = set(rows(one))
    standin.refused[one.account_id] = "AccessDeniedException"
    failed = sync(one)
    assert failed.status == SyncRun.Status.FAILED
    assert f"AWS Config aggregator {AGGREGATOR}" in failed.error
    assert "AccessDeniedException" in failed.error
    assert set(rows(one)) == before
    other = sync(two)
    assert other.status == SyncRun.Status.SUCCEEDED, other.error
    assert set(rows(two)) == {"t"}


def test_a_missing_aggregator_fails_the_sync_with_its_name(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount], settings: Any
) -> None:
    settings.IAMPORTAL_CONFIG_AGGREGATOR = "no-such-aggregator"
    run = sync(accounts[0])
    assert run.status == SyncRun.Status.FAILED
    assert "no-such-aggregator" in run.error
    assert "NoSuchConfigurationAggregatorException" in run.error


def test_it_pages_through_hundreds_of_resources_in_batches_of_100(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount]
) -> None:
    one = accounts[0]
    standin.items[one.account_id] = [
        item(one, "AWS::DynamoDB::Table", f"table-{n:03d}", name=f"table-{n:03d}")
        for n in range(250)
    ]
    run = sync(one)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert CloudResource.objects.filter(account=one, type="AWS::DynamoDB::Table").count() == 250
    assert standin.calls["SelectAggregateResourceConfig"] == 3
    assert standin.calls["BatchGetAggregateResourceConfig"] == 3
    assert "ListAggregateDiscoveredResources" not in standin.calls


def test_types_advanced_queries_miss_are_listed_and_still_read(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount]
) -> None:
    one = accounts[0]
    standin.items[one.account_id] = mixed_items(one) + [
        item(one, "AWS::Lambda::Function", f"fn-{n:03d}", name=f"fn-{n:03d}") for n in range(120)
    ]
    standin.select_unsupported = {"AWS::Lambda::Function"}
    run = sync(one)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    functions = CloudResource.objects.filter(account=one, type="AWS::Lambda::Function")
    assert functions.count() == 121
    assert functions.get(name="payments-worker").policy == policy("InvokeFromEvents")
    assert standin.calls["ListAggregateDiscoveredResources"] == 2  # 121 in pages of 100
    assert rows(one)["orders"].tags == {"env": "prod", "team": "payments"}


def test_an_item_config_does_not_return_keeps_its_row_marked(
    standin: ConfigAggregatorStandIn, accounts: list[AwsAccount]
) -> None:
    one = accounts[0]
    standin.items[one.account_id] = mixed_items(one)
    sync(one)
    standin.unprocessed = {"orders"}
    run = sync(one)
    assert run.status == SyncRun.Status.WARNINGS
    table = rows(one)["orders"]
    assert table.tags == {"env": "prod", "team": "payments"}
    assert "did not return" in table.read_error


# --- the demo organisation's aggregator ------------------------------------------------


def test_the_demo_aggregator_brings_more_types_into_two_accounts(settings: Any) -> None:
    settings.IAMPORTAL_CONFIG_AGGREGATOR = demo.DEMO_AGGREGATOR
    seeded = demo.organisation_seed()
    accounts = {a.environment: a for a in demo.accounts_onboard(seeded)}
    aws.on_hub_call("before-call.config-service", demo.DemoConfigAggregator(demo.DEMO_AGGREGATOR))
    for account in accounts.values():
        run = sync(account)
        assert run.status == SyncRun.Status.SUCCEEDED, run.error
    for env in ("prod", "staging"):
        found = rows(accounts[env])
        types = {r.type for r in found.values()}
        assert {"AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::Lambda::Function"} <= types
        assert {r.source for r in found.values()} == {"config"}
        ledger = found["payments-ledger"]
        assert ledger.tags == {"env": env, "team": "payments"}
        assert ledger.summary["billingMode"] == "PAY_PER_REQUEST"
        assert ledger.changed_in_aws_at is not None
        for name, sid in (
            ("payments-webhook", "AlertsInvoke"),
            (f"acme-{env}-payments-data", "PaymentsApi"),
            ("payments-events", "AlertsFanOut"),
        ):
            assert (found[name].policy or {})["Statement"][0]["Sid"] == sid
    dev = rows(accounts["dev"])
    assert {r.source for r in dev.values()} == {"direct"}
    assert {r.type for r in dev.values()} == {"s3", "sqs", "sns"}
    # And again, with nothing changed in the embedded AWS.
    assert sync(accounts["prod"]).counts["written"] == 0


def test_a_named_role_in_the_aggregator_s_account_is_assumed_once_and_reused(
    settings: Any, assume_calls: list[dict[str, Any]]
) -> None:
    settings.IAMPORTAL_CONFIG_ACCOUNT_ID = "210987654321"
    settings.IAMPORTAL_CONFIG_ROLE_NAME = "iamportal-config-reader"
    settings.IAMPORTAL_CONFIG_REGION = "eu-west-1"
    first, second = aws.config_client(), aws.config_client()
    assert [c["RoleArn"] for c in assume_calls] == [
        "arn:aws:iam::210987654321:role/iamportal-config-reader"
    ]
    assert first.meta.region_name == second.meta.region_name == "eu-west-1"


def test_without_a_role_the_hub_queries_the_aggregator(
    settings: Any, assume_calls: list[dict[str, Any]]
) -> None:
    settings.IAMPORTAL_CONFIG_REGION = "eu-west-1"
    client = aws.config_client()
    assert assume_calls == []
    assert client.meta.region_name == "eu-west-1"
