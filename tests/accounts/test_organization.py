"""The organisation: OU tree, each account's place in it and the service control
policies that apply, read from the management account of the embedded AWS."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import TestCase

from accounts import selectors, services
from accounts.models import AwsAccount, OrgAccount, OrgNode, ServiceControlPolicy
from accounts.tasks import organization_sync_task
from iamportal import aws, demo

pytestmark = pytest.mark.django_db


@pytest.fixture
def accounts(settings: Any) -> list[AwsAccount]:
    settings.IAMPORTAL_ORG_ACCOUNT_ID = demo.HUB_ACCOUNT_ID
    return demo.accounts_onboard(demo.organisation_seed())


def test_it_is_off_until_the_management_account_is_named(settings: Any, db: None) -> None:
    settings.IAMPORTAL_ORG_ACCOUNT_ID = ""
    demo.organisation_seed()
    assert services.organization_sync() is None
    assert organization_sync_task() is None
    assert not OrgNode.objects.exists()


def test_it_reads_the_ou_tree_and_where_each_account_sits(accounts: list[AwsAccount]) -> None:
    counts = services.organization_sync()
    assert counts is not None
    paths = set(OrgNode.objects.values_list("path", flat=True))
    assert paths == {
        "Root",
        "Root / Workloads",
        "Root / Workloads / Prod",
        "Root / Workloads / NonProd",
    }
    prod, staging, _ = accounts
    assert selectors.account_org_place(account=prod).path == "Root / Workloads / Prod"  # type: ignore[union-attr]
    place = selectors.account_org_place(account=staging)
    assert place is not None
    assert [node.name for node in place.nodes] == ["Root", "Workloads", "NonProd"]
    # The management account is in the organisation too, under the root.
    assert OrgAccount.objects.filter(account_id=demo.HUB_ACCOUNT_ID).exists()
    assert counts["accounts"] == 4


def test_it_lists_the_scps_that_apply_to_an_account_from_the_root_down(
    accounts: list[AwsAccount],
) -> None:
    services.organization_sync()
    prod = accounts[0]
    applied = selectors.scps_for_account(account=prod)
    custom = [a for a in applied if a.policy.name == "deny-leaving-and-root"]
    assert len(custom) == 1
    assert custom[0].attached_to == "Root / Workloads"
    statements = custom[0].document["Statement"]
    assert statements[0] == {
        "Effect": "Deny",
        "Action": "organizations:LeaveOrganization",
        "Resource": "*",
    }
    # AWS attaches FullAWSAccess to the root and to every OU and account; the
    # order follows the tree, the account itself last.
    levels = [a.attached_to for a in applied]
    assert levels[0] == "Root"
    assert levels[-1] == "this account"
    assert levels == sorted(levels, key=lambda label: (label == "this account", len(label)))


def test_an_account_outside_the_organisation_has_no_known_guardrails(
    accounts: list[AwsAccount],
) -> None:
    services.organization_sync()
    stranger = AwsAccount.objects.create(account_id="999999999999", name="stranger")
    assert selectors.account_org_place(account=stranger) is None
    assert selectors.scps_for_account(account=stranger) == []


def test_an_unchanged_resync_of_the_organisation_writes_no_rows(accounts: list[AwsAccount]) -> None:
    first = services.organization_sync()
    assert first is not None and first["written"] > 0
    before = {p.pk: p.synced_at for p in ServiceControlPolicy.objects.all()}
    writes: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        second = services.organization_sync()

    assert second is not None and second["written"] == 0
    assert writes == []
    assert {p.pk: p.synced_at for p in ServiceControlPolicy.objects.all()} == before


def test_a_detached_scp_and_a_moved_account_are_followed(accounts: list[AwsAccount]) -> None:
    services.organization_sync()
    org = aws.client("organizations")
    policy = ServiceControlPolicy.objects.get(name="deny-leaving-and-root")
    workloads = OrgNode.objects.get(name="Workloads")
    org.detach_policy(PolicyId=policy.policy_id, TargetId=workloads.node_id)
    org.delete_policy(PolicyId=policy.policy_id)
    staging = accounts[1]
    nonprod = OrgNode.objects.get(name="NonProd")
    prod_ou = OrgNode.objects.get(name="Prod")
    org.move_account(
        AccountId=staging.account_id,
        SourceParentId=nonprod.node_id,
        DestinationParentId=prod_ou.node_id,
    )

    counts = services.organization_sync()

    assert counts is not None and counts["written"] == 2
    assert not ServiceControlPolicy.objects.filter(name="deny-leaving-and-root").exists()
    assert selectors.account_org_place(account=staging).path == "Root / Workloads / Prod"  # type: ignore[union-attr]
    names = {a.policy.name for a in selectors.scps_for_account(account=staging)}
    assert "deny-leaving-and-root" not in names


def test_a_failed_read_keeps_what_the_last_sync_stored(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    services.organization_sync()
    stored = OrgNode.objects.count()

    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListPolicies")

    aws.on_hub_call("before-call.organizations.ListPolicies", refuse)
    with pytest.raises(ClientError):
        organization_sync_task()

    assert OrgNode.objects.count() == stored
    assert ServiceControlPolicy.objects.exists()


def test_it_reads_through_the_named_role_of_the_management_account(
    accounts: list[AwsAccount], settings: Any
) -> None:
    settings.IAMPORTAL_ORG_ROLE_NAME = "iamportal-org-reader"
    assumed: list[str] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        assumed.append(params["RoleArn"])

    aws.on_hub_call("provide-client-params.sts.AssumeRole", record)
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert services.organization_sync() is not None

    assert assumed == [f"arn:aws:iam::{demo.HUB_ACCOUNT_ID}:role/iamportal-org-reader"]
