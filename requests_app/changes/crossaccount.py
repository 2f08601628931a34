"""The other half of a cross-account grant.

An identity policy of a role in account A that allows access to a bucket,
queue or topic in account B, or lets the role assume a role in B, is not
enough on its own: B's resource policy (or the target role's trust policy)
must allow the role too. When B is an account iamportal manages, the request
carries that change as well, added automatically, so one approval grants
access that works.

The added statements are exactly as narrow as the identity policy: each
action only on the resources the role's statements grant it on, under the
same Condition (an `s3:prefix` on `s3:ListBucket` stays), and an S3 action
only on the kind of ARN it acts on (bucket-level actions on the bucket's ARN,
object actions on object ARNs such as `bucket/prefix*`).

Each added statement has a Sid derived from the requesting role's ARN (and
its position, when a policy needs several): a later request for the same
role and resource replaces it (changes are merged by Sid when applied), and
removing temporary access removes exactly it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from accounts.models import AwsAccount, CloudResource, IamRole
from accounts.selectors import role_protected
from requests_app.changes.base import ChangeSpec
from requests_app.changes.principal import AUTOMATIC_SID_PREFIX
from requests_app.models import Change
from requests_app.policy.reference import expand

SID_PREFIX = AUTOMATIC_SID_PREFIX
_SID_DIGEST_CHARS = 16

# Names only: anything else (wildcards, policy variables, subscription or
# access point ARNs) names no single resource whose policy could be changed.
_ACCOUNT_RE = re.compile(r"\d{12}")
_REGION_RE = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")
_BUCKET_RE = re.compile(r"[A-Za-z0-9._-]+")
_QUEUE_OR_TOPIC_RE = re.compile(r"[A-Za-z0-9_.-]+")
_ROLE_RE = re.compile(r"role/(?:[\x21-\x7e]*/)?[\w+=,.@-]+")
_VARIABLE_OR_WILDCARD_RE = re.compile(r"[*?]|\$\{")

# What a trust policy allows a principal in another account to do with a role.
# Other sts: actions (GetCallerIdentity, ...) never apply to a role.
_ASSUME_ROLE_ACTIONS = ("assumerole", "tagsession", "setsourceidentity", "setcontext")

_KIND_S3 = "s3"
_KIND_SQS = "sqs"
_KIND_SNS = "sns"
_KIND_ROLE = "role"
# The action prefix that applies to each kind of target.
_ACTION_PREFIX = {_KIND_S3: "s3", _KIND_SQS: "sqs", _KIND_SNS: "sns", _KIND_ROLE: "sts"}
_POLICY_NAME = {
    _KIND_S3: "bucket policy",
    _KIND_SQS: "queue policy",
    _KIND_SNS: "topic policy",
    _KIND_ROLE: "trust policy",
}


@dataclass(frozen=True)
class _Target:
    kind: str
    arn: str
    """The resource whose policy changes: the bucket, queue, topic or role."""
    name: str
    account_id: str
    """From the ARN; empty for buckets, whose account only the inventory knows."""


@dataclass
class _Grant:
    target: _Target
    # (condition as canonical JSON, resource) -> actions granted on it under it.
    pairs: dict[tuple[str, str], set[str]] = field(default_factory=dict)


def cross_account_changes(*, role: IamRole, document: dict[str, Any]) -> list[ChangeSpec]:
    """The resource and trust policy changes another managed account needs so
    that `document`, attached to `role`, grants what it says. Never raises on
    a document of unexpected shape: what does not fit is skipped."""
    grants = _grants(document, partition=_partition(role.arn))
    if not grants:
        return []
    by_kind: dict[str, list[_Target]] = {}
    for grant in grants.values():
        by_kind.setdefault(grant.target.kind, []).append(grant.target)
    accounts = {
        account.account_id: account
        for account in AwsAccount.objects.filter(
            account_id__in={g.target.account_id for g in grants.values() if g.target.account_id},
            enabled=True,
        )
    }
    # A bucket's ARN has no account: only the inventory knows whose it is.
    buckets = {
        bucket.name: bucket
        for bucket in CloudResource.objects.filter(
            type=CloudResource.Type.S3,
            name__in=[t.name for t in by_kind.get(_KIND_S3, [])],
            account__enabled=True,
        ).select_related("account")
    }
    queues_and_topics = {
        resource.arn: resource.policy
        for resource in CloudResource.objects.filter(
            arn__in=[t.arn for t in by_kind.get(_KIND_SQS, []) + by_kind.get(_KIND_SNS, [])]
        )
    }
    trust_policies = {
        target_role.arn: target_role.trust_policy or None
        for target_role in IamRole.objects.filter(
            arn__in=[t.arn for t in by_kind.get(_KIND_ROLE, [])]
        )
    }

    own_account = role.account.account_id
    sid = statement_sid(role.arn)
    changes = []
    for arn, grant in sorted(grants.items()):
        target = grant.target
        account: AwsAccount | None
        if target.kind == _KIND_S3:
            bucket = buckets.get(target.name)
            account = bucket.account if bucket else None
            previous = bucket.policy if bucket else None
        else:
            account = accounts.get(target.account_id)
            if target.kind == _KIND_ROLE:
                # Only a role the inventory knows by this exact ARN: IAM finds
                # roles by name, so a made-up path would reach another role.
                if arn not in trust_policies or role_protected(arn):
                    continue
                previous = trust_policies.get(arn)
            else:
                previous = queues_and_topics.get(arn)
        if account is None or account.account_id == own_account:
            continue
        changes.append(
            ChangeSpec(
                type=(
                    Change.Type.TRUST_POLICY_UPDATE.value
                    if target.kind == _KIND_ROLE
                    else Change.Type.RESOURCE_POLICY_PUT.value
                ),
                target_arn=arn,
                account_id=account.account_id,
                payload={"statements": _statements(sid, role.arn, grant)},
                previous=previous,
                automatic=True,
                note=(
                    f"{target.name} is in {account}: its {_POLICY_NAME[target.kind]} must also "
                    "allow this role."
                ),
            )
        )
    return changes


def _grants(document: Any, *, partition: str) -> dict[str, _Grant]:
    """What `document` allows on each single bucket, queue, topic or role,
    by the ARN of that bucket, queue, topic or role."""
    grants: dict[str, _Grant] = {}
    for actions, resources, condition in _allow_statements(document):
        for resource in resources:
            target = _target(resource, partition)
            if target is None:
                continue
            applying = [
                action
                for action in actions
                if _applies(action, target.kind) and _acts_on(action, target, resource)
            ]
            if not applying:
                continue
            grant = grants.setdefault(target.arn, _Grant(target=target))
            where = resource if target.kind != _KIND_ROLE else ""
            grant.pairs.setdefault((condition, where), set()).update(applying)
    return grants


def statement_sid(role_arn: str) -> str:
    """The Sid of every statement added for `role_arn`: letters and digits only,
    the same for every request of that role."""
    digest = hashlib.sha256(role_arn.encode()).hexdigest()[:_SID_DIGEST_CHARS]
    return f"{SID_PREFIX}{digest}"


def _statements(sid: str, role_arn: str, grant: _Grant) -> list[dict[str, Any]]:
    """The statements that allow the role exactly the (action, resource) pairs
    of `grant` under their conditions: resources granted the same actions under
    the same condition share a statement, nothing else does."""
    shapes: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (condition, resource), granted in grant.pairs.items():
        shapes.setdefault((condition, tuple(sorted(granted))), []).append(resource)
    statements: list[dict[str, Any]] = []
    for (condition, actions), resources in sorted(
        shapes.items(), key=lambda item: (sorted(item[1]), item[0][1], item[0][0])
    ):
        statement: dict[str, Any] = {
            "Sid": sid if not statements else f"{sid}S{len(statements) + 1}",
            "Effect": "Allow",
            "Principal": {"AWS": role_arn},
            "Action": list(actions),
        }
        if grant.target.kind != _KIND_ROLE:
            statement["Resource"] = sorted(resources)
        if condition:
            statement["Condition"] = json.loads(condition)
        statements.append(statement)
    return statements


def _allow_statements(document: Any) -> Iterator[tuple[list[str], list[str], str]]:
    """(actions, resources, condition as canonical JSON or "") of each Allow
    statement naming actions and resources explicitly."""
    if not isinstance(document, dict):
        return
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        # NotAction/NotResource grant everything but a list: the resource side
        # cannot be derived from them without widening it.
        if "NotAction" in statement or "NotResource" in statement:
            continue
        condition = statement.get("Condition")
        if condition is not None and not isinstance(condition, dict):
            continue  # IAM refuses it; guessing its meaning could widen the grant
        actions = _strings(statement.get("Action"))
        resources = _strings(statement.get("Resource"))
        if actions and resources:
            yield actions, resources, json.dumps(condition, sort_keys=True) if condition else ""


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _partition(arn: str) -> str:
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 else ""


def _target(resource: str, partition: str) -> _Target | None:
    """The bucket, queue, topic or role `resource` names, or None when it names
    no single one of them (wildcards, another partition, other services)."""
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[1] != partition:
        return None
    _, _, service, region, account, rest = parts
    if service == "s3":
        bucket = rest.split("/", 1)[0]
        if region or account or not _BUCKET_RE.fullmatch(bucket):
            return None
        return _Target(_KIND_S3, f"arn:{partition}:s3:::{bucket}", bucket, "")
    if service in (_KIND_SQS, _KIND_SNS):
        if not (
            _REGION_RE.fullmatch(region)
            and _ACCOUNT_RE.fullmatch(account)
            and _QUEUE_OR_TOPIC_RE.fullmatch(rest)
        ):
            return None
        return _Target(service, resource, rest, account)
    if service == "iam":
        if (
            region
            or not _ACCOUNT_RE.fullmatch(account)
            or not _ROLE_RE.fullmatch(rest)
            or _VARIABLE_OR_WILDCARD_RE.search(rest)
        ):
            return None
        return _Target(_KIND_ROLE, resource, rest.rsplit("/", 1)[-1], account)
    return None


def _acts_on(action: str, target: _Target, resource: str) -> bool:
    """Whether an S3 `action` acts on the kind of ARN `resource` is: a bucket
    (no key) or an object (a key or key prefix). Anything else, and an action
    the IAM reference does not know, is kept as the identity policy writes it."""
    if target.kind != _KIND_S3:
        return True
    known = expand(action)
    if not known:
        return True
    wanted = "object" if "/" in resource.split(":", 5)[5] else "bucket"
    return any(kind.name == wanted for found in known for kind in found.resource_types)


def _applies(action: str, kind: str) -> bool:
    """Whether `action`, as written, is one the target's own policy can grant."""
    prefix, _, name = action.partition(":")
    if prefix.lower() != _ACTION_PREFIX[kind] or not name:
        return False
    if kind == _KIND_ROLE:
        # Wildcards such as sts:* or sts:Assume* stay as written: the trust
        # policy then allows what the identity policy does.
        pattern = name.lower()
        return any(fnmatchcase(known, pattern) for known in _ASSUME_ROLE_ACTIONS)
    return True
