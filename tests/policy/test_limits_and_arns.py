"""One list of partitions and one pattern built from it, used by every check of
an ARN: the exact patterns of what iamportal changes, lint and generation."""

from __future__ import annotations

import re

import pytest

from requests_app.policy.arns import BUCKET_ARN, POLICY_ARN, QUEUE_OR_TOPIC_ARN, ROLE_ARN
from requests_app.policy.generate import Intent, IntentError, policy_generate
from requests_app.policy.limits import PARTITION_PATTERN, PARTITIONS
from requests_app.policy.lint import policy_lint

ACCOUNT = "123456789012"
NOT_PARTITIONS = ["", "AWS", "aws-", "awsx", "aws-foo", "aws-iso-x", "aws-us-gov-2", "aws-cn "]


def test_the_partitions_are_every_aws_partition() -> None:
    assert set(PARTITIONS) >= {
        "aws",
        "aws-cn",
        "aws-us-gov",
        "aws-iso",
        "aws-iso-b",
        "aws-iso-e",
        "aws-iso-f",
    }
    assert len(set(PARTITIONS)) == len(PARTITIONS)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_the_pattern_matches_each_partition_exactly(partition: str) -> None:
    assert re.fullmatch(PARTITION_PATTERN, partition)
    assert re.fullmatch(rf"arn:{PARTITION_PATTERN}:s3", f"arn:{partition}:s3")


@pytest.mark.parametrize("text", NOT_PARTITIONS)
def test_the_pattern_matches_nothing_else(text: str) -> None:
    assert not re.fullmatch(PARTITION_PATTERN, text)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_the_arns_iamportal_changes_may_be_in_any_partition(partition: str) -> None:
    role = ROLE_ARN.fullmatch(f"arn:{partition}:iam::{ACCOUNT}:role/team/payments-api")
    assert role is not None
    assert role.groups() == (partition, ACCOUNT, "/team/", "payments-api")
    policy = POLICY_ARN.fullmatch(f"arn:{partition}:iam::aws:policy/ReadOnlyAccess")
    assert policy is not None
    assert policy.groups() == (partition, "aws", "/", "ReadOnlyAccess")
    bucket = BUCKET_ARN.fullmatch(f"arn:{partition}:s3:::acme-invoices")
    assert bucket is not None
    assert bucket.groups() == (partition, "acme-invoices")
    queue = QUEUE_OR_TOPIC_ARN.fullmatch(f"arn:{partition}:sqs:us-gov-west-1:{ACCOUNT}:jobs")
    assert queue is not None
    assert queue.groups() == (partition, "sqs", "us-gov-west-1", ACCOUNT, "jobs")


@pytest.mark.parametrize("partition", NOT_PARTITIONS)
def test_the_arns_iamportal_changes_are_refused_in_a_made_up_partition(partition: str) -> None:
    assert ROLE_ARN.fullmatch(f"arn:{partition}:iam::{ACCOUNT}:role/payments-api") is None
    assert POLICY_ARN.fullmatch(f"arn:{partition}:iam::{ACCOUNT}:policy/read") is None
    assert BUCKET_ARN.fullmatch(f"arn:{partition}:s3:::acme-invoices") is None
    assert QUEUE_OR_TOPIC_ARN.fullmatch(f"arn:{partition}:sns:us-east-1:{ACCOUNT}:t") is None


@pytest.mark.parametrize("partition", PARTITIONS)
def test_lint_and_generation_accept_every_partition(partition: str) -> None:
    bucket = f"arn:{partition}:s3:::acme-invoices"
    document = policy_generate([Intent("s3", bucket, ["read"])])
    assert all(
        resource.startswith(f"arn:{partition}:")
        for s in document["Statement"]
        for resource in s["Resource"]
    )
    assert "malformed-arn" not in {finding.code for finding in policy_lint(document)}


def test_lint_and_generation_refuse_a_made_up_partition() -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws-foo:s3:::a/*"}
        ],
    }
    (finding,) = [f for f in policy_lint(document) if f.code == "malformed-arn"]
    assert f"the partition must be one of {', '.join(PARTITIONS)}" in finding.detail
    with pytest.raises(IntentError) as refused:
        policy_generate([Intent("s3", "arn:aws-foo:s3:::acme-invoices", ["read"])])
    assert refused.value.field == "resource"
    with pytest.raises(IntentError) as refused:
        instance = f"arn:aws-foo:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"
        policy_generate([Intent("ec2", instance, ["read"])])
    assert refused.value.message == "Unknown partition 'aws-foo'."
