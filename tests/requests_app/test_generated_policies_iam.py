"""Every generated policy is put on a role in the embedded AWS, which rejects
malformed policies the way IAM does, and reads back unchanged. The cases and
the checks against the IAM database are those of tests/policy/test_generate.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iamportal import aws
from requests_app.policy.generate import Intent, policy_generate
from tests.policy.cases import ALL_CASES, CRUD_LEVELS, CRUD_RESOURCES, assert_well_formed

ROLE = "wizard-target"


@pytest.fixture
def iam() -> Any:
    client = aws.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    client.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    return client


def assert_accepted(iam: Any, document: dict[str, Any]) -> None:
    """IAM (here, its stand-in) takes the document, and it reads back unchanged."""
    iam.put_role_policy(RoleName=ROLE, PolicyName="generated", PolicyDocument=json.dumps(document))
    stored = iam.get_role_policy(RoleName=ROLE, PolicyName="generated")["PolicyDocument"]
    assert stored == document


@pytest.mark.parametrize("intent", ALL_CASES)
def test_it_generates_policies_iam_accepts(iam: Any, intent: Intent) -> None:
    document = policy_generate([intent])
    assert_well_formed(document)
    assert_accepted(iam, document)


def test_all_access_levels_of_a_service_fit_in_one_policy(iam: Any) -> None:
    for service, resource in CRUD_RESOURCES.items():
        document = policy_generate(
            [Intent(service, resource, CRUD_LEVELS[service], include_destructive=True)]
        )
        assert_well_formed(document)
        assert_accepted(iam, document)
