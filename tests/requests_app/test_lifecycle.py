"""Every change type from submission to AWS and, as temporary access, back out:
submit, approve, apply through the spoke role, check AWS; then the expiry sweep
removes it and AWS is as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import TestCase
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource, IamRole, ManagedPolicy
from requests_app import services, tasks
from requests_app.models import Change, PolicyRequest
from tests.factories import ECS_TRUST, admin_client, admin_iam, inline_names

pytestmark = pytest.mark.django_db

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
ALLOW_GET = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}],
}
ALLOW_LIST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"}],
}


def inventory_role(role: IamRole) -> None:
    """The inventory as a sync would leave it."""
    from accounts.services import role_refresh

    role_refresh(role=role)
    role.refresh_from_db()


def trust_of(role: IamRole) -> dict[str, Any]:
    return admin_iam(role.account.account_id).get_role(RoleName=role.name)["Role"][
        "AssumeRolePolicyDocument"
    ]


def sids(document: dict[str, Any]) -> list[str]:
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    return [str(s.get("Sid", "")) for s in statements]


@dataclass
class Case:
    """One change type: what exists first, the change, and how AWS looks after
    apply and after expiry."""

    setup: Callable[[IamRole, AwsAccount], None]
    change: Callable[[IamRole, AwsAccount], dict[str, Any]]
    applied: Callable[[IamRole, AwsAccount], None]
    reverted: Callable[[IamRole, AwsAccount], None]


def nothing(role: IamRole, other: AwsAccount) -> None:
    pass


def attached(role: IamRole) -> list[str]:
    iam = admin_iam(role.account.account_id)
    found = iam.list_attached_role_policies(RoleName=role.name)["AttachedPolicies"]
    return [p["PolicyArn"] for p in found]


def tags_of(role: IamRole) -> dict[str, str]:
    iam = admin_iam(role.account.account_id)
    return {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role.name)["Tags"]}


def boundary_of(role: IamRole) -> str | None:
    got = admin_iam(role.account.account_id).get_role(RoleName=role.name)["Role"]
    return got.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")


def put_old_inline(role: IamRole, other: AwsAccount) -> None:
    admin_iam(role.account.account_id).put_role_policy(
        RoleName=role.name, PolicyName="old", PolicyDocument=json.dumps(ALLOW_LIST)
    )
    inventory_role(role)


def attach_shared(role: IamRole, other: AwsAccount) -> None:
    customer_policy(role, other)
    admin_iam(role.account.account_id).attach_role_policy(
        RoleName=role.name, PolicyArn=policy_arn(role, "shared-read")
    )
    inventory_role(role)


def tag_team(role: IamRole, other: AwsAccount) -> None:
    admin_iam(role.account.account_id).tag_role(
        RoleName=role.name, Tags=[{"Key": "team", "Value": "payments"}]
    )
    inventory_role(role)


def set_boundary(role: IamRole, other: AwsAccount) -> None:
    admin_iam(role.account.account_id).put_role_permissions_boundary(
        RoleName=role.name, PermissionsBoundary=READ_ONLY
    )
    inventory_role(role)


def policy_arn(role: IamRole, name: str) -> str:
    return f"arn:aws:iam::{role.account.account_id}:policy/{name}"


def customer_policy(role: IamRole, other: AwsAccount) -> None:
    iam = admin_iam(role.account.account_id)
    created = iam.create_policy(PolicyName="shared-read", PolicyDocument=json.dumps(ALLOW_LIST))
    ManagedPolicy.objects.create(
        account=role.account,
        arn=created["Policy"]["Arn"],
        name="shared-read",
        default_version_id="v1",
        document=ALLOW_LIST,
        content_hash="x",
        synced_at=timezone.now(),
    )


def default_document(role: IamRole, name: str) -> Any:
    iam = admin_iam(role.account.account_id)
    arn = policy_arn(role, name)
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def policy_exists(role: IamRole, name: str) -> bool:
    names = admin_iam(role.account.account_id).list_policies(Scope="Local")["Policies"]
    return any(p["PolicyName"] == name for p in names)


def bucket(role: IamRole, other: AwsAccount) -> None:
    admin_client(other.account_id, "s3").create_bucket(Bucket="acme-exports")
    CloudResource.objects.create(
        account=other,
        arn="arn:aws:s3:::acme-exports",
        name="acme-exports",
        type=CloudResource.Type.S3,
        region="us-east-1",
        content_hash="x",
        synced_at=timezone.now(),
    )


def bucket_policy(other: AwsAccount) -> dict[str, Any] | None:
    s3 = admin_client(other.account_id, "s3")
    try:
        return dict(json.loads(s3.get_bucket_policy(Bucket="acme-exports")["Policy"]))
    except s3.exceptions.ClientError:
        return None


def inventory_resource(other: AwsAccount, arn: str, kind: CloudResource.Type) -> None:
    CloudResource.objects.create(
        account=other,
        arn=arn,
        name=arn.rsplit(":", 1)[-1],
        type=kind,
        region="us-east-1",
        content_hash="x",
        synced_at=timezone.now(),
    )


def queue(role: IamRole, other: AwsAccount) -> None:
    admin_client(other.account_id, "sqs").create_queue(QueueName="exports")
    inventory_resource(other, queue_arn(other), CloudResource.Type.SQS)


def queue_arn(other: AwsAccount) -> str:
    return f"arn:aws:sqs:us-east-1:{other.account_id}:exports"


def queue_policy(other: AwsAccount) -> dict[str, Any] | None:
    sqs = admin_client(other.account_id, "sqs")
    url = sqs.get_queue_url(QueueName="exports")["QueueUrl"]
    text = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
    policy = text.get("Attributes", {}).get("Policy")
    return dict(json.loads(policy)) if policy else None


def topic(role: IamRole, other: AwsAccount) -> None:
    admin_client(other.account_id, "sns").create_topic(Name="exports")
    inventory_resource(other, topic_arn(other), CloudResource.Type.SNS)


def topic_arn(other: AwsAccount) -> str:
    return f"arn:aws:sns:us-east-1:{other.account_id}:exports"


def topic_policy(other: AwsAccount) -> dict[str, Any]:
    attributes = admin_client(other.account_id, "sns").get_topic_attributes(
        TopicArn=topic_arn(other)
    )
    return dict(json.loads(attributes["Attributes"]["Policy"]))


def grant(role: IamRole, *actions: str, resource: str | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": "Grant",
        "Effect": "Allow",
        "Principal": {"AWS": role.arn},
        "Action": list(actions),
    }
    if resource:
        statement["Resource"] = resource
    return statement


CASES: dict[str, Case] = {
    "inline_policy_put": Case(
        setup=nothing,
        change=lambda role, other: {
            "type": "inline_policy_put",
            "payload": {"policy_name": "exports", "document": ALLOW_GET},
        },
        applied=lambda role, other: assert_equal(inline_names(role), ["exports"]),
        reverted=lambda role, other: assert_equal(inline_names(role), []),
    ),
    "inline_policy_delete": Case(
        setup=put_old_inline,
        change=lambda role, other: {
            "type": "inline_policy_delete",
            "payload": {"policy_name": "old"},
        },
        applied=lambda role, other: assert_equal(inline_names(role), []),
        reverted=lambda role, other: assert_equal(inline_names(role), ["old"]),
    ),
    "managed_policy_attach": Case(
        setup=customer_policy,
        change=lambda role, other: {
            "type": "managed_policy_attach",
            "payload": {"policy_arn": policy_arn(role, "shared-read")},
        },
        applied=lambda role, other: assert_equal(attached(role), [policy_arn(role, "shared-read")]),
        reverted=lambda role, other: assert_equal(attached(role), []),
    ),
    "managed_policy_detach": Case(
        setup=attach_shared,
        change=lambda role, other: {
            "type": "managed_policy_detach",
            "payload": {"policy_arn": policy_arn(role, "shared-read")},
        },
        applied=lambda role, other: assert_equal(attached(role), []),
        reverted=lambda role, other: assert_equal(
            attached(role), [policy_arn(role, "shared-read")]
        ),
    ),
    "trust_policy_update": Case(
        setup=nothing,
        change=lambda role, other: {
            "type": "trust_policy_update",
            "payload": {
                "statements": [
                    {
                        "Sid": "BatchJobs",
                        "Effect": "Allow",
                        "Principal": {"Service": "batch.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ]
            },
        },
        applied=lambda role, other: assert_equal(sids(trust_of(role)), ["", "BatchJobs"]),
        reverted=lambda role, other: assert_equal(sids(trust_of(role)), [""]),
    ),
    "tags_put": Case(
        setup=tag_team,
        change=lambda role, other: {
            "type": "tags_put",
            "payload": {"tags": {"team": "billing", "cost-centre": "42"}},
        },
        applied=lambda role, other: assert_equal(
            tags_of(role), {"team": "billing", "cost-centre": "42"}
        ),
        reverted=lambda role, other: assert_equal(tags_of(role), {"team": "payments"}),
    ),
    "tags_delete": Case(
        setup=tag_team,
        change=lambda role, other: {"type": "tags_delete", "payload": {"keys": ["team"]}},
        applied=lambda role, other: assert_equal(tags_of(role), {}),
        reverted=lambda role, other: assert_equal(tags_of(role), {"team": "payments"}),
    ),
    "permissions_boundary_put": Case(
        setup=nothing,
        change=lambda role, other: {
            "type": "permissions_boundary_put",
            "payload": {"policy_arn": READ_ONLY},
        },
        applied=lambda role, other: assert_equal(boundary_of(role), READ_ONLY),
        reverted=lambda role, other: assert_equal(boundary_of(role), None),
    ),
    "permissions_boundary_delete": Case(
        setup=set_boundary,
        change=lambda role, other: {"type": "permissions_boundary_delete", "payload": {}},
        applied=lambda role, other: assert_equal(boundary_of(role), None),
        reverted=lambda role, other: assert_equal(boundary_of(role), READ_ONLY),
    ),
    "managed_policy_create": Case(
        setup=nothing,
        change=lambda role, other: {
            "type": "managed_policy_create",
            "target_arn": policy_arn(role, "exports-read"),
            "payload": {"document": ALLOW_GET, "description": "Read the exports."},
        },
        applied=lambda role, other: assert_equal(default_document(role, "exports-read"), ALLOW_GET),
        reverted=lambda role, other: assert_equal(policy_exists(role, "exports-read"), False),
    ),
    "managed_policy_version": Case(
        setup=customer_policy,
        change=lambda role, other: {
            "type": "managed_policy_version",
            "target_arn": policy_arn(role, "shared-read"),
            "payload": {"document": ALLOW_GET},
        },
        applied=lambda role, other: assert_equal(default_document(role, "shared-read"), ALLOW_GET),
        reverted=lambda role, other: assert_equal(
            default_document(role, "shared-read"), ALLOW_LIST
        ),
    ),
    "resource_policy_put (S3)": Case(
        setup=bucket,
        change=lambda role, other: {
            "type": "resource_policy_put",
            "target_arn": "arn:aws:s3:::acme-exports",
            "payload": {
                "statements": [grant(role, "s3:GetObject", resource="arn:aws:s3:::acme-exports/*")]
            },
        },
        applied=lambda role, other: assert_equal(sids(bucket_policy(other) or {}), ["Grant"]),
        reverted=lambda role, other: assert_equal(bucket_policy(other), None),
    ),
    "resource_policy_put (SQS)": Case(
        setup=queue,
        change=lambda role, other: {
            "type": "resource_policy_put",
            "target_arn": queue_arn(other),
            "payload": {
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [grant(role, "sqs:SendMessage", resource=queue_arn(other))],
                }
            },
        },
        applied=lambda role, other: assert_equal(sids(queue_policy(other) or {}), ["Grant"]),
        reverted=lambda role, other: assert_equal(queue_policy(other), None),
    ),
    "resource_policy_put (SNS)": Case(
        setup=topic,
        change=lambda role, other: {
            "type": "resource_policy_put",
            "target_arn": topic_arn(other),
            "payload": {"statements": [grant(role, "sns:Publish", resource=topic_arn(other))]},
        },
        applied=lambda role, other: assert_equal("Grant" in sids(topic_policy(other)), True),
        reverted=lambda role, other: assert_equal("Grant" in sids(topic_policy(other)), False),
    ),
    "role_update": Case(
        setup=lambda role, other: inventory_role(role),
        change=lambda role, other: {
            "type": "role_update",
            "target_arn": role.arn,
            "payload": {"description": "Payments API", "max_session_duration": 7200},
        },
        applied=lambda role, other: assert_equal(settings_of(role), ("Payments API", 7200)),
        reverted=lambda role, other: assert_equal(settings_of(role), ("", 3600)),
    ),
    "role_delete": Case(
        setup=lambda role, other: inventory_role(role),
        change=lambda role, other: {
            "type": "role_delete",
            "target_arn": role.arn,
            "payload": {"confirmation": role.name},
        },
        applied=lambda role, other: assert_equal(role_names(role), []),
        # A temporary deletion: the role comes back as it was, trust policy and all.
        reverted=lambda role, other: assert_equal(trust_of(role), json.loads(ECS_TRUST)),
    ),
}


def settings_of(role: IamRole) -> tuple[str, int]:
    got = admin_iam(role.account.account_id).get_role(RoleName=role.name)["Role"]
    return got.get("Description", ""), got["MaxSessionDuration"]


def role_names(role: IamRole) -> list[str]:
    roles = admin_iam(role.account.account_id).list_roles()["Roles"]
    return [r["RoleName"] for r in roles if r["RoleName"] == role.name]


def assert_equal(got: Any, expected: Any) -> None:
    assert got == expected


def test_every_change_type_has_a_lifecycle_case() -> None:
    # A creation has no role to name yet: its life is in test_role_lifecycle.py.
    covered = {name.split(" ")[0] for name in CASES} | {"role_create"}
    # Access to a role changes nothing in AWS: test_access_requests follows it
    # from submit to expiry.
    assert covered == set(Change.Type.values) - {Change.Type.ROLE_ACCESS_GRANT}


@pytest.mark.parametrize("name", list(CASES))
def test_a_temporary_change_is_applied_then_removed_at_expiry(
    name: str, requester: User, reviewer: User, role: IamRole
) -> None:
    case = CASES[name]
    # A request changes its role's account: buckets, queues and topics are there too.
    other = role.account
    case.setup(role, other)
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = services.policy_request_changes_submit(
            requester=requester,
            role=role,
            changes=[case.change(role, other)],
            justification="Quarterly export.",
            expires_at=timezone.now() + timedelta(hours=8),
            # Removing the boundary is an error finding: acknowledged at both ends.
            findings_acknowledgement="For the export only.",
        )
    assert isinstance(request, PolicyRequest)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=request.pk,
            reviewer=reviewer,
            revision=request.revision,
            findings_acknowledged=True,
        )
    request.refresh_from_db()
    change = request.changes.get()
    assert (request.status, change.status, change.error) == ("applied", "applied", "")
    case.applied(role, other)

    PolicyRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now())
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.policy_requests_expiry_sweep_task() == 1
    request.refresh_from_db()
    change.refresh_from_db()
    assert (request.status, change.status) == ("expired", "reverted")
    assert request.events.filter(kind="expired").exists()
    case.reverted(role, other)
