"""A small inventory with access tags and rules, shared by the brokering tests.

alice (requester, team-payments) may use: prod and dev payments-api (console and
CLI), prod payments-batch (CLI only, by tag), prod web-frontend (her email is in
its tag). rita (reviewer) and oscar (outsider) may use none of these; admin
(iamportal-admins) may use prod break-glass through an access rule.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from brokering.models import AccessRule
from brokering.services import access_rule_save
from iamportal import aws
from tests.factories import DEV, PROD, Org, account_create, role_in


def _role(account: AwsAccount, name: str, tags: dict[str, str], path: str = "/") -> IamRole:
    return IamRole.objects.create(
        account=account,
        arn=f"arn:aws:iam::{account.account_id}:role{path}{name}",
        name=name,
        path=path,
        tags=tags,
        max_session_duration=7200,
        content_hash="test",
        synced_at=timezone.now(),
    )


@pytest.fixture
def org(db: None) -> Org:
    prod = AwsAccount.objects.create(account_id=PROD, name="acme-prod", environment="prod")
    dev = AwsAccount.objects.create(account_id=DEV, name="acme-dev", environment="dev")
    roles = {
        "prod/payments-api": _role(
            prod, "payments-api", {"iamportal-authorized": "team-payments"}, "/service/"
        ),
        "prod/payments-batch": _role(
            prod, "payments-batch", {"iamportal-authorized-cli-only": "team-payments"}, "/service/"
        ),
        "prod/web-frontend": _role(
            prod, "web-frontend", {"iamportal-authorized": "team-web:alice@example.com"}
        ),
        "prod/ReadOnly": _role(prod, "ReadOnly", {"iamportal-authorized": "engineering"}),
        "prod/break-glass": _role(prod, "break-glass", {}),
        "dev/payments-api": _role(
            dev, "payments-api", {"iamportal-authorized": "team-payments"}, "/service/"
        ),
        "dev/ReadOnly": _role(dev, "ReadOnly", {"iamportal-authorized": "engineering"}),
    }
    admins = Group.objects.get_or_create(name="iamportal-admins")[0]
    access_rule_save(
        rule=AccessRule(group=admins, role_pattern=f"arn:aws:iam::{PROD}:role/break-*")
    )
    return Org(prod=prod, dev=dev, roles=roles)


@pytest.fixture
def rate_clock_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credential rate limit reads a clock that does not move during the test,
    so its Retry-After is exact however long the requests before it took."""
    from brokering import services

    stopped = timezone.now()
    monkeypatch.setattr(services, "timezone", SimpleNamespace(now=lambda: stopped))


@pytest.fixture
def account(db: None) -> AwsAccount:
    """An account in the embedded AWS with iamportal's spoke role in it."""
    aws.client("organizations").create_organization(FeatureSet="ALL")
    return account_create("acme-prod", environment="prod")


@pytest.fixture
def role(account: AwsAccount) -> IamRole:
    """A role of `account`, in AWS and in the inventory, whose sessions last up to 2 h."""
    role = role_in(account, "payments-api")
    role.max_session_duration = 7200
    role.save(update_fields=["max_session_duration"])
    return role
