"""Read an account's inventory from AWS into plain row dicts.

Nothing here touches the database: `services.account_sync_run` writes what these
functions return, and `bench/sync.py` times them alone to know what the bare
AWS calls of a sync cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from iamportal import aws

Row = dict[str, Any]
# Called between AWS calls: it raises to stop a sync (its deadline passed, or
# its lease was taken over) and renews the lease of a long one.
Checkpoint = Callable[[], None]

# One resource whose details could not be read: throttled past the retries, a
# 5xx, AccessDenied on its policy, a connection reset...
READ_ERRORS = (ClientError, BotoCoreError)


def no_checkpoint() -> None:
    pass


@dataclass
class Inventory:
    roles: list[Row] = field(default_factory=list)
    policies: list[Row] = field(default_factory=list)
    resources: list[Row] = field(default_factory=list)
    # Resources that were listed but whose details could not be read: what is
    # known of them (arn, name, type, region) and the error. The write keeps
    # their previous rows instead of deleting them as vanished.
    unreadable: list[Row] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def unreadable_add(self, *, kind: str, label: str, row: Row, exc: BaseException) -> None:
        error = describe_error(exc)
        self.unreadable.append({**row, "error": error})
        self.warnings.append(f"{kind} {label}: {error}")


class ForeignRowError(Exception):
    """AWS answered with an object of another account: the spoke role points elsewhere."""


def policy_document(raw: Any) -> Any:
    """IAM returns documents URL-encoded; botocore usually decodes them already."""
    if raw is None or isinstance(raw, dict | list):
        return raw
    text = str(raw)
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


def _day(value: datetime | None) -> date | None:
    return value.astimezone(UTC).date() if value else None


def _tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def role_row(detail: dict[str, Any], listed: dict[str, Any] | None = None) -> Row:
    """One role, from a GetAccountAuthorizationDetails entry (plus ListRoles fields)."""
    listed = listed or {}
    last_used = detail.get("RoleLastUsed") or {}
    boundary = detail.get("PermissionsBoundary") or {}
    return {
        "arn": detail["Arn"],
        "name": detail["RoleName"],
        "role_id": detail.get("RoleId", ""),
        "path": detail.get("Path", "/"),
        "description": listed.get("Description", detail.get("Description", "")) or "",
        "trust_policy": policy_document(detail.get("AssumeRolePolicyDocument")) or {},
        "inline_policies": {
            p["PolicyName"]: policy_document(p["PolicyDocument"])
            for p in sorted(detail.get("RolePolicyList") or [], key=lambda p: p["PolicyName"])
        },
        "managed_policies": [
            {"arn": p["PolicyArn"], "name": p["PolicyName"]}
            for p in sorted(
                detail.get("AttachedManagedPolicies") or [], key=lambda p: p["PolicyArn"]
            )
        ],
        "permissions_boundary_arn": boundary.get("PermissionsBoundaryArn", ""),
        "max_session_duration": int(
            listed.get("MaxSessionDuration", detail.get("MaxSessionDuration", 3600))
        ),
        "tags": _tags(detail.get("Tags")),
        "created_in_aws_at": detail.get("CreateDate"),
        "last_used_on": _day(last_used.get("LastUsedDate")),
        "last_used_region": last_used.get("Region", ""),
    }


def _policy_row(detail: dict[str, Any]) -> Row:
    default_version = detail.get("DefaultVersionId", "")
    document: Any = {}
    for version in detail.get("PolicyVersionList") or []:
        if version.get("IsDefaultVersion") or version.get("VersionId") == default_version:
            document = policy_document(version.get("Document")) or {}
    return {
        "arn": detail["Arn"],
        # The name is the ARN's last segment; some stand-ins omit PolicyName.
        "name": detail.get("PolicyName") or detail["Arn"].rsplit("/", 1)[-1],
        "path": detail.get("Path", "/"),
        "description": detail.get("Description", "") or "",
        "default_version_id": default_version,
        "document": document,
        "attachment_count": int(detail.get("AttachmentCount", 0)),
        "tags": {},
    }


def _check_account(arn: str, account_id: str) -> None:
    parts = arn.split(":")
    if len(parts) < 6 or parts[4] != account_id:
        raise ForeignRowError(
            f"AWS returned {arn}, which is not in account {account_id}: check that the spoke "
            "role of this account is in this account."
        )


def _pages(client: Any, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
    yield from client.get_paginator(operation).paginate(**params)


def iam_fetch(
    session: boto3.Session, account_id: str, checkpoint: Checkpoint = no_checkpoint
) -> tuple[list[Row], list[Row]]:
    """Every role and local managed policy. All or nothing: an error on any page
    raises and fails the account's sync, so no role is ever deleted because
    a page of details could not be read."""
    iam = aws.client("iam", session=session)
    listed: dict[str, dict[str, Any]] = {}
    for page in _pages(iam, "list_roles"):
        checkpoint()
        for role in page["Roles"]:
            listed[role["Arn"]] = role
    roles: list[Row] = []
    policies: list[Row] = []
    for page in _pages(
        iam, "get_account_authorization_details", Filter=["Role", "LocalManagedPolicy"]
    ):
        checkpoint()
        for detail in page.get("RoleDetailList", []):
            _check_account(detail["Arn"], account_id)
            roles.append(role_row(detail, listed.get(detail["Arn"])))
        for detail in page.get("Policies", []):
            _check_account(detail["Arn"], account_id)
            policies.append(_policy_row(detail))
    return roles, policies


def _optional(call: Any, missing_codes: tuple[str, ...], **params: Any) -> dict[str, Any] | None:
    try:
        return call(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in missing_codes:
            return None
        raise


def s3_fetch(
    session: boto3.Session, inventory: Inventory, checkpoint: Checkpoint = no_checkpoint
) -> None:
    s3 = aws.client("s3", session=session)
    for page in _pages(s3, "list_buckets"):
        for bucket in page.get("Buckets", []):
            checkpoint()
            name = bucket["Name"]
            arn = f"arn:aws:s3:::{name}"
            try:
                location = s3.get_bucket_location(Bucket=name).get("LocationConstraint")
                policy = _optional(s3.get_bucket_policy, ("NoSuchBucketPolicy",), Bucket=name)
                tagging = _optional(s3.get_bucket_tagging, ("NoSuchTagSet",), Bucket=name)
            except READ_ERRORS as exc:
                row = {"arn": arn, "name": name, "type": "s3", "region": ""}
                inventory.unreadable_add(kind="s3 bucket", label=name, row=row, exc=exc)
                continue
            inventory.resources.append(
                {
                    "arn": arn,
                    "name": name,
                    "type": "s3",
                    "region": location or "us-east-1",
                    "policy": policy_document(policy["Policy"]) if policy else None,
                    "tags": _tags(tagging["TagSet"]) if tagging else {},
                    "attributes": {},
                }
            )


def _queue_arn(session: boto3.Session, region: str, url: str) -> str:
    """The ARN of a queue from its URL (https://sqs.<region>.<domain>/<account>/<name>),
    for a queue whose attributes, which hold its ARN, could not be read."""
    owner, _, name = urlparse(url).path.strip("/").rpartition("/")
    return f"arn:{session.get_partition_for_region(region)}:sqs:{region}:{owner}:{name}"


def sqs_fetch(
    session: boto3.Session,
    region: str,
    account_id: str,
    inventory: Inventory,
    checkpoint: Checkpoint = no_checkpoint,
) -> None:
    sqs = aws.client("sqs", session=session, region=region)
    for page in _pages(sqs, "list_queues", PaginationConfig={"PageSize": 1000}):
        for url in page.get("QueueUrls", []):
            checkpoint()
            try:
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
            except READ_ERRORS as exc:
                arn = _queue_arn(session, region, url)
                _check_account(arn, account_id)
                row = {"arn": arn, "name": arn.rsplit(":", 1)[-1], "type": "sqs", "region": region}
                inventory.unreadable_add(kind="sqs queue", label=url, row=row, exc=exc)
                continue
            arn = attrs["QueueArn"]
            _check_account(arn, account_id)
            inventory.resources.append(
                {
                    "arn": arn,
                    "name": arn.rsplit(":", 1)[-1],
                    "type": "sqs",
                    "region": region,
                    "policy": policy_document(attrs["Policy"]) if attrs.get("Policy") else None,
                    "tags": dict(sorted(tags.items())),
                    "attributes": {
                        "url": url,
                        "fifo": attrs.get("FifoQueue") == "true",
                        "kms_key": attrs.get("KmsMasterKeyId", ""),
                    },
                }
            )


def sns_fetch(
    session: boto3.Session,
    region: str,
    account_id: str,
    inventory: Inventory,
    checkpoint: Checkpoint = no_checkpoint,
) -> None:
    sns = aws.client("sns", session=session, region=region)
    for page in _pages(sns, "list_topics"):
        for topic in page.get("Topics", []):
            checkpoint()
            arn = topic["TopicArn"]
            _check_account(arn, account_id)
            try:
                attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
                tags = sns.list_tags_for_resource(ResourceArn=arn).get("Tags", [])
            except READ_ERRORS as exc:
                row = {"arn": arn, "name": arn.rsplit(":", 1)[-1], "type": "sns", "region": region}
                inventory.unreadable_add(kind="sns topic", label=arn, row=row, exc=exc)
                continue
            inventory.resources.append(
                {
                    "arn": arn,
                    "name": arn.rsplit(":", 1)[-1],
                    "type": "sns",
                    "region": region,
                    "policy": policy_document(attrs["Policy"]) if attrs.get("Policy") else None,
                    "tags": _tags(tags),
                    "attributes": {"display_name": attrs.get("DisplayName", "")},
                }
            )


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
