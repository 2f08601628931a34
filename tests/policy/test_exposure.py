"""Whether a resource policy makes its resource public."""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.policy.exposure import policy_is_public


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(principal: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject", **extra}


@pytest.mark.parametrize(
    "document",
    [
        policy(allow("*")),
        policy(allow({"AWS": "*"})),
        policy(allow({"AWS": ["arn:aws:iam::123456789012:root", "*"]})),
        policy(allow({"CanonicalUser": "*"})),
        # A condition, but not one that narrows who may call.
        policy(allow("*", Condition={"Bool": {"aws:SecureTransport": "true"}})),
        {"Statement": allow("*")},  # a single statement, not in a list
        policy(
            {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:root"}},
        ),
        policy(allow({"AWS": "arn:aws:iam::123456789012:root"}), allow("*")),
    ],
)
def test_public(document: Any) -> None:
    assert policy_is_public(document) is True


@pytest.mark.parametrize(
    "document",
    [
        None,
        {},
        "not a policy",
        policy(),
        policy(allow({"AWS": "arn:aws:iam::123456789012:root"})),
        policy(allow({"Service": "cloudtrail.amazonaws.com"})),
        policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*"}),
        policy(allow("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc"}})),
        policy(allow("*", Condition={"ArnLike": {"AWS:SourceArn": "arn:aws:sns:*:1:t"}})),
        policy(allow("*", Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})),
        policy(allow("*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
        {"Statement": "nonsense"},
        policy("not a statement"),  # type: ignore[arg-type]
    ],
)
def test_not_public(document: Any) -> None:
    assert policy_is_public(document) is False
