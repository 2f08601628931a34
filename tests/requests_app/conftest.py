"""Accounts in the embedded AWS with iamportal's spoke role, and roles in them, for
the tests of review, apply and expiry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from accounts.services import account_add
from iamportal import aws, demo

ECS_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@pytest.fixture
def account() -> AwsAccount:
    """A member account of the organisation with iamportal's spoke role in it."""
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    status = org.create_account(Email="aws-prod@example.com", AccountName="acme-prod")
    account_id = status["CreateAccountStatus"]["AccountId"]
    demo.spoke_role_create(admin_iam(account_id))
    return account_add(account_id=account_id, name="acme-prod", environment="prod")


def admin_iam(account_id: str) -> Any:
    return aws.client("iam", session=demo.account_session(account_id))


def role_in(account: AwsAccount, name: str, *, in_aws: bool = True) -> IamRole:
    if in_aws:
        admin_iam(account.account_id).create_role(RoleName=name, AssumeRolePolicyDocument=ECS_TRUST)
    return IamRole.objects.create(
        account=account,
        arn=aws.role_arn(account.account_id, name),
        name=name,
        content_hash="x",
        synced_at=timezone.now(),
    )


def account_create(name: str, *, environment: str = "", approvals: int | None = None) -> AwsAccount:
    """Another member account of the organisation (created by the `account` fixture)."""
    org = aws.client("organizations")
    status = org.create_account(Email=f"aws-{name}@example.com", AccountName=name)
    account_id = status["CreateAccountStatus"]["AccountId"]
    demo.spoke_role_create(admin_iam(account_id))
    return account_add(
        account_id=account_id, name=name, environment=environment, approvals_required=approvals
    )


@pytest.fixture
def role(account: AwsAccount) -> IamRole:
    return role_in(account, "payments-api")
