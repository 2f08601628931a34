"""Every kind of change a request carries: how it is validated when created, what
was there before, how it is applied through the spoke role of its account, and
how temporary access is taken away again.

The services orchestrate (who may, in which order, claims and statuses); this
module knows IAM, S3, SQS and SNS. Each function here handles every type in
`Change.Type`, through the table `_KINDS` at the end of the module.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

import boto3
from botocore.exceptions import ClientError
from django.conf import settings

from accounts.fetch import policy_document
from accounts.models import AwsAccount, CloudResource, IamRole, ManagedPolicy
from accounts.selectors import policy_uses, role_protected, spoke_role_names
from iamportal import aws
from requests_app.models import Change
from requests_app.policy.arns import BUCKET_ARN as _BUCKET_ARN
from requests_app.policy.arns import POLICY_ARN as _POLICY_ARN
from requests_app.policy.arns import QUEUE_OR_TOPIC_ARN as _QUEUE_OR_TOPIC_ARN
from requests_app.policy.arns import ROLE_ARN as _ROLE_ARN
from requests_app.policy.limits import (
    ARN_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    IAM_PATH_MAX_LENGTH,
    MANAGED_POLICY_MAX_SIZE,
    POLICY_VERSIONS_MAX,
    RESOURCE_POLICY_MAX_SIZE,
    ROLE_TAGS_MAX,
    TAG_KEY_MAX_LENGTH,
    TAG_VALUE_MAX_LENGTH,
    TRUST_POLICY_MAX_SIZE,
)
from requests_app.policy.lint import policy_lint
from requests_app.policy.lint_rules import BLOCKING_LINT_CODES, DOCUMENT_KEYS, STATEMENT_KEYS


class ChangeInvalid(ValueError):
    """A change that cannot be made: `errors` maps a field (type, target_arn,
    payload, or a payload key such as payload.document) to a user-facing message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class ChangeRefused(Exception):
    """AWS would allow it, but doing it would break something: the message says
    what a person has to do first. Nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ChangeSpec:
    """A validated change, ready to be stored as a `Change` row."""

    type: str
    target_arn: str
    account_id: str
    payload: dict[str, Any]
    previous: Any = None
    automatic: bool = False
    # Why iamportal added it (automatic changes), shown on the request page.
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- limits ------------------------------------------------------------------------------

# IAM's own limits and the ARN patterns are in requests_app/policy/limits.py and arns.py.
VERSION = "2012-10-17"
# Compact JSON characters: above the largest document any change type takes (SNS, 30 KB).
PAYLOAD_MAX_SIZE = 64 * 1024
# A policy needs about 7 levels (Statement, Condition, operator, key, values).
JSON_MAX_DEPTH = 32
MERGE_STATEMENTS_MAX = 100

# ASCII only: \w and \d would otherwise accept letters and digits IAM refuses.
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_MERGE_SID = re.compile(r"[A-Za-z0-9]+", re.ASCII)
# IAM's tag rule is [\p{L}\p{Z}\p{N}_.:/=+\-@]: letters and digits of any script, and
# spaces (only the plain one here; \s would let in line breaks).
_TAG_TEXT = re.compile(r"[\w .:/=+\-@]*")
# Names listed in a summary before "and N more".
_LISTED = 5

# Sids of the statements iamportal adds for cross-account grants start with this.
AUTOMATIC_SID_PREFIX = "Iamportal"
_POLICY_KIND_NAME = {"s3": "bucket policy", "sqs": "queue policy", "sns": "topic policy"}
_RESOURCE_NOUN = {"s3": "bucket", "sqs": "queue", "sns": "topic"}
# What AWS answers when the thing a revert would remove is already gone.
_GONE_CODES = frozenset(
    {
        "NoSuchEntity",
        "NoSuchBucket",
        "NoSuchBucketPolicy",
        "NotFound",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
    }
)


# --- the interface -----------------------------------------------------------------------


def change_validate(*, type: str, target_arn: str, payload: Any) -> ChangeSpec:
    """Check a change as the requester (or the wizard) describes it and return it
    normalised, with `previous` taken from the inventory. Raises ChangeInvalid."""
    if not isinstance(type, str) or type not in _KINDS:
        choices = ", ".join(_KINDS)
        raise ChangeInvalid({"type": f"Unknown change type. Use one of: {choices}."})
    if not isinstance(target_arn, str) or not target_arn:
        raise ChangeInvalid({"target_arn": "Give the ARN of what the change is about."})
    if len(target_arn) > ARN_MAX_LENGTH:
        raise ChangeInvalid({"target_arn": f"An ARN is at most {ARN_MAX_LENGTH} characters."})
    if not isinstance(payload, dict):
        raise ChangeInvalid({"payload": "The payload must be a JSON object."})
    problem = _json_problem(payload)
    if problem:
        raise ChangeInvalid({"payload": f"The payload {problem}."})
    if _size(payload) > PAYLOAD_MAX_SIZE:
        raise ChangeInvalid({"payload": f"The payload is over {PAYLOAD_MAX_SIZE} characters."})
    kind = Change.Type(type)
    checked = _KINDS[kind].validate(target_arn, payload)
    return ChangeSpec(
        type=kind.value,
        target_arn=target_arn,
        account_id=checked.account_id,
        payload=checked.payload,
        previous=checked.previous,
    )


def change_apply(*, change: Change, session: boto3.Session) -> dict[str, Any]:
    """Make the change in AWS with `session` (the spoke role of the change's
    account). Returns what undoing it later needs (stored as `Change.outcome`).
    Applying a change again once it is in place succeeds and changes nothing.
    Raises botocore's ClientError/BotoCoreError when AWS refuses, ChangeRefused
    when iamportal does."""
    return _kind(change).apply(change, session)


def change_revert(*, change: Change, session: boto3.Session) -> None:
    """Undo an applied change when its temporary access expires. What is already
    gone counts as undone. Raises ClientError/BotoCoreError or ChangeRefused."""
    try:
        _kind(change).revert(change, session)
    except ClientError as exc:
        if _code(exc) not in _GONE_CODES:
            raise


def change_guard(*, change: Change, session: boto3.Session) -> None:
    """Refuse a change that would reach one of iamportal's own roles, as AWS has
    them now: the services call this for every change of a request before any
    of them is applied. The inventory checked at submission may be stale (a
    policy attached to the spoke role by hand since), so a new version of a
    managed policy is checked live. Raises ChangeRefused, or ClientError when
    AWS cannot say (then nothing is written either)."""
    name = _last_segment(change.target_arn)
    if role_protected(change.target_arn):
        raise ChangeRefused(protected_role_refusal(name) + " Nothing was changed.")
    if change.type == Change.Type.MANAGED_POLICY_VERSION:
        uses = _protected_uses_live(_iam(session), change.target_arn, change.account_id)
        if uses:
            raise ChangeRefused(
                protected_policy_refusal(change.target_arn, uses, live=True)
                + " Nothing was changed."
            )


def _protected_uses_live(
    iam: Any, policy_arn: str, account_id: str
) -> list[tuple[str, bool, bool]]:
    """(role name, attached, boundary) for each of iamportal's own roles that uses
    the policy in AWS now.

    ListEntitiesForPolicy without a usage filter answers both the roles the
    policy is attached to and those it is the permissions boundary of. The
    spoke role and the protected roles of the inventory are also read one by
    one (GetRole): that finds a boundary even where ListEntitiesForPolicy does
    not report boundaries (the embedded AWS of the demo and the tests)."""
    partition = policy_arn.split(":")[1]
    spokes = spoke_role_names(account_ids=[account_id])
    by_path = any("/" in pattern for pattern in settings.IAMPORTAL_PROTECTED_ROLES)
    listed: dict[str, str] = {}
    pages = iam.get_paginator("list_entities_for_policy").paginate(
        PolicyArn=policy_arn, EntityFilter="Role"
    )
    for page in pages:
        for entry in page.get("PolicyRoles", []):
            listed[str(entry["RoleName"]).lower()] = str(entry["RoleName"])
    candidates = {spokes.get(account_id) or settings.IAMPORTAL_SPOKE_ROLE_NAME.lower()}
    for arn in IamRole.objects.filter(account__account_id=account_id).values_list("arn", flat=True):
        if role_protected(arn, spoke_names=spokes):
            candidates.add(_last_segment(arn).lower())
    uses: list[tuple[str, bool, bool]] = []
    for key in sorted(set(listed) | candidates):
        name = listed.get(key, key)
        by_name = f"arn:{partition}:iam::{account_id}:role/{name}"
        if (
            key not in candidates
            and not by_path
            and not role_protected(by_name, spoke_names=spokes)
        ):
            continue
        # Its path decides path patterns; its boundary, how it uses the policy.
        found = _tolerating(_ALREADY_GONE, iam.get_role, RoleName=name)
        if not found or not role_protected(found["Role"]["Arn"], spoke_names=spokes):
            continue
        boundary_arn = (found["Role"].get("PermissionsBoundary") or {}).get(
            "PermissionsBoundaryArn", ""
        )
        boundary = str(boundary_arn).lower() == policy_arn.lower()
        attached = key in listed and not boundary
        if attached or boundary:
            uses.append((str(found["Role"]["RoleName"]), attached, boundary))
    return uses


def change_document(change: Change) -> tuple[Any, Any] | None:
    """(before, after) policy documents to show as a diff, or None when the change
    is not about a document."""
    payload = _payload_of(change)
    kind = change.type
    if kind == Change.Type.INLINE_POLICY_DELETE:
        return change.previous, None
    if kind == Change.Type.MANAGED_POLICY_CREATE:
        return None, payload.get("document")
    if kind in (Change.Type.INLINE_POLICY_PUT, Change.Type.MANAGED_POLICY_VERSION):
        return change.previous, payload.get("document")
    if kind in (Change.Type.TAGS_PUT, Change.Type.TAGS_DELETE):
        # Tags decide who may use a role through iamportal: show their values.
        before = change.previous if isinstance(change.previous, dict) else {}
        before = {k: v for k, v in before.items() if v is not None}
        tags = payload.get("tags")
        after = dict(before)
        if kind == Change.Type.TAGS_PUT and isinstance(tags, dict):
            after.update(tags)
        for key in _strs(payload.get("keys")) if kind == Change.Type.TAGS_DELETE else []:
            after.pop(key, None)
        return before, after
    if kind in (Change.Type.TRUST_POLICY_UPDATE, Change.Type.RESOURCE_POLICY_PUT):
        return change.previous, principal_policy_after(previous=change.previous, payload=payload)
    return None


def principal_policy_after(*, previous: Any, payload: dict[str, Any]) -> Any:
    """The trust or resource policy once a change with `payload` is applied to
    `previous`: the new document, or `previous` with the statements merged in."""
    if "statements" in payload:
        return _merged(previous, _dicts(payload.get("statements")))
    return payload.get("document")


def change_summary(change: Change) -> str:
    """One line saying what the change does, e.g. "Attach arn:aws:iam::aws:policy/X"."""
    payload = _payload_of(change)
    target = change.target_arn
    role = f"role {_last_segment(target)}"
    kind = change.type
    if kind == Change.Type.INLINE_POLICY_PUT:
        verb = "Add" if change.previous is None else "Update"
        return f"{verb} inline policy {payload.get('policy_name', '')} on {role}"
    if kind == Change.Type.INLINE_POLICY_DELETE:
        return f"Delete inline policy {payload.get('policy_name', '')} from {role}"
    if kind == Change.Type.MANAGED_POLICY_ATTACH:
        return f"Attach {payload.get('policy_arn', '')} to {role}"
    if kind == Change.Type.MANAGED_POLICY_DETACH:
        return f"Detach {payload.get('policy_arn', '')} from {role}"
    if kind == Change.Type.TRUST_POLICY_UPDATE:
        return _policy_summary(payload, f"the trust policy of {role}")
    if kind == Change.Type.TAGS_PUT:
        tags = payload.get("tags")
        pairs = [f"{k}={v}" for k, v in tags.items()] if isinstance(tags, dict) else []
        access = {settings.IAMPORTAL_AUTH_TAG, settings.IAMPORTAL_AUTH_CLI_TAG}
        warning = (
            " (these tags decide who may use the role through iamportal)"
            if isinstance(tags, dict) and access & set(tags)
            else ""
        )
        return f"Set tags {_listing(pairs)} on {role}{warning}"
    if kind == Change.Type.TAGS_DELETE:
        return f"Remove tags {_listing(_strs(payload.get('keys')))} from {role}"
    if kind == Change.Type.PERMISSIONS_BOUNDARY_PUT:
        return f"Set the permissions boundary of {role} to {payload.get('policy_arn', '')}"
    if kind == Change.Type.PERMISSIONS_BOUNDARY_DELETE:
        return f"Remove the permissions boundary of {role}"
    if kind == Change.Type.MANAGED_POLICY_CREATE:
        return f"Create managed policy {_last_segment(target)} in account {change.account_id}"
    if kind == Change.Type.MANAGED_POLICY_VERSION:
        return f"New default version of managed policy {_last_segment(target)}"
    if kind == Change.Type.RESOURCE_POLICY_PUT:
        parsed = _resource_parse(target)
        if parsed is None:
            return f"Update the resource policy of {target}"
        service, name = parsed[0], parsed[1]
        return _policy_summary(payload, f"the {_POLICY_KIND_NAME[service]} of {name}")
    return f"{kind} on {target}"


# --- validation helpers ------------------------------------------------------------------


class _Checked(NamedTuple):
    account_id: str
    payload: dict[str, Any]
    previous: Any


def _invalid(where: str, message: str) -> NoReturn:
    raise ChangeInvalid({where: message})


def _json_problem(value: Any, depth: int = 0) -> str | None:
    """What makes `value` unfit to store and send on, as the end of a sentence."""
    if depth > JSON_MAX_DEPTH:
        return f"nests more than {JSON_MAX_DEPTH} levels deep"
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        # NaN and Infinity are not JSON, and PostgreSQL refuses them.
        return None if math.isfinite(value) else "contains a number that is not finite"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, list):
        for item in value:
            problem = _json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "has a key that is not a string"
            problem = _text_problem(key) or _json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return "contains something that is not JSON"


def _text_problem(text: str) -> str | None:
    # PostgreSQL stores neither NUL characters nor lone surrogates in JSON.
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains text that is not valid Unicode"
    return None


def _size(value: Any) -> int:
    """Characters of compact JSON, as AWS counts policy sizes (white space excluded)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _fields(
    payload: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    known = required + optional
    unknown = sorted(key for key in payload if key not in known)
    if unknown:
        takes = ", ".join(known) if known else "no keys: give an empty object"
        _invalid("payload", f"Unknown keys: {', '.join(unknown)[:200]}. This change takes {takes}.")
    for key in required:
        if key not in payload:
            _invalid(f"payload.{key}", f"Give {key}.")


def _account(account_id: str, where: str = "target_arn") -> AwsAccount:
    account = AwsAccount.objects.filter(account_id=account_id, enabled=True).first()
    if account is None:
        _invalid(where, f"Account {account_id} is not an account iamportal manages.")
    return account


def protected_role_refusal(name: str) -> str:
    """Why a request may not change the role `name`."""
    return (
        f"Role {name} is one of iamportal's own roles (managed by iamportal): requests "
        "cannot change it."
    )


def _uses_described(uses: list[tuple[str, bool, bool]]) -> str:
    """From (name, attached, boundary) triples: "attached to role a, the
    permissions boundary of role b"."""
    phrases: list[str] = []
    for name, attached, boundary in uses:
        if attached:
            phrases.append(f"attached to role {name}")
        if boundary:
            phrases.append(f"the permissions boundary of role {name}")
    return _listing(phrases)


def protected_policy_refusal(
    policy_arn: str, uses: list[tuple[str, bool, bool]], *, live: bool = False
) -> str:
    """Why a request may not change the managed policy `policy_arn`, which iamportal's
    own roles use as described by (role name, attached, boundary) triples; `live`
    when AWS said so at apply, rather than the inventory."""
    return (
        f"Policy {_last_segment(policy_arn)} is {'now, in AWS, ' if live else ''}"
        f"{_uses_described(uses)}, one of iamportal's own roles (managed by iamportal): "
        "requests cannot change it."
    )


def _role(target_arn: str) -> IamRole:
    match = _ROLE_ARN.fullmatch(target_arn)
    if match is None:
        _invalid(
            "target_arn",
            "Name a role by its ARN, such as arn:aws:iam::123456789012:role/payments-api.",
        )
    if len(match.group(3)) > IAM_PATH_MAX_LENGTH:
        _invalid("target_arn", f"A role's path is at most {IAM_PATH_MAX_LENGTH} characters.")
    _account(match.group(2))
    if role_protected(target_arn):
        _invalid("target_arn", protected_role_refusal(match.group(4)))
    role = IamRole.objects.select_related("account").filter(arn=target_arn).first()
    if role is None:
        _invalid(
            "target_arn",
            f"The role {target_arn} is not in the inventory: check the ARN, or sync its account.",
        )
    return role


def _policy_name(payload: dict[str, Any]) -> str:
    name = payload.get("policy_name")
    if not isinstance(name, str) or not _POLICY_NAME.fullmatch(name):
        _invalid(
            "payload.policy_name",
            "A policy name is 1-128 letters, digits or +=,.@_- characters.",
        )
    return name


def _policy_arn(payload: dict[str, Any], *, role: IamRole) -> str:
    """A managed policy `role` may use: AWS-managed or one of its own account."""
    arn = payload.get("policy_arn")
    match = _POLICY_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        _invalid(
            "payload.policy_arn",
            "Name a managed policy by its ARN, such as arn:aws:iam::aws:policy/ReadOnlyAccess.",
        )
    partition, owner = match.group(1), match.group(2)
    if partition != role.arn.split(":")[1] or owner not in ("aws", role.account.account_id):
        _invalid(
            "payload.policy_arn",
            "A role can only use AWS-managed policies and the managed policies of its own "
            f"account ({role.account.account_id}).",
        )
    return match.group(0)


def _identity_document(
    value: Any, *, where: str = "payload.document", other_inline_size: int = 0
) -> dict[str, Any]:
    if not isinstance(value, dict):
        _invalid(where, "The policy document must be a JSON object.")
    findings = policy_lint(value, other_inline_policies_size=other_inline_size)
    blocking = [f for f in findings if f.severity == "error" and f.code in BLOCKING_LINT_CODES]
    if blocking:
        _invalid(where, "; ".join(f"{f.title}: {f.detail}" for f in blocking[:5]))
    return value


def _managed_document(value: Any) -> dict[str, Any]:
    document = _identity_document(value)
    size = _size(document)
    if size > MANAGED_POLICY_MAX_SIZE:
        _invalid(
            "payload.document",
            f"A managed policy is at most {MANAGED_POLICY_MAX_SIZE} characters without white "
            f"space; this one is {size}.",
        )
    return document


def _statements_of(document: Any) -> list[Any]:
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement")
    if isinstance(statements, dict):
        return [statements]
    return list(statements) if isinstance(statements, list) else []


def _string_or_strings(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, str) and item for item in value)
    )


def _principal_problem(value: Any) -> str | None:
    if value == "*":
        return None
    if not isinstance(value, dict) or not value:
        return 'has a Principal that is neither "*" nor an object such as {"AWS": "<ARN>"}'
    for key, item in value.items():
        if key not in ("AWS", "Service", "Federated", "CanonicalUser"):
            return f"has an unknown principal type {json.dumps(key)[:80]}"
        if not _string_or_strings(item):
            return f"has a {key} principal that is not a string or a list of strings"
    return None


def _statement_problem(statement: Any, *, trust: bool, merge: bool) -> str | None:
    """What is wrong with one statement of a trust or resource policy, as the end of
    a sentence. (The identity-policy linter flags every Principal, so these have
    their own structural check.)"""
    if not isinstance(statement, dict):
        return "is not an object"
    unknown = sorted(key for key in statement if key not in STATEMENT_KEYS)
    if unknown:
        return f"has unknown elements: {', '.join(unknown)[:200]}"
    sid = statement.get("Sid")
    if merge and (not isinstance(sid, str) or not _MERGE_SID.fullmatch(sid)):
        return "needs a Sid of letters and digits only: it names the statement to replace"
    if "Sid" in statement and not isinstance(sid, str):
        return "has a Sid that is not a string"
    if trust and isinstance(sid, str) and sid and not _MERGE_SID.fullmatch(sid):
        return "has a Sid that is not only letters and digits"
    if statement.get("Effect") not in ("Allow", "Deny"):
        return 'needs an Effect of "Allow" or "Deny"'
    principals = [key for key in ("Principal", "NotPrincipal") if key in statement]
    if trust and principals != ["Principal"]:
        return "needs a Principal (and no NotPrincipal): who may assume the role"
    if len(principals) != 1:
        return "needs a Principal (or NotPrincipal), and not both"
    problem = _principal_problem(statement[principals[0]])
    if problem:
        return problem
    actions = [key for key in ("Action", "NotAction") if key in statement]
    if len(actions) != 1:
        return "needs an Action (or NotAction), and not both"
    if not _string_or_strings(statement[actions[0]]):
        return f"has an {actions[0]} that is not a string or a list of strings"
    resources = [key for key in ("Resource", "NotResource") if key in statement]
    if trust and resources:
        return "has a Resource, which a trust policy does not take: the role is the resource"
    if not trust:
        if len(resources) != 1:
            return "needs a Resource (or NotResource), and not both"
        if not _string_or_strings(statement[resources[0]]):
            return f"has a {resources[0]} that is not a string or a list of strings"
    if "Condition" in statement and not isinstance(statement["Condition"], dict):
        return "has a Condition that is not an object"
    return None


def _principal_document(value: Any, *, trust: bool) -> dict[str, Any]:
    """A whole trust or resource policy, as the replace mode takes it."""
    where = "payload.document"
    if not isinstance(value, dict):
        _invalid(where, "The policy document must be a JSON object.")
    unknown = sorted(key for key in value if key not in DOCUMENT_KEYS)
    if unknown:
        _invalid(where, f"Unknown top-level elements: {', '.join(unknown)[:200]}.")
    if value.get("Version") != VERSION:
        _invalid(where, f'The policy needs "Version": "{VERSION}".')
    if "Id" in value and not isinstance(value["Id"], str):
        _invalid(where, "Id must be a string.")
    statements = value.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        _invalid(where, "The policy needs a Statement: a statement or a list of them.")
    sids: set[str] = set()
    for number, statement in enumerate(statements, start=1):
        problem = _statement_problem(statement, trust=trust, merge=False)
        if problem:
            _invalid(where, f"Statement {number} {problem}.")
        sid = statement.get("Sid")
        if sid:
            if sid in sids:
                _invalid(where, f"Two statements have the Sid {sid}: each needs its own.")
            sids.add(sid)
    return value


def _merge_statements(value: Any, *, trust: bool) -> list[dict[str, Any]]:
    where = "payload.statements"
    if not isinstance(value, list) or not value:
        _invalid(where, "Give a list of statements to add or replace.")
    if len(value) > MERGE_STATEMENTS_MAX:
        _invalid(where, f"Give at most {MERGE_STATEMENTS_MAX} statements.")
    sids: set[str] = set()
    for number, statement in enumerate(value, start=1):
        problem = _statement_problem(statement, trust=trust, merge=True)
        if problem:
            _invalid(where, f"Statement {number} {problem}.")
        if statement["Sid"] in sids:
            _invalid(where, f"Two statements have the Sid {statement['Sid']}: each needs its own.")
        sids.add(statement["Sid"])
    return value


def _principal_policy_payload(
    payload: dict[str, Any], *, previous: Any, trust: bool, max_size: int, what: str
) -> dict[str, Any]:
    """The payload of a trust or resource policy change: replace or merge mode."""
    _fields(payload, required=(), optional=("document", "statements"))
    if ("document" in payload) == ("statements" in payload):
        _invalid(
            "payload",
            'Give either "document" (the whole new policy) or "statements" (statements to add '
            "or replace by Sid), not both.",
        )
    if "document" in payload:
        document = _principal_document(payload["document"], trust=trust)
        normalised: dict[str, Any] = {"document": document}
        where = "payload.document"
    else:
        statements = _merge_statements(payload["statements"], trust=trust)
        taken = {str(s.get("Sid")) for s in _statements_of(previous) if isinstance(s, dict)}
        clashes = sorted(str(s["Sid"]) for s in statements if s["Sid"] in taken)
        if clashes:
            # Replacing someone else's statement would be shown as an addition,
            # and removing ours at expiry would take theirs with it.
            _invalid(
                "payload.statements",
                f"The policy already has a statement with the Sid {', '.join(clashes)}: "
                "use a Sid of your own.",
            )
        if any(str(s["Sid"]).startswith(AUTOMATIC_SID_PREFIX) for s in statements):
            _invalid(
                "payload.statements",
                f"Sids starting with {AUTOMATIC_SID_PREFIX} are iamportal's own: use another.",
            )
        document = _merged(previous, statements)
        normalised = {"statements": statements}
        where = "payload.statements"
    size = _size(document)
    if size > max_size:
        _invalid(
            where,
            f"A {what} is at most {max_size} characters without white space; the result "
            f"would be {size}.",
        )
    return normalised


def _tag_key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not 1 <= len(key) <= TAG_KEY_MAX_LENGTH:
        return f"A tag key is 1-{TAG_KEY_MAX_LENGTH} characters."
    if not _TAG_TEXT.fullmatch(key):
        return f"The tag key {key!r} may only hold letters, digits, spaces and _.:/=+-@."
    if key.lower().startswith("aws:"):
        return f"The tag key {key!r} starts with aws:, which AWS keeps for itself."
    return None


# --- validation per type -----------------------------------------------------------------


def _inline_put_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    _fields(payload, required=("policy_name", "document"))
    name = _policy_name(payload)
    others = {k: v for k, v in (role.inline_policies or {}).items() if k != name}
    document = _identity_document(
        payload["document"], other_inline_size=sum(_size(doc) for doc in others.values())
    )
    previous = (role.inline_policies or {}).get(name)
    return _Checked(role.account.account_id, {"policy_name": name, "document": document}, previous)


def _inline_delete_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    _fields(payload, required=("policy_name",))
    name = _policy_name(payload)
    current = role.inline_policies or {}
    if name not in current:
        _invalid("payload.policy_name", f"Role {role.name} has no inline policy {name}.")
    return _Checked(role.account.account_id, {"policy_name": name}, current[name])


def _attached(role: IamRole) -> set[str]:
    return {str(p.get("arn")) for p in (role.managed_policies or []) if isinstance(p, dict)}


def _attach_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    _fields(payload, required=("policy_arn",))
    arn = _policy_arn(payload, role=role)
    if arn in _attached(role):
        # Undoing temporary access would otherwise detach a policy the role had before.
        _invalid("payload.policy_arn", f"{arn} is already attached to role {role.name}.")
    return _Checked(role.account.account_id, {"policy_arn": arn}, None)


def _detach_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    _fields(payload, required=("policy_arn",))
    arn = _policy_arn(payload, role=role)
    if arn not in _attached(role):
        _invalid("payload.policy_arn", f"{arn} is not attached to role {role.name}.")
    return _Checked(role.account.account_id, {"policy_arn": arn}, arn)


def _trust_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    previous = role.trust_policy or None
    normalised = _principal_policy_payload(
        payload,
        previous=previous,
        trust=True,
        max_size=TRUST_POLICY_MAX_SIZE,
        what="trust policy",
    )
    return _Checked(role.account.account_id, normalised, previous)


def _tags_put_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    _fields(payload, required=("tags",))
    tags = payload["tags"]
    if not isinstance(tags, dict) or not tags:
        _invalid("payload.tags", 'Give the tags as an object, such as {"team": "payments"}.')
    seen: set[str] = set()
    for key, value in tags.items():
        problem = _tag_key_problem(key)
        if problem:
            _invalid("payload.tags", problem)
        if key.lower() in seen:
            _invalid("payload.tags", f"IAM tag keys ignore case: {key!r} is given twice.")
        seen.add(key.lower())
        if not isinstance(value, str) or len(value) > TAG_VALUE_MAX_LENGTH:
            _invalid(
                "payload.tags",
                f"The value of tag {key!r} must be a string of at most {TAG_VALUE_MAX_LENGTH} "
                "characters.",
            )
        if not _TAG_TEXT.fullmatch(value):
            _invalid(
                "payload.tags",
                f"The value of tag {key!r} may only hold letters, digits, spaces and _.:/=+-@.",
            )
    # IAM tag keys of a role ignore case: "Team" replaces "team".
    current = {str(k).lower(): v for k, v in (role.tags or {}).items()}
    total = len(set(current) | seen)
    if total > ROLE_TAGS_MAX:
        _invalid(
            "payload.tags",
            f"A role has at most {ROLE_TAGS_MAX} tags; with these it would have {total}.",
        )
    previous = {key: current.get(key.lower()) for key in tags}
    return _Checked(role.account.account_id, {"tags": dict(tags)}, previous)


def _tags_delete_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    _fields(payload, required=("keys",))
    keys = payload["keys"]
    if not isinstance(keys, list) or not keys or len(keys) > ROLE_TAGS_MAX:
        _invalid("payload.keys", f"Give a list of 1 to {ROLE_TAGS_MAX} tag keys.")
    current = {str(k).lower(): v for k, v in (role.tags or {}).items()}
    seen: set[str] = set()
    for key in keys:
        problem = _tag_key_problem(key)
        if problem:
            _invalid("payload.keys", problem)
        if key.lower() in seen:
            _invalid("payload.keys", f"IAM tag keys ignore case: {key!r} is given twice.")
        seen.add(key.lower())
        if key.lower() not in current:
            _invalid("payload.keys", f"Role {role.name} has no tag {key!r}.")
    previous = {key: current[key.lower()] for key in keys}
    return _Checked(role.account.account_id, {"keys": list(keys)}, previous)


def _boundary_put_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    _fields(payload, required=("policy_arn",))
    arn = _policy_arn(payload, role=role)
    previous = role.permissions_boundary_arn or None
    if arn == previous:
        _invalid("payload.policy_arn", f"{arn} already is the boundary of role {role.name}.")
    return _Checked(role.account.account_id, {"policy_arn": arn}, previous)


def _boundary_delete_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    role = _role(target_arn)
    _fields(payload, required=())
    if not role.permissions_boundary_arn:
        _invalid("target_arn", f"Role {role.name} has no permissions boundary.")
    return _Checked(role.account.account_id, {}, role.permissions_boundary_arn)


def _customer_policy_arn(target_arn: str) -> re.Match[str]:
    match = _POLICY_ARN.fullmatch(target_arn)
    if match is None:
        _invalid(
            "target_arn",
            "Name a managed policy by its ARN, such as "
            "arn:aws:iam::123456789012:policy/invoices-read.",
        )
    if match.group(2) == "aws":
        _invalid("target_arn", "AWS-managed policies belong to AWS: they cannot be changed.")
    if len(match.group(3)) > IAM_PATH_MAX_LENGTH:
        _invalid("target_arn", f"A policy's path is at most {IAM_PATH_MAX_LENGTH} characters.")
    return match


def _managed_create_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    match = _customer_policy_arn(target_arn)
    account = _account(match.group(2))
    name = match.group(4)
    # IAM policy names are unique in an account whatever their case and path.
    if ManagedPolicy.objects.filter(account=account, name__iexact=name).exists():
        _invalid("target_arn", f"Account {account.account_id} already has a policy named {name}.")
    _fields(payload, required=("document",), optional=("description",))
    normalised: dict[str, Any] = {"document": _managed_document(payload["document"])}
    if "description" in payload:
        description = payload["description"]
        if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_LENGTH:
            _invalid(
                "payload.description",
                f"A description is a string of at most {DESCRIPTION_MAX_LENGTH} characters.",
            )
        if description:
            normalised["description"] = description
    return _Checked(account.account_id, normalised, None)


def _managed_version_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    match = _customer_policy_arn(target_arn)
    _account(match.group(2))
    policy = ManagedPolicy.objects.filter(arn=target_arn).first()
    if policy is None:
        _invalid(
            "target_arn",
            f"The policy {target_arn} is not in the inventory: check the ARN, or sync its account.",
        )
    # A new default version changes every role that uses the policy, whichever
    # role the request is about.
    protected = [
        (use.role.name, use.attached, use.boundary)
        for use in policy_uses(policy_arn=policy.arn)
        if use.protected
    ]
    if protected:
        _invalid("target_arn", protected_policy_refusal(policy.arn, protected))
    _fields(payload, required=("document",))
    document = _managed_document(payload["document"])
    if document == policy.document:
        _invalid("payload.document", "This is the document of the current default version.")
    return _Checked(match.group(2), {"document": document}, policy.document or None)


def _resource_parse(arn: str) -> tuple[str, str, str, str] | None:
    """(service, name, account id, region) of a bucket, queue or topic ARN; a
    bucket's ARN has neither account nor region."""
    bucket = _BUCKET_ARN.fullmatch(arn)
    if bucket:
        return "s3", bucket.group(2), "", ""
    match = _QUEUE_OR_TOPIC_ARN.fullmatch(arn)
    if match:
        return match.group(2), match.group(5), match.group(4), match.group(3)
    return None


def _resource_validate(target_arn: str, payload: dict[str, Any]) -> _Checked:
    parsed = _resource_parse(target_arn)
    if parsed is None:
        _invalid(
            "target_arn",
            "Name a bucket, queue or topic by its ARN, such as arn:aws:s3:::acme-invoices, "
            "arn:aws:sqs:us-east-1:123456789012:jobs or arn:aws:sns:us-east-1:123456789012:events.",
        )
    service, name, account_id, _ = parsed
    resources = CloudResource.objects.select_related("account").filter(type=service)
    # A bucket's ARN names no account: the inventory knows whose it is.
    resource = (
        resources.filter(name=name).first()
        if service == "s3"
        else resources.filter(arn=target_arn).first()
    )
    if service != "s3":
        _account(account_id)
    noun = _RESOURCE_NOUN[service]
    if resource is None:
        _invalid(
            "target_arn",
            f"The {noun} {name} is not in the inventory: check the ARN, or sync its account.",
        )
    if not resource.account.enabled:
        _invalid(
            "target_arn",
            f"The {noun} {name} is in account {resource.account.account_id}, which iamportal "
            "does not manage any more.",
        )
    previous = resource.policy or None
    normalised = _principal_policy_payload(
        payload,
        previous=previous,
        trust=False,
        max_size=RESOURCE_POLICY_MAX_SIZE[service],
        what=_POLICY_KIND_NAME[service],
    )
    return _Checked(resource.account.account_id, normalised, previous)


# --- documents ---------------------------------------------------------------------------


def _merged(current: Any, statements: list[dict[str, Any]]) -> dict[str, Any]:
    """`current` with `statements` in it: a statement with the Sid of one of them is
    replaced in place, the others are appended; everything else is kept."""
    document = copy.deepcopy(current) if isinstance(current, dict) else {}
    document.setdefault("Version", VERSION)
    incoming = {s.get("Sid"): copy.deepcopy(s) for s in statements}
    result: list[Any] = []
    for statement in _statements_of(document):
        sid = statement.get("Sid") if isinstance(statement, dict) else None
        result.append(incoming.pop(sid) if sid in incoming else statement)
    result.extend(incoming.values())
    document["Statement"] = result
    return document


def _without(current: Any, removed: Callable[[Any], bool]) -> tuple[dict[str, Any] | None, bool]:
    """(`current` without the statements `removed` picks, or None when none is
    left; whether anything was removed)."""
    if not isinstance(current, dict):
        return None, False
    statements = _statements_of(current)
    kept = [s for s in statements if not removed(s)]
    if len(kept) == len(statements):
        return current, False
    if not kept:
        return None, True
    document = copy.deepcopy(current)
    document["Statement"] = kept
    return document, True


def _with_sid(sids: set[str]) -> Callable[[Any], bool]:
    return lambda statement: isinstance(statement, dict) and statement.get("Sid") in sids


def _one_of(applied: list[Any]) -> Callable[[Any], bool]:
    sids = {str(s["Sid"]) for s in applied if isinstance(s, dict) and s.get("Sid")}
    return lambda statement: statement in applied or _with_sid(sids)(statement)


def _same_document(a: Any, b: Any) -> bool:
    return policy_document(a) == policy_document(b)


def _dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


# --- apply and revert helpers ------------------------------------------------------------


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _payload_of(change: Change) -> dict[str, Any]:
    return change.payload if isinstance(change.payload, dict) else {}


def _outcome_of(change: Change) -> dict[str, Any]:
    return change.outcome if isinstance(change.outcome, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strs(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _last_segment(arn: str) -> str:
    # Role and policy names are the last segment after their path; bucket, queue
    # and topic names the last after a colon.
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _iam(session: boto3.Session) -> Any:
    return aws.client("iam", session=session)


def _tolerating(codes: frozenset[str], call: Callable[..., Any], **params: Any) -> Any:
    """`call(**params)`, where AWS answering one of `codes` means it is already done."""
    try:
        return call(**params)
    except ClientError as exc:
        if _code(exc) in codes:
            return None
        raise


_ALREADY_GONE = frozenset({"NoSuchEntity"})


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _principals(statements: list[Any]) -> list[str]:
    """Who the Allow statements let in, as written: what a reviewer must see."""
    found: list[str] = []
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if isinstance(principal, str):
            found.append(principal)
        elif isinstance(principal, dict):
            for values in principal.values():
                found += [values] if isinstance(values, str) else _strs(values)
    return sorted(set(found))


def _policy_summary(payload: dict[str, Any], what: str) -> str:
    if "statements" in payload:
        statements = _dicts(payload.get("statements"))
        count = len(statements)
        noun = "statement" if count == 1 else "statements"
        summary = f"Add {count} {noun} to {what}"
    else:
        document = payload.get("document")
        statements = _statements_of(document) if isinstance(document, dict) else []
        summary = f"Replace {what}"
    allowed = _principals(statements)
    return f"{summary}, allowing {_listing(allowed)}" if allowed else summary


# --- apply and revert per type -----------------------------------------------------------


def _inline_put_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam, payload = _iam(session), _payload_of(change)
    role, name = _last_segment(change.target_arn), payload["policy_name"]
    # A retried apply (its worker died after the write reached AWS) finds the
    # document in place and writes nothing.
    found = _tolerating(_ALREADY_GONE, iam.get_role_policy, RoleName=role, PolicyName=name)
    if found and _same_document(found["PolicyDocument"], payload["document"]):
        return {}
    iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=_dumps(payload["document"]))
    return {}


def _inline_put_revert(change: Change, session: boto3.Session) -> None:
    iam = _iam(session)
    role, name = _last_segment(change.target_arn), _payload_of(change)["policy_name"]
    if isinstance(change.previous, dict):
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=_dumps(change.previous))
    else:
        iam.delete_role_policy(RoleName=role, PolicyName=name)


def _inline_delete_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam = _iam(session)
    role, name = _last_segment(change.target_arn), _payload_of(change)["policy_name"]
    # The document as it is in AWS now, which may be newer than the inventory's.
    found = _tolerating(_ALREADY_GONE, iam.get_role_policy, RoleName=role, PolicyName=name)
    _tolerating(_ALREADY_GONE, iam.delete_role_policy, RoleName=role, PolicyName=name)
    return {"document": policy_document(found["PolicyDocument"])} if found else {}


def _inline_delete_revert(change: Change, session: boto3.Session) -> None:
    document = _outcome_of(change).get("document") or change.previous
    if not isinstance(document, dict):
        raise ChangeRefused("The deleted policy's document is not recorded: it cannot be restored.")
    _iam(session).put_role_policy(
        RoleName=_last_segment(change.target_arn),
        PolicyName=_payload_of(change)["policy_name"],
        PolicyDocument=_dumps(document),
    )


def _attach(change: Change, session: boto3.Session) -> None:
    _iam(session).attach_role_policy(
        RoleName=_last_segment(change.target_arn), PolicyArn=_payload_of(change)["policy_arn"]
    )


def _detach(change: Change, session: boto3.Session) -> None:
    _tolerating(
        _ALREADY_GONE,
        _iam(session).detach_role_policy,
        RoleName=_last_segment(change.target_arn),
        PolicyArn=_payload_of(change)["policy_arn"],
    )


def _attach_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _attach(change, session)
    return {}


def _detach_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _detach(change, session)
    return {}


def _tags_restore(change: Change, session: boto3.Session, keys: list[str]) -> None:
    """Give `keys` back the values they had before; untag those that did not exist."""
    previous = change.previous if isinstance(change.previous, dict) else {}
    iam, role = _iam(session), _last_segment(change.target_arn)
    restore = [{"Key": k, "Value": previous[k]} for k in keys if previous.get(k) is not None]
    absent = [k for k in keys if previous.get(k) is None]
    if absent:
        iam.untag_role(RoleName=role, TagKeys=absent)
    if restore:
        iam.tag_role(RoleName=role, Tags=restore)


def _tags_put_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    tags = _payload_of(change)["tags"]
    _iam(session).tag_role(
        RoleName=_last_segment(change.target_arn),
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    return {}


def _tags_put_revert(change: Change, session: boto3.Session) -> None:
    _tags_restore(change, session, list(_payload_of(change)["tags"]))


def _tags_delete_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _iam(session).untag_role(
        RoleName=_last_segment(change.target_arn), TagKeys=_payload_of(change)["keys"]
    )
    return {}


def _tags_delete_revert(change: Change, session: boto3.Session) -> None:
    _tags_restore(change, session, _strs(_payload_of(change)["keys"]))


def _boundary_set(change: Change, session: boto3.Session, arn: Any) -> None:
    iam, role = _iam(session), _last_segment(change.target_arn)
    if isinstance(arn, str) and arn:
        iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=arn)
    else:
        _tolerating(_ALREADY_GONE, iam.delete_role_permissions_boundary, RoleName=role)


def _boundary_put_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _boundary_set(change, session, _payload_of(change)["policy_arn"])
    return {}


def _boundary_delete_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _boundary_set(change, session, None)
    return {}


def _boundary_revert(change: Change, session: boto3.Session) -> None:
    _boundary_set(change, session, change.previous)


# Trust and resource policies: read, written and removed through a slot, so that
# replace and merge modes work the same on a role, a bucket, a queue and a topic.


@dataclass(frozen=True)
class _PolicySlot:
    read: Callable[[], dict[str, Any] | None]
    write: Callable[[dict[str, Any]], None]
    # What "no policy" means for the service: deleted, or the closest to it.
    clear: Callable[[], None]
    # Whether `clear` really leaves no policy (S3, SQS); SNS topics and roles
    # always have one.
    deletable: bool


def _as_document(raw: Any) -> dict[str, Any] | None:
    document = policy_document(raw) if raw else None
    return document if isinstance(document, dict) else None


def _trust_slot(change: Change, session: boto3.Session) -> _PolicySlot:
    iam, role = _iam(session), _last_segment(change.target_arn)

    def read() -> dict[str, Any] | None:
        found = iam.get_role(RoleName=role)["Role"]
        if found.get("Arn") != change.target_arn:
            # IAM finds a role by name: never write to one with another path.
            raise ChangeRefused(
                f"The role named {role} is {found.get('Arn')}, not {change.target_arn}."
            )
        return _as_document(found.get("AssumeRolePolicyDocument"))

    def write(document: dict[str, Any]) -> None:
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=_dumps(document))

    def clear() -> None:
        raise ChangeRefused(
            f"Removing these statements would leave role {role} without a trust policy, "
            "which IAM does not allow: edit its trust policy by hand."
        )

    return _PolicySlot(read, write, clear, deletable=False)


def _sns_owner_policy(topic_arn: str, account_id: str) -> dict[str, Any]:
    """The policy SNS gives a new topic: only its own account may use it. A topic
    cannot be without a policy, so this stands in for "none"."""
    return {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [
            {
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "SNS:GetTopicAttributes",
                    "SNS:SetTopicAttributes",
                    "SNS:AddPermission",
                    "SNS:RemovePermission",
                    "SNS:DeleteTopic",
                    "SNS:Subscribe",
                    "SNS:ListSubscriptionsByTopic",
                    "SNS:Publish",
                ],
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}},
            }
        ],
    }


def _bucket_region(bucket: str) -> str:
    region = (
        CloudResource.objects.filter(type=CloudResource.Type.S3, name=bucket)
        .values_list("region", flat=True)
        .first()
    )
    return region or aws.default_region()


def _resource_slot(change: Change, session: boto3.Session) -> _PolicySlot:
    parsed = _resource_parse(change.target_arn)
    if parsed is None:
        raise ChangeRefused(f"{change.target_arn} is not a bucket, queue or topic ARN.")
    service, name, _, region = parsed
    if service == "s3":
        s3 = aws.client("s3", session=session, region=_bucket_region(name))

        def s3_read() -> dict[str, Any] | None:
            found = _tolerating(
                frozenset({"NoSuchBucketPolicy"}), s3.get_bucket_policy, Bucket=name
            )
            return _as_document(found["Policy"]) if found else None

        return _PolicySlot(
            s3_read,
            lambda document: s3.put_bucket_policy(Bucket=name, Policy=_dumps(document)),
            lambda: s3.delete_bucket_policy(Bucket=name),
            deletable=True,
        )
    if service == "sqs":
        sqs = aws.client("sqs", session=session, region=region)
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=change.account_id)[
            "QueueUrl"
        ]

        def sqs_read() -> dict[str, Any] | None:
            found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
            return _as_document(found.get("Attributes", {}).get("Policy"))

        def sqs_write(policy: str) -> None:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})

        return _PolicySlot(
            sqs_read,
            lambda document: sqs_write(_dumps(document)),
            # An empty policy is how SQS removes one.
            lambda: sqs_write(""),
            deletable=True,
        )
    sns = aws.client("sns", session=session, region=region)
    arn = change.target_arn

    def sns_read() -> dict[str, Any] | None:
        attributes = sns.get_topic_attributes(TopicArn=arn).get("Attributes", {})
        return _as_document(attributes.get("Policy"))

    def sns_write(document: dict[str, Any]) -> None:
        sns.set_topic_attributes(
            TopicArn=arn, AttributeName="Policy", AttributeValue=_dumps(document)
        )

    return _PolicySlot(
        sns_read,
        sns_write,
        lambda: sns_write(_sns_owner_policy(arn, change.account_id)),
        deletable=False,
    )


def _slot(change: Change, session: boto3.Session) -> _PolicySlot:
    if change.type == Change.Type.TRUST_POLICY_UPDATE:
        return _trust_slot(change, session)
    return _resource_slot(change, session)


def _principal_policy_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    slot, payload = _slot(change, session), _payload_of(change)
    if "statements" in payload:
        # Read from AWS now, not from the inventory: edits made since the request
        # was submitted stay.
        slot.write(_merged(slot.read(), payload["statements"]))
    else:
        slot.write(payload["document"])
    return {}


def _principal_policy_revert(change: Change, session: boto3.Session) -> None:
    slot, payload = _slot(change, session), _payload_of(change)
    if "statements" in payload:
        sids = {str(s.get("Sid")) for s in _dicts(payload["statements"])}
        remaining, removed = _without(slot.read(), _with_sid(sids))
    elif isinstance(change.previous, dict):
        slot.write(change.previous)
        return
    elif slot.deletable:
        slot.clear()
        return
    else:
        # Nothing to go back to: take out what the apply put in, keep the rest.
        applied = _statements_of(payload.get("document"))
        remaining, removed = _without(slot.read(), _one_of(applied))
    if not removed:
        return
    if remaining is None:
        slot.clear()
    else:
        slot.write(remaining)


# Customer-managed policies.


def _versions(iam: Any, arn: str) -> list[dict[str, Any]]:
    return [
        version
        for page in iam.get_paginator("list_policy_versions").paginate(PolicyArn=arn)
        for version in page["Versions"]
    ]


def _version_number(version: dict[str, Any]) -> int:
    # IAM numbers versions v1, v2, ... in the order they are created.
    digits = str(version.get("VersionId", "")).lstrip("v")
    return int(digits) if digits.isdigit() else 0


def _version_document(iam: Any, arn: str, version_id: str) -> Any:
    version = iam.get_policy_version(PolicyArn=arn, VersionId=version_id)["PolicyVersion"]
    return policy_document(version.get("Document"))


def _version_room_make(
    iam: Any, arn: str, versions: list[dict[str, Any]]
) -> tuple[str | None, Any]:
    """IAM keeps at most 5 versions of a policy: when it has 5, delete the oldest
    that is not the default. Returns its id and document (None, None when no
    room had to be made)."""
    if len(versions) < POLICY_VERSIONS_MAX:
        return None, None
    candidates = [v for v in versions if not v.get("IsDefaultVersion")]
    oldest = min(candidates, key=_version_number)
    document = _version_document(iam, arn, oldest["VersionId"])
    iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    return oldest["VersionId"], document


def _managed_create_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam, arn, payload = _iam(session), change.target_arn, _payload_of(change)
    match = _POLICY_ARN.fullmatch(arn)
    if match is None:
        raise ChangeRefused(f"{arn} is not a managed policy ARN.")
    params: dict[str, Any] = {
        "PolicyName": match.group(4),
        "Path": match.group(3),
        "PolicyDocument": _dumps(payload["document"]),
    }
    if payload.get("description"):
        params["Description"] = payload["description"]
    try:
        created = iam.create_policy(**params)["Policy"]
    except ClientError as exc:
        if _code(exc) != "EntityAlreadyExists":
            raise
        # A retried apply finds its own policy; anything else is someone else's.
        existing = iam.get_policy(PolicyArn=arn)["Policy"]
        version_id = existing["DefaultVersionId"]
        if not _same_document(_version_document(iam, arn, version_id), payload["document"]):
            raise ChangeRefused(
                f"A policy {arn} already exists with another document: it was not created "
                "by this change."
            ) from None
        return {"policy_arn": arn, "version_id": version_id}
    return {"policy_arn": created["Arn"], "version_id": created.get("DefaultVersionId", "v1")}


def _attached_to(iam: Any, arn: str) -> list[str]:
    names: list[str] = []
    for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
        names += [f"role {r['RoleName']}" for r in page.get("PolicyRoles", [])]
        names += [f"user {u['UserName']}" for u in page.get("PolicyUsers", [])]
        names += [f"group {g['GroupName']}" for g in page.get("PolicyGroups", [])]
    return names


def _managed_create_revert(change: Change, session: boto3.Session) -> None:
    iam, arn = _iam(session), change.target_arn
    attached = _attached_to(iam, arn)
    if attached:
        raise ChangeRefused(
            f"{arn} is still attached to {', '.join(attached[:5])}: detach it before the "
            "policy can be deleted."
        )
    # IAM deletes a policy only once its other versions are gone.
    for version in _versions(iam, arn):
        if not version.get("IsDefaultVersion"):
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=arn)


def _managed_version_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam, arn = _iam(session), change.target_arn
    document = _payload_of(change)["document"]
    versions = _versions(iam, arn)
    default = next(v for v in versions if v.get("IsDefaultVersion"))
    if _same_document(_version_document(iam, arn, default["VersionId"]), document):
        return _managed_version_found(iam, change, versions, default)
    pruned_id, pruned_document = _version_room_make(iam, arn, versions)
    created = iam.create_policy_version(
        PolicyArn=arn, PolicyDocument=_dumps(document), SetAsDefault=True
    )["PolicyVersion"]
    return {
        "version_id": created["VersionId"],
        "previous_version_id": default["VersionId"],
        "pruned_version_id": pruned_id,
        "pruned_document": pruned_document,
    }


def _managed_version_found(
    iam: Any, change: Change, versions: list[dict[str, Any]], default: dict[str, Any]
) -> dict[str, Any]:
    """A retried apply: the document already is the default. The version that was
    the default before is the newest with the document the request saw, or else
    simply the newest of the others."""
    others = sorted(
        (v for v in versions if not v.get("IsDefaultVersion")), key=_version_number, reverse=True
    )
    previous = next(
        (
            v
            for v in others
            if _same_document(
                _version_document(iam, change.target_arn, v["VersionId"]), change.previous
            )
        ),
        others[0] if others else None,
    )
    return {
        "version_id": default["VersionId"],
        "previous_version_id": previous["VersionId"] if previous else None,
        "pruned_version_id": None,
        "pruned_document": None,
    }


def _managed_version_revert(change: Change, session: boto3.Session) -> None:
    iam, arn, outcome = _iam(session), change.target_arn, _outcome_of(change)
    created = outcome.get("version_id")
    if not isinstance(created, str):
        raise ChangeRefused("The version this change created is not recorded: it cannot be undone.")
    versions = _versions(iam, arn)
    by_id = {v["VersionId"]: v for v in versions}
    if created not in by_id:
        return
    # Only while the created version is still the default: a version made since
    # then stays the default.
    if by_id[created].get("IsDefaultVersion"):
        previous_id = outcome.get("previous_version_id")
        if previous_id in by_id:
            iam.set_default_policy_version(PolicyArn=arn, VersionId=previous_id)
        elif isinstance(change.previous, dict):
            # The old default is gone: bring its document back as a new version.
            _version_room_make(iam, arn, versions)
            iam.create_policy_version(
                PolicyArn=arn, PolicyDocument=_dumps(change.previous), SetAsDefault=True
            )
        else:
            raise ChangeRefused(
                f"The version of {arn} that was the default before is gone: set the default "
                "version by hand."
            )
    iam.delete_policy_version(PolicyArn=arn, VersionId=created)
    # The apply deleted the oldest version to make room: put its document back.
    pruned = outcome.get("pruned_document")
    if isinstance(pruned, dict) and len(_versions(iam, arn)) < POLICY_VERSIONS_MAX:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=_dumps(pruned), SetAsDefault=False)


# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    validate: Callable[[str, dict[str, Any]], _Checked]
    apply: Callable[[Change, boto3.Session], dict[str, Any]]
    revert: Callable[[Change, boto3.Session], None]


_KINDS: dict[str, _Kind] = {
    Change.Type.INLINE_POLICY_PUT: _Kind(
        _inline_put_validate, _inline_put_apply, _inline_put_revert
    ),
    Change.Type.INLINE_POLICY_DELETE: _Kind(
        _inline_delete_validate, _inline_delete_apply, _inline_delete_revert
    ),
    # Attaching is undone by detaching, and the other way round.
    Change.Type.MANAGED_POLICY_ATTACH: _Kind(_attach_validate, _attach_apply, _detach),
    Change.Type.MANAGED_POLICY_DETACH: _Kind(_detach_validate, _detach_apply, _attach),
    Change.Type.TRUST_POLICY_UPDATE: _Kind(
        _trust_validate, _principal_policy_apply, _principal_policy_revert
    ),
    Change.Type.TAGS_PUT: _Kind(_tags_put_validate, _tags_put_apply, _tags_put_revert),
    Change.Type.TAGS_DELETE: _Kind(_tags_delete_validate, _tags_delete_apply, _tags_delete_revert),
    Change.Type.PERMISSIONS_BOUNDARY_PUT: _Kind(
        _boundary_put_validate, _boundary_put_apply, _boundary_revert
    ),
    Change.Type.PERMISSIONS_BOUNDARY_DELETE: _Kind(
        _boundary_delete_validate, _boundary_delete_apply, _boundary_revert
    ),
    Change.Type.MANAGED_POLICY_CREATE: _Kind(
        _managed_create_validate, _managed_create_apply, _managed_create_revert
    ),
    Change.Type.MANAGED_POLICY_VERSION: _Kind(
        _managed_version_validate, _managed_version_apply, _managed_version_revert
    ),
    Change.Type.RESOURCE_POLICY_PUT: _Kind(
        _resource_validate, _principal_policy_apply, _principal_policy_revert
    ),
}


def _kind(change: Change) -> _Kind:
    kind = _KINDS.get(change.type)
    if kind is None:
        raise ChangeRefused(f"iamportal does not know changes of type {change.type!r}.")
    return kind
