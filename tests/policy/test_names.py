"""Default inline policy names: what the policy grants, within IAM's rules."""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.policy.generate import Intent, policy_generate
from requests_app.policy.names import (
    POLICY_NAME,
    POLICY_NAME_MAX_LENGTH,
    policy_name_describe,
    policy_name_sanitise,
)


def allow(actions: Any, resources: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def policy(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(
    ("intent", "name"),
    [
        (
            Intent("s3", "arn:aws:s3:::acme-reports", ("list", "read")),
            "iamportal-s3-read-acme-reports",
        ),
        (Intent("s3", "arn:aws:s3:::acme-reports", ("list",)), "iamportal-s3-list-acme-reports"),
        (
            Intent("s3", "arn:aws:s3:::acme-reports", ("read", "write"), {"prefix": "in/"}),
            "iamportal-s3-write-acme-reports",
        ),
        (
            Intent("sqs", "arn:aws:sqs:us-east-1:123456789012:payments-events", ("send",)),
            "iamportal-sqs-write-payments-events",
        ),
        (
            Intent("sts", "arn:aws:iam::123456789012:role/team/deployer", ("assume-role",)),
            "iamportal-sts-write-deployer",
        ),
    ],
)
def test_a_generated_policy_is_named_by_service_access_level_and_resource(
    intent: Intent, name: str
) -> None:
    assert policy_name_describe(policy_generate([intent])) == name


def test_several_services_and_resources_are_named_in_order() -> None:
    document = policy(
        allow("lambda:GetFunction", "arn:aws:lambda:us-east-1:123456789012:function:settle"),
        allow("s3:GetObject", ["arn:aws:s3:::a/*", "arn:aws:s3:::b/*"]),
    )
    assert policy_name_describe(document) == "iamportal-lambda-s3-read-settle-and-2-more"
    many = policy(*(allow(f"{s}:List*", "*") for s in ("s3", "sqs", "sns", "ec2")))
    # s3:List* holds read-level actions too (ListTagsForResource...): the widest is named.
    assert policy_name_describe(many) == "iamportal-4-services-read"


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "text",
        {},
        policy(),
        {"Statement": None},
        {"Statement": [1, None]},
        policy(allow(5, 7)),
    ],
)
def test_a_policy_that_names_nothing_gets_a_plain_name(document: Any) -> None:
    assert policy_name_describe(document) == "iamportal-policy"


def test_wildcards_and_characters_iam_refuses_never_reach_a_name() -> None:
    document = policy(allow("s3:GetObject", ["arn:aws:s3:::*/x", "arn:aws:s3:::bücket/*"]))
    name = policy_name_describe(document)
    assert name == "iamportal-s3-read-b-cket"
    assert POLICY_NAME.fullmatch(name)
    assert policy_name_sanitise("--a b//c--") == "a-b-c"


def test_a_long_name_is_cut_to_iams_limit() -> None:
    document = policy(allow("s3:GetObject", f"arn:aws:s3:::{'x' * 300}/*"))
    name = policy_name_describe(document)
    assert len(name) == POLICY_NAME_MAX_LENGTH
    assert POLICY_NAME.fullmatch(name)
    assert name.startswith("iamportal-s3-read-xxx")
