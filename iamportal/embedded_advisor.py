"""IAM Access Advisor for the embedded AWS, which lacks it.

moto answers no `GenerateServiceLastAccessedDetails` nor
`GetServiceLastAccessedDetails`. When iamportal talks to the embedded AWS
(IAMPORTAL_EMBEDDED_AWS: the demo, the tests), `iamportal.aws` hooks this
stand-in into every IAM client it builds: the two calls are answered here, at
the boundary, so everything above it runs the production code. What a role
grants is read from the embedded AWS itself (its inline and attached
policies); when it last used each service comes from demo data: the
`usage_set` of a test, else the demo organisation's table below, else "used
yesterday".
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from botocore.awsrequest import AWSResponse

from requests_app.policy.usage import granted_actions, granted_namespaces

# Services whose use AWS also reports per action.
ACTION_TRACKED = frozenset({"s3", "ec2", "iam", "lambda"})

SERVICE_NAMES = {
    "s3": "Amazon S3",
    "sqs": "Amazon SQS",
    "sns": "Amazon SNS",
    "logs": "Amazon CloudWatch Logs",
    "ecs": "Amazon Elastic Container Service",
    "ec2": "Amazon EC2",
    "iam": "AWS Identity and Access Management",
    "lambda": "AWS Lambda",
    "dynamodb": "Amazon DynamoDB",
}

# The demo organisation's roles: days since each service (or action) was last
# used; None: never. Services a role grants that are not listed: never used.
DEMO_LAST_USED: dict[str, dict[str, int | None]] = {
    "payments-api": {
        "s3": 1,
        "s3:getobject": 1,
        "s3:listbucket": 3,
        "s3:putobject": None,
        "sqs": 130,
        # Its database password (payments-db) is in daily use.
        "rds-db": 1,
        "logs": 1,
    },
    "payments-batch": {"sqs": 1, "logs": 1},
    "web-frontend": {"s3": 2, "s3:getobject": 2},
    "ReadOnly": {"s3": 4, "sqs": 20, "sns": 210},
    "ci-deploy": {"ecs": 6},
}

_lock = threading.Lock()
_jobs: dict[str, str] = {}
_usage: dict[str, dict[str, datetime | None]] = {}


def usage_set(role_arn: str, last_used: dict[str, datetime | None]) -> None:
    """What the embedded Access Advisor reports for `role_arn` from now on:
    service prefix or action (any case) -> last use (None: never). Services the
    role grants that are left out: never used."""
    with _lock:
        _usage[role_arn] = {key.lower(): when for key, when in last_used.items()}


def usage_forget() -> None:
    with _lock:
        _usage.clear()
        _jobs.clear()


def _last_used(role_arn: str, key: str, now: datetime) -> datetime | None:
    with _lock:
        explicit = _usage.get(role_arn)
    if explicit is not None:
        return explicit.get(key)
    name = role_arn.rsplit("/", 1)[-1]
    table = DEMO_LAST_USED.get(name)
    if table is None:
        return now - timedelta(days=1)
    days = table.get(key)
    return None if days is None else now - timedelta(days=days)


def _answer(parsed: dict[str, Any], status: int = 200) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse(url="", status_code=status, headers={}, raw=None), parsed


def _error(code: str, message: str) -> tuple[AWSResponse, dict[str, Any]]:
    return _answer(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        400,
    )


def _documents(iam: Any, role_name: str) -> list[Any]:
    documents = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            documents.append(
                iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
            )
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        for attached in page["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            documents.append(
                iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"][
                    "Document"
                ]
            )
    return [_parsed(d) for d in documents]


def _parsed(document: Any) -> Any:
    if isinstance(document, str):
        return json.loads(unquote(document))
    return document


def _details(iam: Any, role_arn: str) -> list[dict[str, Any]]:
    # Days counted from midnight: a role's answer stays the same all day, as
    # AWS's does for a role nobody uses meanwhile.
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    documents = _documents(iam, role_arn.rsplit("/", 1)[-1])
    namespaces = set().union(*(granted_namespaces(d) for d in documents)) - {"*"}
    services = []
    for namespace in sorted(namespaces):
        entry: dict[str, Any] = {
            "ServiceName": SERVICE_NAMES.get(namespace, namespace),
            "ServiceNamespace": namespace,
            "TotalAuthenticatedEntities": 0,
        }
        when = _last_used(role_arn, namespace, now)
        if when is not None:
            entry.update(
                LastAuthenticated=when,
                LastAuthenticatedEntity=role_arn,
                LastAuthenticatedRegion="us-east-1",
                TotalAuthenticatedEntities=1,
            )
        if namespace in ACTION_TRACKED:
            tracked = []
            for action in sorted(set().union(*(granted_actions(d, namespace) for d in documents))):
                item: dict[str, Any] = {"ActionName": action.partition(":")[2]}
                used = _last_used(role_arn, action, now)
                if used is not None:
                    item.update(
                        LastAccessedTime=used,
                        LastAccessedEntity=role_arn,
                        LastAccessedRegion="us-east-1",
                    )
                tracked.append(item)
            entry["TrackedActionsLastAccessed"] = tracked
        services.append(entry)
    return services


def _generate(
    iam: Any, params: dict[str, Any], **kwargs: Any
) -> tuple[AWSResponse, dict[str, Any]]:
    arn = str(params.get("Arn", ""))
    if ":role/" not in arn:
        return _error("InvalidInput", f"{arn} is not a role this stand-in answers for.")
    try:
        iam.get_role(RoleName=arn.rsplit("/", 1)[-1])
    except iam.exceptions.NoSuchEntityException:
        return _error("NoSuchEntity", f"The role {arn} cannot be found.")
    job_id = str(uuid.uuid4())
    with _lock:
        _jobs[job_id] = arn
    return _answer({"JobId": job_id})


def _get(iam: Any, params: dict[str, Any], **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
    with _lock:
        arn = _jobs.get(str(params.get("JobId", "")))
    if arn is None:
        return _error("NoSuchEntity", "No such job.")
    now = datetime.now(UTC)
    return _answer(
        {
            "JobStatus": "COMPLETED",
            "JobType": "ACTION_LEVEL",
            "JobCreationDate": now,
            "JobCompletionDate": now,
            "ServicesLastAccessed": _details(iam, arn),
            "IsTruncated": False,
        }
    )


def install(iam: Any) -> None:
    """Answer the Access Advisor calls of the IAM client `iam` here."""

    # botocore hands over the serialised request: the query's fields are its body.
    def generate(params: dict[str, Any], **kwargs: Any) -> Any:
        return _generate(iam, dict(params.get("body") or {}))

    def get(params: dict[str, Any], **kwargs: Any) -> Any:
        return _get(iam, dict(params.get("body") or {}))

    iam.meta.events.register("before-call.iam.GenerateServiceLastAccessedDetails", generate)
    iam.meta.events.register("before-call.iam.GetServiceLastAccessedDetails", get)
