"""An account in the embedded AWS with iamportal's spoke role, and a role in it,
for the tests of review, apply and expiry."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.models import AwsAccount, IamRole
from accounts.services import account_add
from iamportal import aws, demo
from tests.factories import admin_iam, make_user, role_in


@pytest.fixture
def account() -> AwsAccount:
    """A member account of the organisation with iamportal's spoke role in it."""
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    status = org.create_account(Email="aws-prod@example.com", AccountName="acme-prod")
    account_id = status["CreateAccountStatus"]["AccountId"]
    demo.spoke_role_create(admin_iam(account_id))
    return account_add(account_id=account_id, name="acme-prod", environment="prod")


@pytest.fixture
def role(account: AwsAccount) -> IamRole:
    return role_in(account, "payments-api")


@pytest.fixture
def second_reviewer() -> User:
    return make_user("sam", "security-reviewers")
