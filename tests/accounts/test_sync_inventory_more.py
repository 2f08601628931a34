"""Users, groups, access keys and databases in the sync, against the embedded AWS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.test import TestCase

from accounts import services
from accounts.models import AwsAccount, Database, IamGroup, IamRole, IamUser, SyncRun
from iamportal import aws, demo

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> list[demo.DemoAccount]:
    return demo.organisation_seed()


@pytest.fixture
def accounts(org: list[demo.DemoAccount]) -> list[AwsAccount]:
    return demo.accounts_onboard(org)


def sync(account: AwsAccount) -> SyncRun:
    with TestCase.captureOnCommitCallbacks(execute=True):
        run = services.account_sync_request(account=account)
    run.refresh_from_db()
    return run


def on_spoke_call(monkeypatch: pytest.MonkeyPatch, event: str, handler: Callable[..., Any]) -> None:
    """Hook `handler` into every client the sync builds from a spoke session."""
    real = aws.client

    def hooked(service: str, *, session: Any = None, region: str | None = None) -> Any:
        client = real(service, session=session, region=region)
        if session is not None:
            # Clients are reused: hooked once each.
            client.meta.events.register(event, handler, unique_id=(event, id(handler)))
        return client

    monkeypatch.setattr(aws, "client", hooked)


def access_denied(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "AccessDenied", "Message": f"not authorized to perform {operation}"}},
        operation,
    )


def test_it_syncs_the_users_and_groups_of_every_account(
    org: list[demo.DemoAccount], accounts: list[AwsAccount]
) -> None:
    for account, seeded in zip(accounts, org, strict=True):
        run = sync(account)
        assert run.status == SyncRun.Status.SUCCEEDED, run.error
        users = set(IamUser.objects.filter(account=account).values_list("name", flat=True))
        assert users == set(seeded.users)
        groups = set(IamGroup.objects.filter(account=account).values_list("name", flat=True))
        assert groups == set(seeded.groups)
        assert run.counts["users"] == len(seeded.users)
        assert run.counts["groups"] == len(seeded.groups)


def test_it_stores_a_user_s_groups_policies_tags_and_keys(accounts: list[AwsAccount]) -> None:
    prod = accounts[0]
    sync(prod)
    bot = IamUser.objects.get(account=prod, name="deploy-bot")
    assert bot.arn == f"arn:aws:iam::{prod.account_id}:user/automation/deploy-bot"
    assert bot.path == "/automation/"
    assert bot.groups == ["deployers"]
    assert bot.tags == {"owner": "platform"}
    assert bot.created_in_aws_at is not None
    assert len(bot.access_keys) == 1
    key = bot.access_keys[0]
    assert key["id"].startswith("AKIA")
    assert key["status"] == "Active"
    assert key["created"]
    assert key["last_used_on"] == ""
    jane = IamUser.objects.get(account=prod, name="jane.doe")
    assert jane.groups == ["deployers", "readers"]
    assert jane.access_keys == []
    readers = IamGroup.objects.get(account=prod, name="readers")
    assert readers.members == ["jane.doe", "legacy-reporting"]
    assert [p["name"] for p in readers.managed_policies] == ["acme-reports-read"]
    deployers = IamGroup.objects.get(account=prod, name="deployers")
    assert deployers.members == ["deploy-bot", "jane.doe"]
    assert deployers.inline_policies["deployers"]["Statement"][0]["Action"] == ["ecs:UpdateService"]


def test_it_reads_access_keys_with_one_call_per_user_and_one_per_key(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def count(model: Any, **kwargs: Any) -> None:
        calls.append(model.name)

    on_spoke_call(monkeypatch, "before-call.iam.ListAccessKeys", count)
    on_spoke_call(monkeypatch, "before-call.iam.GetAccessKeyLastUsed", count)

    run = sync(accounts[0])

    # Three users, two of them with one key each.
    assert calls.count("ListAccessKeys") == 3
    assert calls.count("GetAccessKeyLastUsed") == 2
    assert run.counts["access_key_calls"] == 5


def test_a_user_whose_keys_cannot_be_read_keeps_the_keys_read_before(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    prod = accounts[0]
    sync(prod)
    before = IamUser.objects.get(account=prod, name="deploy-bot").access_keys

    def refuse(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("UserName") == "deploy-bot":
            raise access_denied("iam:ListAccessKeys")

    on_spoke_call(monkeypatch, "provide-client-params.iam.ListAccessKeys", refuse)
    run = sync(prod)

    assert run.status == SyncRun.Status.WARNINGS, run.error
    assert any("deploy-bot" in warning for warning in run.counts["warnings"])
    bot = IamUser.objects.get(account=prod, name="deploy-bot")
    assert bot.access_keys == before
    assert "AccessDenied" in bot.access_keys_error
    assert IamUser.objects.get(account=prod, name="legacy-reporting").access_keys


def test_an_unchanged_resync_writes_no_user_group_or_database_row(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    prod = accounts[0]
    sync(prod)
    models = (IamUser, IamGroup, Database, IamRole)

    def snapshot() -> dict[str, Any]:
        return {
            model.__name__: {
                r.pk: (r.synced_at, r.content_hash) for r in model.objects.filter(account=prod)
            }
            for model in models
        }

    before = snapshot()
    assert all(before.values())
    writes: list[str] = []
    from django.db import connection

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) and any(
            table in sql for table in ("accounts_iamuser", "accounts_iamgroup", "accounts_database")
        ):
            writes.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        second = sync(prod)

    assert second.status == SyncRun.Status.SUCCEEDED, second.error
    assert second.counts["written"] == 0
    assert writes == []
    assert snapshot() == before


def test_users_groups_and_databases_that_disappear_are_removed(
    accounts: list[AwsAccount],
) -> None:
    prod = accounts[0]
    sync(prod)
    session = demo.account_session(prod.account_id)
    iam = aws.client("iam", session=session)
    iam.remove_user_from_group(GroupName="readers", UserName="jane.doe")
    iam.remove_user_from_group(GroupName="deployers", UserName="jane.doe")
    iam.delete_user(UserName="jane.doe")
    aws.client("rds", session=session).delete_db_instance(
        DBInstanceIdentifier="reporting-db", SkipFinalSnapshot=True
    )

    run = sync(prod)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert not IamUser.objects.filter(account=prod, name="jane.doe").exists()
    assert IamGroup.objects.get(account=prod, name="readers").members == ["legacy-reporting"]
    assert list(Database.objects.filter(account=prod).values_list("name", flat=True)) == [
        "payments-db"
    ]
    assert run.counts["deleted"] == 2


def test_it_syncs_rds_instances_with_their_endpoint_and_iam_authentication(
    org: list[demo.DemoAccount], accounts: list[AwsAccount]
) -> None:
    prod = accounts[0]
    run = sync(prod)
    assert run.counts["databases"] == 2
    payments = Database.objects.get(account=prod, name="payments-db")
    assert payments.type == Database.Type.RDS_INSTANCE
    assert payments.arn == f"arn:aws:rds:us-east-1:{prod.account_id}:db:payments-db"
    assert payments.region == "us-east-1"
    assert payments.engine == "postgres"
    assert payments.port == 5432
    assert payments.endpoint.startswith("payments-db.")
    assert payments.iam_auth is True
    assert payments.resource_id.startswith("db-")
    assert payments.tags == {"owner": "payments"}
    assert Database.objects.get(account=prod, name="reporting-db").engine == "mysql"
    # Only production has databases in the demo.
    sync(accounts[1])
    assert not Database.objects.filter(account=accounts[1]).exists()


def test_it_syncs_rds_clusters_and_redshift_clusters_in_each_configured_region(
    accounts: list[AwsAccount], settings: Any
) -> None:
    settings.IAMPORTAL_REGIONS = ["us-east-1", "eu-west-1"]
    staging = accounts[1]
    session = demo.account_session(staging.account_id)
    aws.client("rds", session=session, region="eu-west-1").create_db_cluster(
        DBClusterIdentifier="ledger",
        Engine="aurora-postgresql",
        MasterUsername="admin_user",
        MasterUserPassword="a-long-password",
        EnableIAMDatabaseAuthentication=False,
    )
    aws.client("redshift", session=session).create_cluster(
        ClusterIdentifier="warehouse",
        NodeType="dc2.large",
        MasterUsername="admin_user",
        MasterUserPassword="A-long-password1",
        ClusterType="single-node",
    )

    run = sync(staging)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    ledger = Database.objects.get(account=staging, name="ledger")
    assert (ledger.type, ledger.region, ledger.iam_auth) == ("rds-cluster", "eu-west-1", False)
    assert ledger.arn == f"arn:aws:rds:eu-west-1:{staging.account_id}:cluster:ledger"
    assert ledger.resource_id.startswith("cluster-")
    warehouse = Database.objects.get(account=staging, name="warehouse")
    assert warehouse.type == "redshift"
    assert warehouse.region == "us-east-1"
    assert warehouse.arn == f"arn:aws:redshift:us-east-1:{staging.account_id}:cluster:warehouse"
    assert warehouse.port == 5439
    assert warehouse.iam_auth is None


def test_a_database_listing_that_is_refused_keeps_its_rows_and_warns(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spoke role without the new RDS permission must not fail every sync, nor
    make the databases an earlier sync read disappear."""
    prod = accounts[0]
    sync(prod)

    def refuse(**kwargs: Any) -> None:
        raise access_denied("rds:DescribeDBInstances")

    on_spoke_call(monkeypatch, "before-call.rds.DescribeDBInstances", refuse)
    run = sync(prod)

    assert run.status == SyncRun.Status.WARNINGS, run.error
    assert any("rds-instance in us-east-1" in w for w in run.counts["warnings"])
    assert Database.objects.filter(account=prod).count() == 2
    assert IamUser.objects.filter(account=prod).exists()


def test_one_account_failing_on_its_users_does_not_stop_the_others(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = accounts[1]

    def refuse(**kwargs: Any) -> None:
        raise access_denied("iam:ListUsers")

    # ListUsers of the broken account only: hooked into its spoke session.
    real = aws.spoke_session

    def spoke(account: AwsAccount) -> Any:
        session = real(account)
        if account.account_id == broken.account_id:
            aws.on_session_call(session, "before-call.iam.ListUsers", refuse)
        return session

    monkeypatch.setattr(aws, "spoke_session", spoke)
    from accounts.tasks import accounts_sync_all_task

    with TestCase.captureOnCommitCallbacks(execute=True):
        accounts_sync_all_task()

    runs = {a.account_id: SyncRun.objects.filter(account=a).latest("queued_at") for a in accounts}
    assert runs[broken.account_id].status == SyncRun.Status.FAILED
    assert "ListUsers" in runs[broken.account_id].error
    assert not IamUser.objects.filter(account=broken).exists()
    for account in (accounts[0], accounts[2]):
        assert runs[account.account_id].status == SyncRun.Status.SUCCEEDED
        assert IamUser.objects.filter(account=account).exists()
