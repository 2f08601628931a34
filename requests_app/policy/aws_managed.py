"""The AWS-managed policies whose documents iamportal knows.

The inventory holds each account's own managed policies, not AWS's: a role's
attached AWS-managed policies are ARNs only (arn:aws:iam::aws:policy/...).
These few broad ones are known by name, their documents reduced to what
iamportal evaluates (the findings' escalation check, which databases a role
may connect to); every other AWS-managed policy is unknown and grants nothing
in those evaluations.
"""

from __future__ import annotations

from typing import Any

_EVERYTHING = {"Effect": "Allow", "Action": "*", "Resource": "*"}

AWS_MANAGED_DOCUMENTS: dict[str, dict[str, Any]] = {
    "AdministratorAccess": {"Version": "2012-10-17", "Statement": [_EVERYTHING]},
    "PowerUserAccess": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "NotAction": ["iam:*", "organizations:*", "account:*"],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": ["iam:CreateServiceLinkedRole", "iam:DeleteServiceLinkedRole"],
                "Resource": "*",
            },
        ],
    },
    "IAMFullAccess": {"Version": "2012-10-17", "Statement": [{**_EVERYTHING, "Action": "iam:*"}]},
}


def aws_managed_name(arn: str) -> str | None:
    """The name of an AWS-managed policy's ARN (its path dropped); None for any
    other ARN."""
    if ":iam::aws:policy/" not in arn:
        return None
    return arn.rsplit("/", 1)[-1]


def aws_managed_document(arn: str) -> dict[str, Any] | None:
    """The document of the AWS-managed policy `arn` when iamportal knows it."""
    name = aws_managed_name(arn)
    return AWS_MANAGED_DOCUMENTS.get(name) if name is not None else None
