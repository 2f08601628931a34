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
    users: list[Row] = field(default_factory=list)
    groups: list[Row] = field(default_factory=list)
    databases: list[Row] = field(default_factory=list)
    # (database type, region) pairs whose listing failed: their rows are kept.
    databases_unlisted: set[tuple[str, str]] = field(default_factory=set)
    # AWS calls made per user for access keys (ListAccessKeys + GetAccessKeyLastUsed).
    access_key_calls: int = 0
    # Resources listed by AWS Config (their rows are among `resources`).
    config_resources: int = 0
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
    session: boto3.Session,
    account_id: str,
    checkpoint: Checkpoint = no_checkpoint,
    *,
    identities: Inventory | None = None,
) -> tuple[list[Row], list[Row]]:
    """Every role and local managed policy; with `identities`, also every user
    and group into it, from the same pages. All or nothing: an error on any
    page raises and fails the account's sync, so no role is ever deleted
    because a page of details could not be read."""
    iam = aws.client("iam", session=session)
    listed: dict[str, dict[str, Any]] = {}
    for page in _pages(iam, "list_roles"):
        checkpoint()
        for role in page["Roles"]:
            listed[role["Arn"]] = role
    listed_users: dict[str, dict[str, Any]] = {}
    if identities is not None:
        # Only ListUsers says when a password was last used.
        for page in _pages(iam, "list_users"):
            checkpoint()
            for user in page["Users"]:
                listed_users[user["Arn"]] = user
    roles: list[Row] = []
    policies: list[Row] = []
    users: list[Row] = []
    groups: list[Row] = []
    kinds = ["Role", "LocalManagedPolicy"]
    if identities is not None:
        kinds += ["User", "Group"]
    for page in _pages(iam, "get_account_authorization_details", Filter=kinds):
        checkpoint()
        for detail in page.get("RoleDetailList", []):
            _check_account(detail["Arn"], account_id)
            roles.append(role_row(detail, listed.get(detail["Arn"])))
        for detail in page.get("Policies", []):
            _check_account(detail["Arn"], account_id)
            policies.append(_policy_row(detail))
        for detail in page.get("UserDetailList", []):
            _check_account(detail["Arn"], account_id)
            users.append(user_row(detail, listed_users.get(detail["Arn"])))
        for detail in page.get("GroupDetailList", []):
            _check_account(detail["Arn"], account_id)
            groups.append(group_row(detail))
    if identities is not None:
        members: dict[str, list[str]] = {}
        for user in users:
            for group_name in user["groups"]:
                members.setdefault(group_name, []).append(user["name"])
        for group in groups:
            group["members"] = sorted(members.get(group["name"], []))
        identities.users, identities.groups = users, groups
    return roles, policies


def _inline(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        p["PolicyName"]: policy_document(p["PolicyDocument"])
        for p in sorted(items or [], key=lambda p: p["PolicyName"])
    }


def _attached(items: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    return [
        {"arn": p["PolicyArn"], "name": p["PolicyName"]}
        for p in sorted(items or [], key=lambda p: p["PolicyArn"])
    ]


def user_row(detail: dict[str, Any], listed: dict[str, Any] | None = None) -> Row:
    """One user, from a GetAccountAuthorizationDetails entry (plus ListUsers fields).
    Its access keys are read separately (access_keys_fetch)."""
    listed = listed or {}
    boundary = detail.get("PermissionsBoundary") or {}
    return {
        "arn": detail["Arn"],
        "name": detail["UserName"],
        "user_id": detail.get("UserId", ""),
        "path": detail.get("Path", "/"),
        "inline_policies": _inline(detail.get("UserPolicyList")),
        "managed_policies": _attached(detail.get("AttachedManagedPolicies")),
        "groups": sorted(detail.get("GroupList") or []),
        "permissions_boundary_arn": boundary.get("PermissionsBoundaryArn", ""),
        "tags": _tags(detail.get("Tags")),
        "created_in_aws_at": detail.get("CreateDate"),
        "password_last_used_on": _day(listed.get("PasswordLastUsed")),
        "access_keys": [],
        "access_keys_error": "",
    }


def group_row(detail: dict[str, Any]) -> Row:
    return {
        "arn": detail["Arn"],
        "name": detail["GroupName"],
        "group_id": detail.get("GroupId", ""),
        "path": detail.get("Path", "/"),
        "inline_policies": _inline(detail.get("GroupPolicyList")),
        "managed_policies": _attached(detail.get("AttachedManagedPolicies")),
        "members": [],
        "tags": {},
        "created_in_aws_at": detail.get("CreateDate"),
    }


def _aws_text(value: Any) -> str:
    # GetAccessKeyLastUsed answers "N/A" for a key never used.
    text = str(value or "")
    return "" if text == "N/A" else text


def access_keys_fetch(
    session: boto3.Session, inventory: Inventory, checkpoint: Checkpoint = no_checkpoint
) -> None:
    """Each user's access keys, their age and last use: one ListAccessKeys per
    user and one GetAccessKeyLastUsed per key (counted in
    `inventory.access_key_calls`). A user whose keys cannot be read gets
    `access_keys_error`, and the write keeps the keys an earlier sync read."""
    iam = aws.client("iam", session=session)
    for user in inventory.users:
        checkpoint()
        keys: list[Row] = []
        try:
            inventory.access_key_calls += 1
            listed = iam.list_access_keys(UserName=user["name"])["AccessKeyMetadata"]
            for key in sorted(listed, key=lambda k: k["AccessKeyId"]):
                inventory.access_key_calls += 1
                used = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])
                last = used.get("AccessKeyLastUsed") or {}
                created = key.get("CreateDate")
                keys.append(
                    {
                        "id": key["AccessKeyId"],
                        "status": key.get("Status", ""),
                        "created": created.astimezone(UTC).isoformat() if created else "",
                        "last_used_on": str(_day(last.get("LastUsedDate")) or ""),
                        "last_used_service": _aws_text(last.get("ServiceName")),
                        "last_used_region": _aws_text(last.get("Region")),
                    }
                )
        except READ_ERRORS as exc:
            user["access_keys_error"] = describe_error(exc)
            inventory.warnings.append(f"access keys of user {user['name']}: {describe_error(exc)}")
            continue
        user["access_keys"] = keys


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
                    **DIRECT_COLUMNS,
                }
            )


# The columns of a resource read directly that only AWS Config fills; every row
# of one write has the same columns.
DIRECT_COLUMNS: Row = {
    "source": "direct",
    "resource_id": "",
    "summary": {},
    "changed_in_aws_at": None,
}


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
                    **DIRECT_COLUMNS,
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
                    **DIRECT_COLUMNS,
                }
            )


def _listing(
    inventory: Inventory, *, kind: str, region: str, call: Callable[[], list[Row]]
) -> list[Row]:
    """A database listing that fails (AccessDenied while the spoke role lacks
    the new read permissions, a region without the service...) is a warning
    that keeps that listing's previous rows, not a failed sync."""
    try:
        return call()
    except READ_ERRORS as exc:
        inventory.databases_unlisted.add((kind, region))
        inventory.warnings.append(f"{kind} in {region}: {describe_error(exc)}")
        return []


def rds_fetch(
    session: boto3.Session,
    region: str,
    account_id: str,
    inventory: Inventory,
    checkpoint: Checkpoint = no_checkpoint,
) -> None:
    """RDS instances and clusters of one region."""
    rds = aws.client("rds", session=session, region=region)

    def instances() -> list[Row]:
        rows = []
        for page in _pages(rds, "describe_db_instances"):
            checkpoint()
            for db in page.get("DBInstances", []):
                _check_account(db["DBInstanceArn"], account_id)
                endpoint = db.get("Endpoint") or {}
                rows.append(
                    {
                        "arn": db["DBInstanceArn"],
                        "name": db["DBInstanceIdentifier"],
                        "type": "rds-instance",
                        "region": region,
                        "engine": db.get("Engine", ""),
                        "engine_version": db.get("EngineVersion", ""),
                        "endpoint": endpoint.get("Address", ""),
                        "port": endpoint.get("Port"),
                        "iam_auth": bool(db.get("IAMDatabaseAuthenticationEnabled")),
                        "resource_id": db.get("DbiResourceId", ""),
                        "status": db.get("DBInstanceStatus", ""),
                        "cluster": db.get("DBClusterIdentifier") or "",
                        "tags": _tags(db.get("TagList")),
                    }
                )
        return rows

    def clusters() -> list[Row]:
        rows = []
        for page in _pages(rds, "describe_db_clusters"):
            checkpoint()
            for db in page.get("DBClusters", []):
                _check_account(db["DBClusterArn"], account_id)
                rows.append(
                    {
                        "arn": db["DBClusterArn"],
                        "name": db["DBClusterIdentifier"],
                        "type": "rds-cluster",
                        "region": region,
                        "engine": db.get("Engine", ""),
                        "engine_version": db.get("EngineVersion", ""),
                        "endpoint": db.get("Endpoint", "") or "",
                        "port": db.get("Port"),
                        "iam_auth": bool(db.get("IAMDatabaseAuthenticationEnabled")),
                        "resource_id": db.get("DbClusterResourceId", ""),
                        "status": db.get("Status", ""),
                        "cluster": "",
                        "tags": _tags(db.get("TagList")),
                    }
                )
        return rows

    inventory.databases += _listing(inventory, kind="rds-instance", region=region, call=instances)
    inventory.databases += _listing(inventory, kind="rds-cluster", region=region, call=clusters)


def redshift_fetch(
    session: boto3.Session,
    region: str,
    account_id: str,
    inventory: Inventory,
    checkpoint: Checkpoint = no_checkpoint,
) -> None:
    """Redshift clusters of one region. DescribeClusters gives no ARN: it is built
    from the region, the account and the identifier."""
    redshift = aws.client("redshift", session=session, region=region)
    partition = session.get_partition_for_region(region)

    def clusters() -> list[Row]:
        rows = []
        for page in _pages(redshift, "describe_clusters"):
            checkpoint()
            for db in page.get("Clusters", []):
                name = db["ClusterIdentifier"]
                endpoint = db.get("Endpoint") or {}
                rows.append(
                    {
                        "arn": f"arn:{partition}:redshift:{region}:{account_id}:cluster:{name}",
                        "name": name,
                        "type": "redshift",
                        "region": region,
                        "engine": "redshift",
                        "engine_version": db.get("ClusterVersion", "") or "",
                        "endpoint": endpoint.get("Address", ""),
                        "port": endpoint.get("Port"),
                        "iam_auth": None,
                        "resource_id": db.get("ClusterNamespaceArn", "") or "",
                        "status": db.get("ClusterStatus", ""),
                        "cluster": "",
                        "tags": _tags(db.get("Tags")),
                    }
                )
        return rows

    inventory.databases += _listing(inventory, kind="redshift", region=region, call=clusters)


# --- AWS Config -------------------------------------------------------------------

# Config types read directly into their own models (richer than Config's items):
# never taken from Config, so no resource is read twice.
CONFIG_SKIPPED_PREFIXES = ("AWS::IAM::",)
CONFIG_SKIPPED_TYPES = frozenset(
    {
        "AWS::RDS::DBInstance",
        "AWS::RDS::DBCluster",
        "AWS::Redshift::Cluster",
        # Compliance records of Config rules, not resources.
        "AWS::Config::ResourceCompliance",
    }
)
# Config types that the sync otherwise reads directly, and their short names.
CONFIG_DIRECT_TYPES = {"AWS::S3::Bucket": "s3", "AWS::SQS::Queue": "sqs", "AWS::SNS::Topic": "sns"}
CONFIG_BATCH = 100  # BatchGetAggregateResourceConfig's limit
CONFIG_SUMMARY_FIELDS = 12
CONFIG_SUMMARY_CHARS = 120
# Where Config keeps a resource policy: supplementaryConfiguration first (S3's
# BucketPolicy), then the configuration itself (SQS and SNS policies).
_CONFIG_POLICY_KEYS = ("BucketPolicy", "Policy", "policy", "AccessPolicy", "accessPolicy")
_SELECT_FIELDS = (
    "resourceId, resourceName, resourceType, awsRegion, arn, tags, configurationItemCaptureTime"
)


@dataclass
class ConfigCoverage:
    """What AWS Config held for an account: the direct reads it replaces. S3 is
    covered when Config holds any bucket of the account; SQS and SNS per region,
    where it holds any queue or topic. Elsewhere the sync reads directly, so a
    resource type Config does not record is still read, and none is read twice."""

    s3: bool = False
    regions: dict[str, set[str]] = field(default_factory=dict)
    resources: int = 0

    def covers(self, kind: str, region: str = "") -> bool:
        if kind == "s3":
            return self.s3
        return region in self.regions.get(kind, set())


def _config_skipped(resource_type: str) -> bool:
    return resource_type in CONFIG_SKIPPED_TYPES or resource_type.startswith(
        CONFIG_SKIPPED_PREFIXES
    )


def _config_json(value: Any) -> Any:
    """A value Config may send as JSON text, sometimes JSON text inside JSON text."""
    for _depth in range(2):
        if not isinstance(value, str):
            return value
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value


def config_policy(item: dict[str, Any], configuration: dict[str, Any]) -> Any:
    """The resource policy Config recorded for an item, if any."""
    supplementary = item.get("supplementaryConfiguration") or {}
    for source in (supplementary, configuration):
        for key in _CONFIG_POLICY_KEYS:
            value = _config_json(source.get(key))
            if isinstance(value, dict) and "policyText" in value:
                value = _config_json(value["policyText"])
            if isinstance(value, dict) and value.get("Statement"):
                return value
    return None


def config_summary(configuration: dict[str, Any]) -> dict[str, Any]:
    """A few top-level scalar fields of a configuration, bounded in count and
    length: enough to recognise a resource, never a whole document."""
    summary: dict[str, Any] = {}
    for key in sorted(configuration):
        if key in _CONFIG_POLICY_KEYS:
            continue
        value = configuration[key]
        if isinstance(value, bool | int | float):
            summary[key] = value
        elif isinstance(value, str) and value:
            summary[key] = value[:CONFIG_SUMMARY_CHARS]
        if len(summary) >= CONFIG_SUMMARY_FIELDS:
            break
    return summary


def _config_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return None
    return None


def _config_key(account_id: str, item: dict[str, Any]) -> str:
    """The row key: the ARN, or for the few types Config gives none, a stable name."""
    return str(item.get("arn") or "") or (
        f"config:{account_id}:{item['awsRegion']}:{item['resourceType']}:{item['resourceId']}"
    )


def _config_row(account_id: str, listed: dict[str, Any], item: dict[str, Any]) -> Row:
    configuration = _config_json(item.get("configuration")) or {}
    if not isinstance(configuration, dict):
        configuration = {}
    resource_type = listed["resourceType"]
    return {
        "arn": _config_key(account_id, {**listed, "arn": item.get("arn") or listed["arn"]}),
        # Config names some resources longer than the column (log groups: 512).
        "name": (listed.get("resourceName") or item.get("resourceName") or listed["resourceId"])[
            :512
        ],
        "type": CONFIG_DIRECT_TYPES.get(resource_type, resource_type),
        "region": listed["awsRegion"],
        "policy": config_policy(item, configuration),
        "tags": dict(sorted((listed.get("tags") or {}).items())),
        "attributes": {},
        "source": "config",
        "resource_id": listed["resourceId"],
        "summary": config_summary(configuration),
        "changed_in_aws_at": _config_time(item.get("configurationItemCaptureTime"))
        or listed.get("captured"),
    }


def _token_pages(call: Any, **params: Any) -> Iterator[dict[str, Any]]:
    """Pages of an operation botocore has no paginator for."""
    while True:
        page = call(**params)
        yield page
        token = page.get("NextToken")
        if not token:
            return
        params["NextToken"] = token


def config_fetch(
    client: Any,
    aggregator: str,
    account_id: str,
    inventory: Inventory,
    checkpoint: Checkpoint = no_checkpoint,
) -> ConfigCoverage:
    """Every resource the aggregator holds for one account, into
    `inventory.resources`, and what that covers of the direct reads.

    One count by type, then `SelectAggregateResourceConfig` lists every type at
    once with tags and last change times (100 a page); types advanced queries
    do not support (fewer selected than counted) are listed with
    `ListAggregateDiscoveredResources`, without tags. Their configuration items
    (configuration, supplementary configuration with the resource policy) come
    from `BatchGetAggregateResourceConfig`, 100 at a time. Only this account's
    items are held, so memory does not grow with the number of accounts. An
    error fails the account's sync (its previous inventory is kept)."""
    coverage = ConfigCoverage()
    counts: dict[str, int] = {}
    for page in _token_pages(
        client.get_aggregate_discovered_resource_counts,
        ConfigurationAggregatorName=aggregator,
        Filters={"AccountId": account_id},
        GroupByKey="RESOURCE_TYPE",
    ):
        checkpoint()
        for group in page.get("GroupedResourceCounts", []):
            if not _config_skipped(group["GroupName"]):
                counts[group["GroupName"]] = int(group["ResourceCount"])
    if not any(counts.values()):
        return coverage
    listed: dict[tuple[str, str, str], dict[str, Any]] = {}
    selected: dict[str, int] = {}
    for page in _pages(
        client,
        "select_aggregate_resource_config",
        ConfigurationAggregatorName=aggregator,
        Expression=f"SELECT {_SELECT_FIELDS} WHERE accountId = '{account_id}'",
        PaginationConfig={"PageSize": CONFIG_BATCH},
    ):
        checkpoint()
        for text in page.get("Results", []):
            result = json.loads(text)
            resource_type = result.get("resourceType", "")
            if _config_skipped(resource_type) or not result.get("resourceId"):
                continue
            selected[resource_type] = selected.get(resource_type, 0) + 1
            listed[(resource_type, result["resourceId"], result.get("awsRegion", ""))] = {
                "resourceType": resource_type,
                "resourceId": result["resourceId"],
                "resourceName": result.get("resourceName") or "",
                "awsRegion": result.get("awsRegion", ""),
                "arn": result.get("arn") or "",
                "tags": {t["key"]: t.get("value", "") for t in result.get("tags") or []},
                "captured": _config_time(result.get("configurationItemCaptureTime")),
            }
    for resource_type, count in sorted(counts.items()):
        if selected.get(resource_type, 0) >= count:
            continue
        for page in _pages(
            client,
            "list_aggregate_discovered_resources",
            ConfigurationAggregatorName=aggregator,
            ResourceType=resource_type,
            Filters={"AccountId": account_id},
            PaginationConfig={"PageSize": CONFIG_BATCH},
        ):
            checkpoint()
            for ident in page.get("ResourceIdentifiers", []):
                key = (resource_type, ident["ResourceId"], ident["SourceRegion"])
                listed.setdefault(
                    key,
                    {
                        "resourceType": resource_type,
                        "resourceId": ident["ResourceId"],
                        "resourceName": ident.get("ResourceName") or "",
                        "awsRegion": ident["SourceRegion"],
                        "arn": "",
                        "tags": {},
                        "captured": None,
                    },
                )
    keys = list(listed)
    for start in range(0, len(keys), CONFIG_BATCH):
        checkpoint()
        _config_batch(
            client, aggregator, account_id, listed, keys[start : start + CONFIG_BATCH], inventory
        )
    for (resource_type, _, region), _entry in listed.items():
        kind = CONFIG_DIRECT_TYPES.get(resource_type)
        if kind == "s3":
            coverage.s3 = True
        elif kind:
            coverage.regions.setdefault(kind, set()).add(region)
    coverage.resources = len(listed)
    return coverage


def _config_batch(
    client: Any,
    aggregator: str,
    account_id: str,
    listed: dict[tuple[str, str, str], dict[str, Any]],
    keys: list[tuple[str, str, str]],
    inventory: Inventory,
) -> None:
    """One BatchGetAggregateResourceConfig, and once more for what it left
    unprocessed; what is still missing is recorded as unreadable."""
    wanted = [
        {
            "SourceAccountId": account_id,
            "SourceRegion": region,
            "ResourceId": resource_id,
            "ResourceType": resource_type,
        }
        for resource_type, resource_id, region in keys
    ]
    for _attempt in range(2):
        answer = client.batch_get_aggregate_resource_config(
            ConfigurationAggregatorName=aggregator, ResourceIdentifiers=wanted
        )
        for item in answer.get("BaseConfigurationItems", []):
            key = (item["resourceType"], item["resourceId"], item.get("awsRegion", ""))
            entry = listed.get(key)
            if entry is None or item.get("accountId", account_id) != account_id:
                continue
            inventory.resources.append(_config_row(account_id, entry, item))
        wanted = answer.get("UnprocessedResourceIdentifiers") or []
        if not wanted:
            return
    for ident in wanted:
        entry = listed.get((ident["ResourceType"], ident["ResourceId"], ident["SourceRegion"]))
        if entry is None:
            continue
        row = {
            "arn": _config_key(account_id, entry),
            "name": (entry["resourceName"] or entry["resourceId"])[:512],
            "type": CONFIG_DIRECT_TYPES.get(entry["resourceType"], entry["resourceType"]),
            "region": entry["awsRegion"],
            "source": "config",
            "resource_id": entry["resourceId"],
        }
        inventory.warnings.append(
            f"AWS Config item {entry['resourceType']} {entry['resourceId']}: not returned"
        )
        inventory.unreadable.append(
            {**row, "error": "AWS Config did not return its configuration item."}
        )


# --- the organisation -------------------------------------------------------------


@dataclass
class Organization:
    nodes: list[Row] = field(default_factory=list)
    accounts: list[Row] = field(default_factory=list)
    policies: list[Row] = field(default_factory=list)


def organization_fetch(
    session: boto3.Session, checkpoint: Checkpoint = no_checkpoint
) -> Organization:
    """The OU tree, where each account sits, and every service control policy
    with its targets. All or nothing, like the IAM pages."""
    org = aws.client("organizations", session=session)
    found = Organization()
    pending: list[tuple[str, str]] = []  # (parent id, its path)
    for page in _pages(org, "list_roots"):
        for root in page["Roots"]:
            found.nodes.append(
                {
                    "node_id": root["Id"],
                    "kind": "root",
                    "arn": root["Arn"],
                    "name": root["Name"],
                    "parent_id": "",
                    "path": root["Name"],
                }
            )
            pending.append((root["Id"], root["Name"]))
    while pending:
        parent_id, parent_path = pending.pop(0)
        checkpoint()
        for page in _pages(org, "list_organizational_units_for_parent", ParentId=parent_id):
            for ou in page["OrganizationalUnits"]:
                path = f"{parent_path} / {ou['Name']}"
                found.nodes.append(
                    {
                        "node_id": ou["Id"],
                        "kind": "ou",
                        "arn": ou["Arn"],
                        "name": ou["Name"],
                        "parent_id": parent_id,
                        "path": path,
                    }
                )
                pending.append((ou["Id"], path))
        for page in _pages(org, "list_accounts_for_parent", ParentId=parent_id):
            for account in page["Accounts"]:
                found.accounts.append(
                    {
                        "account_id": account["Id"],
                        "name": account.get("Name", ""),
                        "email": account.get("Email", ""),
                        "status": account.get("Status", ""),
                        "parent_id": parent_id,
                    }
                )
    for page in _pages(org, "list_policies", Filter="SERVICE_CONTROL_POLICY"):
        for summary in page["Policies"]:
            checkpoint()
            policy = org.describe_policy(PolicyId=summary["Id"])["Policy"]
            targets = [
                target["TargetId"]
                for target_page in _pages(org, "list_targets_for_policy", PolicyId=summary["Id"])
                for target in target_page["Targets"]
            ]
            found.policies.append(
                {
                    "policy_id": summary["Id"],
                    "arn": summary["Arn"],
                    "name": summary["Name"],
                    "description": summary.get("Description", "") or "",
                    "aws_managed": bool(summary.get("AwsManaged")),
                    "document": policy_document(policy.get("Content")) or {},
                    "targets": sorted(targets),
                }
            )
    return found


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
