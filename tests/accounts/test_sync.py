"""Inventory sync against the embedded AWS, on the real database."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.test import TestCase

from accounts import services
from accounts.models import AwsAccount, CloudResource, IamRole, ManagedPolicy, SyncRun
from iamportal import aws, demo
from tests.factories import sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> list[demo.DemoAccount]:
    return demo.organisation_seed()


@pytest.fixture
def accounts(org: list[demo.DemoAccount]) -> list[AwsAccount]:
    return demo.accounts_onboard(org)


def test_it_syncs_every_role_policy_and_resource_of_the_demo_organisation(
    org: list[demo.DemoAccount], accounts: list[AwsAccount]
) -> None:
    for account, seeded in zip(accounts, org, strict=True):
        run = sync(account)
        assert run.status == SyncRun.Status.SUCCEEDED, run.error
        # moto also creates OrganizationAccountAccessRole in every member account.
        assert IamRole.objects.filter(account=account).count() == len(seeded.roles) + 1
        assert ManagedPolicy.objects.filter(account=account).count() == len(seeded.policies)
        assert CloudResource.objects.filter(account=account).count() == seeded.resource_count
        assert run.counts["roles"] == len(seeded.roles) + 1
        assert run.counts["written"] == run.counts["created"] > 0
    assert IamRole.objects.count() >= 15


def test_it_keeps_each_account_s_roles_under_that_account(accounts: list[AwsAccount]) -> None:
    for account in accounts:
        sync(account)
    for account in accounts:
        arns = IamRole.objects.filter(account=account).values_list("arn", flat=True)
        assert arns
        assert all(arn.split(":")[4] == account.account_id for arn in arns)
        resources = CloudResource.objects.filter(account=account).exclude(type="s3")
        assert all(r.arn.split(":")[4] == account.account_id for r in resources)
    prod = accounts[0]
    assert set(IamRole.objects.filter(account=prod).values_list("name", flat=True)) >= {
        "break-glass",
        "payments-api",
    }
    assert not IamRole.objects.filter(account=accounts[1], name="break-glass").exists()


def test_it_stores_policies_tags_and_resource_policies(accounts: list[AwsAccount]) -> None:
    prod = accounts[0]
    sync(prod)
    role = IamRole.objects.get(account=prod, name="payments-api")
    assert role.path == "/service/"
    assert role.description == "The payments API service (ECS)."
    assert role.trust_policy["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert set(role.inline_policies) == {"payments-data", "payments-events", "payments-db-connect"}
    [connect] = role.inline_policies["payments-db-connect"]["Statement"]
    assert connect["Action"] == "rds-db:connect"
    assert connect["Resource"].endswith("/payments_app")
    assert role.inline_policies["payments-events"]["Statement"][0]["Action"] == ["sqs:SendMessage"]
    assert [p["name"] for p in role.managed_policies] == ["acme-logs-write"]
    assert role.tags["iamportal-authorized"] == "team-payments"
    ci = IamRole.objects.get(account=prod, name="ci-deploy")
    assert ci.permissions_boundary_arn.endswith(":policy/acme/acme-deploy-boundary")
    bucket = CloudResource.objects.get(name="acme-prod-payments-data")
    assert bucket.type == "s3"
    assert bucket.policy is not None
    assert bucket.policy["Statement"][0]["Sid"] == "PaymentsApi"
    assert bucket.tags == {"env": "prod", "data": "payments-data"}
    queue = CloudResource.objects.get(account=prod, type="sqs", name="payments-events")
    assert queue.policy is not None
    assert queue.policy["Statement"][0]["Sid"] == "AlertsFanOut"
    assert queue.attributes["url"].endswith("/payments-events")
    policy = ManagedPolicy.objects.get(account=prod, name="acme-readonly")
    assert "s3:Get*" in policy.document["Statement"][0]["Action"]
    assert policy.attachment_count == 1


def test_an_unchanged_resync_writes_no_rows(accounts: list[AwsAccount]) -> None:
    prod = accounts[0]
    sync(prod)
    before = {r.pk: (r.synced_at, r.content_hash) for r in IamRole.objects.filter(account=prod)}
    second = sync(prod)
    assert second.status == SyncRun.Status.SUCCEEDED
    assert second.counts["written"] == 0
    after = {r.pk: (r.synced_at, r.content_hash) for r in IamRole.objects.filter(account=prod)}
    assert after == before


def test_a_changed_role_is_updated_and_a_deleted_one_removed(accounts: list[AwsAccount]) -> None:
    prod = accounts[0]
    sync(prod)
    iam = aws.client("iam", session=demo.account_session(prod.account_id))
    iam.put_role_policy(
        RoleName="payments-api",
        PolicyName="payments-events",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": "sqs:GetQueueUrl", "Resource": "*"}]}',
    )
    iam.detach_role_policy(
        RoleName="PlatformAdmin", PolicyArn=f"arn:aws:iam::{prod.account_id}:policy/acme/acme-admin"
    )
    iam.delete_role(RoleName="PlatformAdmin")
    aws.client("s3", session=demo.account_session(prod.account_id)).delete_bucket(
        Bucket="acme-prod-audit-logs"
    )

    run = sync(prod)

    assert run.counts["updated"] >= 1
    assert run.counts["deleted"] == 2
    role = IamRole.objects.get(account=prod, name="payments-api")
    assert role.inline_policies["payments-events"]["Statement"][0]["Action"] == "sqs:GetQueueUrl"
    assert not IamRole.objects.filter(account=prod, name="PlatformAdmin").exists()
    assert not CloudResource.objects.filter(name="acme-prod-audit-logs").exists()


def _deny_assume_role_into(account_id: str) -> None:
    """AWS refuses the spoke role of one account, as when it was never created."""

    def refuse(params: dict[str, Any], **kwargs: Any) -> None:
        if f"::{account_id}:" in params.get("RoleArn", ""):
            raise ClientError(
                {
                    "Error": {
                        "Code": "AccessDenied",
                        "Message": "not authorized to perform: sts:AssumeRole",
                    }
                },
                "AssumeRole",
            )

    aws.on_hub_call("provide-client-params.sts.AssumeRole", refuse)


def test_an_account_whose_spoke_role_fails_fails_alone(
    accounts: list[AwsAccount], admin_user: Any
) -> None:
    from tests.factories import client_for

    broken = accounts[1]
    _deny_assume_role_into(broken.account_id)

    from accounts.tasks import accounts_sync_all_task

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert accounts_sync_all_task() == 3

    runs = {a.account_id: SyncRun.objects.filter(account=a).latest("queued_at") for a in accounts}
    assert runs[broken.account_id].status == SyncRun.Status.FAILED
    assert "AccessDenied" in runs[broken.account_id].error
    assert broken.spoke_role_arn in runs[broken.account_id].error
    assert not IamRole.objects.filter(account=broken).exists()
    for account in (accounts[0], accounts[2]):
        assert runs[account.account_id].status == SyncRun.Status.SUCCEEDED
        assert IamRole.objects.filter(account=account).exists()

    page = client_for(admin_user).get("/dashboard/")
    assert "not authorized to perform: sts:AssumeRole" in page.content.decode()


def test_a_failed_sync_keeps_the_inventory_it_had(accounts: list[AwsAccount]) -> None:
    prod = accounts[0]
    sync(prod)
    count = IamRole.objects.filter(account=prod).count()
    aws.forget_sessions()
    _deny_assume_role_into(prod.account_id)
    run = sync(prod)
    assert run.status == SyncRun.Status.FAILED
    assert IamRole.objects.filter(account=prod).count() == count


def test_a_second_sync_request_while_one_is_queued_reuses_it(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("accounts.enqueue.async_task", lambda *a, **k: None)
    first = services.account_sync_request(account=accounts[0])
    second = services.account_sync_request(account=accounts[0])
    assert first.pk == second.pk
    assert SyncRun.objects.filter(account=accounts[0]).count() == 1


def test_a_task_delivered_twice_syncs_once(accounts: list[AwsAccount]) -> None:
    run = sync(accounts[0])
    assert services.account_sync_run(run_id=run.pk) is None
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED


def test_refresh_rereads_one_role_and_drops_it_when_gone(accounts: list[AwsAccount]) -> None:
    prod = accounts[0]
    sync(prod)
    role = IamRole.objects.get(account=prod, name="web-frontend")
    iam = aws.client("iam", session=demo.account_session(prod.account_id))
    iam.tag_role(RoleName="web-frontend", Tags=[{"Key": "cost-centre", "Value": "42"}])

    with TestCase.captureOnCommitCallbacks(execute=True):
        services.role_refresh_request(role=role)

    role.refresh_from_db()
    assert role.tags["cost-centre"] == "42"
    assert not role.refresh_pending
    iam.delete_role_policy(RoleName="web-frontend", PolicyName="static-assets")
    iam.delete_role(RoleName="web-frontend")
    assert services.role_refresh(role=role) is None
    assert not IamRole.objects.filter(pk=role.pk).exists()


def test_old_sync_runs_are_pruned_but_each_account_keeps_its_latest(
    accounts: list[AwsAccount],
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    prod = accounts[0]
    old = sync(prod)
    latest = sync(prod)
    long_ago = timezone.now() - timedelta(days=90)
    SyncRun.objects.filter(pk__in=[old.pk, latest.pk]).update(finished_at=long_ago)
    assert services.sync_history_prune() == 1
    assert list(SyncRun.objects.filter(account=prod)) == [latest]


def test_a_bucket_that_moved_to_another_account_follows_it(accounts: list[AwsAccount]) -> None:
    prod, staging = accounts[0], accounts[1]
    sync(prod)
    s3_prod = aws.client("s3", session=demo.account_session(prod.account_id))
    s3_prod.delete_bucket_policy(Bucket="acme-prod-payments-data")
    s3_prod.delete_bucket(Bucket="acme-prod-payments-data")
    aws.client("s3", session=demo.account_session(staging.account_id)).create_bucket(
        Bucket="acme-prod-payments-data"
    )

    run = sync(staging)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    bucket = CloudResource.objects.get(arn="arn:aws:s3:::acme-prod-payments-data")
    assert bucket.account == staging


def test_pressing_refresh_again_while_one_is_pending_queues_nothing(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(accounts[0])
    queued: list[int] = []
    monkeypatch.setattr("accounts.enqueue.role_refresh", queued.append)
    role = IamRole.objects.get(account=accounts[0], name="web-frontend")
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.role_refresh_request(role=role)
        services.role_refresh_request(role=role)
    assert queued == [role.pk]
