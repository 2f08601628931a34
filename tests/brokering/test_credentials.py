"""Issuing credentials: session name, duration, source-IP session policy, audit."""

from __future__ import annotations

import json
from ipaddress import ip_network
from typing import Any

import pytest
from django.contrib.auth.models import User

from brokering import services
from brokering.models import CredentialIssuance
from iamportal import aws
from tests.factories import Org

pytestmark = pytest.mark.django_db


def issue(user: User, org: Org, **kwargs: Any) -> services.IssuedCredentials:
    return services.credentials_issue(
        user=user, role=org.roles["prod/payments-api"], kind="cli", source_ip="10.0.0.9", **kwargs
    )


def test_the_session_is_named_after_the_user_and_capped_by_the_role(
    requester: User, org: Org, assume_calls: list[dict[str, Any]], settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_DURATION_SECONDS = 43200
    issued = issue(requester, org)
    assert assume_calls[0]["RoleSessionName"] == "alice@example.com"
    assert assume_calls[0]["DurationSeconds"] == 7200  # the role's maximum
    assert "Policy" not in assume_calls[0]
    assert issued.expiration_epoch > 0
    assert issued.secret_access_key not in repr(issued)
    assert issued.session_token not in repr(issued)


def test_session_names_are_valid_for_sts() -> None:
    user = User(username="x", email="o'brien+ops/dev@example.com")
    assert services.session_name_for(user) == "o-brien+ops-dev@example.com"
    assert len(services.session_name_for(User(username="y", email="a" * 100 + "@x.io"))) == 64


def test_allowed_networks_add_a_session_policy_denying_other_addresses(
    requester: User, org: Org, assume_calls: list[dict[str, Any]], settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_ALLOWED_CIDRS = [
        ip_network("10.0.0.0/8"),
        ip_network("2001:db8::/32"),
    ]
    issue(requester, org)
    policy = json.loads(assume_calls[0]["Policy"])
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Action"] == "*"
    assert deny["Condition"]["NotIpAddress"]["aws:SourceIp"] == ["10.0.0.0/8", "2001:db8::/32"]
    assert deny["Condition"]["Bool"]["aws:ViaAWSService"] == "false"
    allow = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert allow["Action"] == "*"
    assert CredentialIssuance.objects.get().ip_restricted


def test_no_ip_restrictions_is_honoured_only_when_allowed(
    requester: User, org: Org, assume_calls: list[dict[str, Any]], settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_ALLOWED_CIDRS = [ip_network("10.0.0.0/8")]
    issue(requester, org, no_ip_restrictions=True)
    assert "Policy" in assume_calls[-1]
    settings.IAMPORTAL_ALLOW_NO_IP_RESTRICTIONS = True
    issue(requester, org, no_ip_restrictions=True)
    assert "Policy" not in assume_calls[-1]


def test_an_aws_refusal_is_a_credential_error_and_audited(requester: User, org: Org) -> None:
    from botocore.exceptions import ClientError

    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "trust"}}, "AssumeRole")

    aws.on_hub_call("provide-client-params.sts.AssumeRole", refuse)
    with pytest.raises(services.CredentialError, match="AccessDenied"):
        issue(requester, org)
    row = CredentialIssuance.objects.get()
    assert row.outcome == "failed"
    assert "AccessDenied" in row.error


@pytest.mark.parametrize(
    "redirect",
    [
        "http://console.aws.amazon.com/",
        "https://evil.example/",
        "https://console.aws.amazon.com.evil.example/",
        "https://user:pw@console.aws.amazon.com/",
        "//evil.example",
        "javascript:alert(1)",
        "https://console.aws.amazon.com:8443/",
    ],
)
def test_console_redirects_must_be_aws_console_urls(redirect: str) -> None:
    with pytest.raises(services.BadDestination):
        services.console_destination(redirect)


def test_console_deep_links_and_the_default_destination(settings: Any) -> None:
    settings.IAMPORTAL_CONSOLE_REGION = "eu-west-1"
    assert services.console_destination(None) == (
        "https://eu-west-1.console.aws.amazon.com/console/home?region=eu-west-1"
    )
    link = "https://us-east-1.console.aws.amazon.com/s3/buckets/acme?region=us-east-1"
    assert services.console_destination(link) == link


def test_long_expired_cli_challenges_are_pruned() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from brokering.models import CliChallenge
    from brokering.tasks import cli_challenges_prune_task

    now = timezone.now()
    old = CliChallenge.objects.create(
        requested_user="a", requesting_ip="10.0.0.1", expires_at=now - timedelta(days=2)
    )
    fresh = CliChallenge.objects.create(
        requested_user="a", requesting_ip="10.0.0.1", expires_at=now - timedelta(minutes=5)
    )
    assert cli_challenges_prune_task() == 1
    assert list(CliChallenge.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert old.pk != fresh.pk


def test_a_flood_of_refused_requests_does_not_grow_the_audit_without_bound(
    requester: User, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 2
    for _ in range(20):
        services.issuance_denied(
            user=requester, requested="nope", kind="cli", source_ip=None, user_agent="", reason="x"
        )
    assert CredentialIssuance.objects.count() == 8
