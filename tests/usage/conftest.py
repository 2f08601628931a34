"""An account in the embedded AWS with roles whose use the embedded Access
Advisor reports as each test sets it (`embedded_advisor.usage_set`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from accounts.usage import services
from iamportal import aws, embedded_advisor
from tests.factories import account_create, admin_iam, sync

TRUST = json.dumps(
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
DATA = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*"},
    ],
}
EVENTS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}],
}


@pytest.fixture(autouse=True)
def fresh_advisor() -> Iterator[None]:
    embedded_advisor.usage_forget()
    yield
    embedded_advisor.usage_forget()


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(services, "sleep", waits.append)
    return waits


@pytest.fixture
def account(db: None) -> AwsAccount:
    aws.client("organizations").create_organization(FeatureSet="ALL")
    return account_create("acme-prod", environment="prod")


@pytest.fixture
def iam(account: AwsAccount) -> Any:
    iam = admin_iam(account.account_id)
    iam.create_role(RoleName="payments-api", AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(
        RoleName="payments-api", PolicyName="payments-data", PolicyDocument=json.dumps(DATA)
    )
    iam.put_role_policy(
        RoleName="payments-api", PolicyName="payments-events", PolicyDocument=json.dumps(EVENTS)
    )
    return iam


@pytest.fixture
def role(account: AwsAccount, iam: Any) -> IamRole:
    """payments-api, synced, and a year old."""
    sync(account)
    role = IamRole.objects.get(account=account, name="payments-api")
    created = timezone.now() - timedelta(days=365)
    IamRole.objects.filter(pk=role.pk).update(created_in_aws_at=created)
    role.versions.update(recorded_at=created)
    role.refresh_from_db()
    return role
