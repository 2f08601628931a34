"""The Policies page's view of the inventory: one `InventoryEntry` per role, IAM
user, managed policy, resource and database, built from its source row; each
entry's iamportal page and AWS console page; and the rows of an export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from django.db.models import Model
from django.urls import reverse

from accounts.models import (
    CloudResource,
    Database,
    IamRole,
    IamUser,
    InventoryEntry,
    ManagedPolicy,
)
from requests_app.policy.exposure import policy_is_public

Kind = InventoryEntry.Kind

# The source table of each kind, and the columns an entry is built from (the
# policy documents of roles, users and policies stay where they are).
SOURCES: dict[str, tuple[type[Model], tuple[str, ...]]] = {
    Kind.ROLE: (IamRole, ("arn", "name", "tags", "trust_policy", "synced_at")),
    Kind.USER: (IamUser, ("arn", "name", "tags", "synced_at")),
    Kind.POLICY: (ManagedPolicy, ("arn", "name", "tags", "synced_at")),
    Kind.RESOURCE: (
        CloudResource,
        ("arn", "name", "tags", "type", "region", "policy", "synced_at"),
    ),
    Kind.DATABASE: (Database, ("arn", "name", "tags", "type", "region", "synced_at")),
}


# What a rewrite of an entry sets (its kind and source never change).
UPDATED_FIELDS = (
    "type",
    "arn",
    "name",
    "region",
    "tags",
    "has_resource_policy",
    "public",
    "changed_at",
    "search_key",
)


def entry_fields(kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of the entry for `row`, the kind's `SOURCES` columns and "pk"
    of a row of its source table (as `.values()` reads them)."""
    tags = row["tags"]
    fields: dict[str, Any] = {
        "kind": kind,
        "object_id": row["pk"],
        "type": kind,
        "arn": row["arn"],
        "name": row["name"],
        "region": "",
        "tags": tags if isinstance(tags, dict) else {},
        "has_resource_policy": False,
        "public": False,
        "changed_at": row["synced_at"],
        "search_key": row["arn"].upper(),
    }
    if kind == Kind.ROLE:
        # A role's trust policy is the resource policy of the role.
        fields["has_resource_policy"] = bool(row["trust_policy"])
        fields["public"] = policy_is_public(row["trust_policy"])
    elif kind in (Kind.RESOURCE, Kind.DATABASE):
        fields["type"] = row["type"]
        fields["region"] = row["region"]
    if kind == Kind.RESOURCE:
        fields["has_resource_policy"] = bool(row["policy"])
        fields["public"] = policy_is_public(row["policy"])
    return fields


# --- links --------------------------------------------------------------------------


def entry_url(entry: InventoryEntry, account_id: str) -> str:
    """The entry's page in iamportal."""
    if entry.kind == Kind.ROLE:
        return reverse("role_detail", args=[account_id, entry.name])
    if entry.kind == Kind.USER:
        return reverse("iam_user_detail", args=[account_id, entry.name])
    if entry.kind == Kind.POLICY:
        return reverse("policy_detail", args=[entry.object_id])
    if entry.kind == Kind.DATABASE:
        return reverse("database_detail", args=[entry.object_id])
    return reverse("resource_detail", args=[entry.object_id])


_CONSOLE_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-us-gov": "console.amazonaws-us-gov.com",
    "aws-cn": "console.amazonaws.cn",
}


def console_url(entry: InventoryEntry) -> str:
    """The entry's page in the AWS console: a deep link for roles, users, managed
    policies, S3 buckets, SQS queues, SNS topics and RDS databases, and the
    console's own ARN resolver for anything else."""
    parts = entry.arn.split(":", 5)
    partition = parts[1] if len(parts) == 6 else "aws"
    host = _CONSOLE_HOSTS.get(partition, _CONSOLE_HOSTS["aws"])
    region = entry.region
    regional = f"https://{region}.{host}" if region else f"https://{host}"
    name = quote(entry.name, safe="")
    if entry.type == "role":
        return f"https://{host}/iam/home#/roles/details/{name}"
    if entry.type == "user":
        return f"https://{host}/iam/home#/users/details/{name}"
    if entry.type == "policy":
        return f"https://{host}/iam/home#/policies/details/{quote(entry.arn, safe='')}"
    if entry.type == "s3":
        return f"https://s3.{host}/s3/buckets/{name}"
    if entry.type == "sqs" and len(parts) == 6:
        queue_url = f"https://sqs.{region}.amazonaws.com/{parts[4]}/{entry.name}"
        return f"{regional}/sqs/v3/home?region={region}#/queues/{quote(queue_url, safe='')}"
    if entry.type == "sns":
        return f"{regional}/sns/v3/home?region={region}#/topic/{quote(entry.arn, safe=':')}"
    if entry.type in ("rds-instance", "rds-cluster"):
        cluster = "true" if entry.type == "rds-cluster" else "false"
        return f"{regional}/rds/home?region={region}#database:id={name};is-cluster={cluster}"
    if entry.type == "redshift":
        return f"{regional}/redshiftv2/home?region={region}#cluster-details?cluster={name}"
    return f"https://{host}/go/view?arn={quote(entry.arn, safe='')}"


# --- exports ------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "kind",
    "type",
    "account_id",
    "account_name",
    "name",
    "arn",
    "region",
    "tags",
    "has_resource_policy",
    "public",
    "changed_at",
)


def export_row(entry: InventoryEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "type": entry.type,
        "account_id": entry.account.account_id,
        "account_name": entry.account.name,
        "name": entry.name,
        "arn": entry.arn,
        "region": entry.region,
        "tags": entry.tags,
        "has_resource_policy": entry.has_resource_policy,
        "public": entry.public,
        "changed_at": entry.changed_at.isoformat(),
    }


# Spreadsheets run a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A CSV cell's text, with a leading quote on anything a spreadsheet would
    take for a formula (tag values and names come from AWS, where anyone with
    tagging rights writes them)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        text = ";".join(f"{key}={item}" for key, item in sorted(value.items()))
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
