"""Onboarding from the command line."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command

from accounts.models import AwsAccount
from iamportal import aws

pytestmark = pytest.mark.django_db


def test_account_add_onboards_an_account() -> None:
    out = StringIO()
    call_command(
        "account_add",
        "111122223333",
        "--name",
        "payments-prod",
        "--environment",
        "prod",
        "--regions",
        "us-east-1, eu-west-1",
        stdout=out,
    )
    account = AwsAccount.objects.get(account_id="111122223333")
    assert account.name == "payments-prod"
    assert account.regions == ["us-east-1", "eu-west-1"]
    assert "arn:aws:iam::111122223333:role/iamportal-spoke" in out.getvalue()


def test_account_add_again_updates_instead_of_duplicating() -> None:
    call_command("account_add", "111122223333", "--name", "old", stdout=StringIO())
    call_command("account_add", "111122223333", "--name", "new", stdout=StringIO())
    assert list(AwsAccount.objects.values_list("name", flat=True)) == ["new"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["12345", "--name", "x"], "exactly 12 digits"),
        (["111122223333", "--name", "x", "--spoke-role-name", "bad role!"], "IAM role name"),
    ],
)
def test_account_add_rejects_bad_input_with_a_clear_message(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("account_add", *args, stdout=StringIO())
    assert not AwsAccount.objects.exists()


def test_accounts_discover_lists_the_organisation_and_adds_new_accounts() -> None:
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    created = org.create_account(Email="a@example.com", AccountName="payments-dev")[
        "CreateAccountStatus"
    ]["AccountId"]
    out = StringIO()
    call_command("accounts_discover", stdout=out)
    assert created in out.getvalue()
    assert "payments-dev" in out.getvalue()
    assert not AwsAccount.objects.filter(account_id=created).exists()

    call_command("accounts_discover", "--add", stdout=StringIO())
    assert AwsAccount.objects.get(account_id=created).name == "payments-dev"


def test_accounts_discover_explains_when_aws_refuses() -> None:
    def refuse(**kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not the management account"}},
            "ListAccounts",
        )

    aws.on_hub_call("provide-client-params.organizations.ListAccounts", refuse)
    with pytest.raises(CommandError, match="Could not list the organization: AccessDenied"):
        call_command("accounts_discover", stdout=StringIO())
