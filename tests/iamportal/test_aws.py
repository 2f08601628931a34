"""The AWS boundary: spoke sessions, their cache, the endpoint override and retries."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AwsAccount
from iamportal import aws

pytestmark = pytest.mark.django_db


def test_spoke_credentials_are_reused_until_near_expiry(assume_calls: list[dict[str, Any]]) -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="prod")
    first = aws.spoke_session(account)
    second = aws.spoke_session(account)
    assert first is second
    assert len(assume_calls) == 1
    assert assume_calls[0]["RoleArn"] == "arn:aws:iam::111122223333:role/iamportal-spoke"
    identity = aws.client("sts", session=first).get_caller_identity()
    assert identity["Account"] == "111122223333"


def test_expired_spoke_credentials_are_renewed(assume_calls: list[dict[str, Any]]) -> None:
    from datetime import UTC, datetime, timedelta

    account = AwsAccount.objects.create(account_id="111122223333", name="prod")
    aws.spoke_session(account)
    for cached in aws._spokes.values():
        cached.expires_at = datetime.now(UTC) + timedelta(minutes=2)
    aws.spoke_session(account)
    assert len(assume_calls) == 2


def test_the_external_id_and_role_name_come_from_the_account_or_the_settings(
    assume_calls: list[dict[str, Any]], settings: Any
) -> None:
    settings.IAMPORTAL_SPOKE_EXTERNAL_ID = "org-wide-secret"
    plain = AwsAccount.objects.create(account_id="111122223333", name="a")
    special = AwsAccount.objects.create(
        account_id="444455556666", name="b", spoke_role_name="legacy-reader", external_id="own"
    )
    aws.spoke_session(plain)
    aws.spoke_session(special)
    assert assume_calls[0]["ExternalId"] == "org-wide-secret"
    assert assume_calls[1]["ExternalId"] == "own"
    assert assume_calls[1]["RoleArn"] == "arn:aws:iam::444455556666:role/legacy-reader"


def test_clients_honour_the_endpoint_override_and_retry_policy(settings: Any) -> None:
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:4566"
    settings.AWS_MAX_ATTEMPTS = 4
    client = aws.client("iam")
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 4}
    assert client.meta.config.s3 == {"addressing_style": "path"}
    settings.AWS_ENDPOINT_URL = None
    assert aws.client("sqs", region="eu-west-1").meta.endpoint_url == (
        "https://sqs.eu-west-1.amazonaws.com"
    )
