"""IAM's limits and AWS's partitions: the numbers every check of a policy,
a role or an ARN counts against, written once.

Sizes of policy documents are in characters of the compact JSON, white space
not counted, as IAM counts them.
"""

from __future__ import annotations

import json
from typing import Any

# Every AWS partition: the commercial regions, China, GovCloud (US), the ISO
# (secret and top secret) regions and the European Sovereign Cloud.
PARTITIONS: tuple[str, ...] = (
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
)
PARTITION_PATTERN = "(?:" + "|".join(PARTITIONS) + ")"
"""A regular expression matching exactly one partition name, to embed in ARN patterns."""

INLINE_POLICIES_MAX_SIZE = 10_240
"""All of a role's inline policies together."""
MANAGED_POLICY_MAX_SIZE = 6144
TRUST_POLICY_MAX_SIZE = 2048  # IAM's default quota for a role's trust policy
RESOURCE_POLICY_MAX_SIZE = {"s3": 20 * 1024, "sqs": 20 * 1024, "sns": 30 * 1024}
POLICY_VERSIONS_MAX = 5
"""Versions a managed policy keeps."""

ARN_MAX_LENGTH = 2048
IAM_PATH_MAX_LENGTH = 512
DESCRIPTION_MAX_LENGTH = 1000
ROLE_TAGS_MAX = 50
ROLE_NAME_MAX_LENGTH = 64
ROLE_MANAGED_POLICIES_MAX = 20
"""Managed policies attached to one role: IAM's highest quota (the default is 10)."""
SESSION_DURATION_MIN = 3600
SESSION_DURATION_MAX = 43_200
"""A role's maximum session duration, in seconds: 1 to 12 hours."""
TAG_KEY_MAX_LENGTH = 128
TAG_VALUE_MAX_LENGTH = 256


def compact_size(document: Any) -> int:
    """The size IAM counts: the document as JSON without whitespace."""
    return len(json.dumps(document, separators=(",", ":")))


def inline_policies_size(policies: dict[str, Any]) -> int:
    """The size of a role's inline policies together, as IAM counts it."""
    return sum(compact_size(document) for document in policies.values())
