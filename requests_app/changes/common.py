"""What the change types share: the bounds every payload keeps, the checks that
a role or an account is one iamportal manages (and not one of its own roles),
and small helpers for reading a stored change and talking to AWS."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, NoReturn

import boto3
from botocore.exceptions import ClientError

from accounts.fetch import policy_document
from accounts.models import AwsAccount, IamRole
from accounts.selectors import role_protected
from brokering.services import REVOKED_SESSIONS_POLICY
from iamportal import aws
from requests_app.changes.base import ChangeInvalid, ChangeRefused, Slot
from requests_app.models import Change
from requests_app.policy.arns import POLICY_ARN as _POLICY_ARN
from requests_app.policy.arns import ROLE_ARN as _ROLE_ARN
from requests_app.policy.limits import IAM_PATH_MAX_LENGTH
from requests_app.policy.lint import policy_lint
from requests_app.policy.lint_rules import BLOCKING_LINT_CODES

# IAM's own limits and the ARN patterns are in requests_app/policy/limits.py and arns.py.
VERSION = "2012-10-17"
# Compact JSON characters: above the largest document any change type takes (SNS, 30 KB).
PAYLOAD_MAX_SIZE = 64 * 1024
# A policy needs about 7 levels (Statement, Condition, operator, key, values).
JSON_MAX_DEPTH = 32
# Names listed in a summary before "and N more".
_LISTED = 5


# --- validation --------------------------------------------------------------------------


def invalid(where: str, message: str) -> NoReturn:
    raise ChangeInvalid({where: message})


def json_problem(value: Any, depth: int = 0) -> str | None:
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
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "has a key that is not a string"
            problem = _text_problem(key) or json_problem(item, depth + 1)
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


def json_size(value: Any) -> int:
    """Characters of compact JSON, as AWS counts policy sizes (white space excluded)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def payload_fields(
    payload: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    known = required + optional
    unknown = sorted(key for key in payload if key not in known)
    if unknown:
        takes = ", ".join(known) if known else "no keys: give an empty object"
        invalid("payload", f"Unknown keys: {', '.join(unknown)[:200]}. This change takes {takes}.")
    for key in required:
        if key not in payload:
            invalid(f"payload.{key}", f"Give {key}.")


def account_managed(account_id: str, where: str = "target_arn") -> AwsAccount:
    account = AwsAccount.objects.filter(account_id=account_id, enabled=True).first()
    if account is None:
        invalid(where, f"Account {account_id} is not an account iamportal manages.")
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
    return listing(phrases)


def protected_policy_refusal(
    policy_arn: str, uses: list[tuple[str, bool, bool]], *, live: bool = False
) -> str:
    """Why a request may not change the managed policy `policy_arn`, which iamportal's
    own roles use as described by (role name, attached, boundary) triples; `live`
    when AWS said so at apply, rather than the inventory."""
    return (
        f"Policy {last_segment(policy_arn)} is {'now, in AWS, ' if live else ''}"
        f"{_uses_described(uses)}, one of iamportal's own roles (managed by iamportal): "
        "requests cannot change it."
    )


def role_managed(target_arn: str) -> IamRole:
    match = _ROLE_ARN.fullmatch(target_arn)
    if match is None:
        invalid(
            "target_arn",
            "Name a role by its ARN, such as arn:aws:iam::123456789012:role/payments-api.",
        )
    if len(match.group(3)) > IAM_PATH_MAX_LENGTH:
        invalid("target_arn", f"A role's path is at most {IAM_PATH_MAX_LENGTH} characters.")
    account_managed(match.group(2))
    if role_protected(target_arn):
        invalid("target_arn", protected_role_refusal(match.group(4)))
    role = IamRole.objects.select_related("account").filter(arn=target_arn).first()
    if role is None:
        invalid(
            "target_arn",
            f"The role {target_arn} is not in the inventory: check the ARN, or sync its account.",
        )
    return role


def policy_arn_checked(payload: dict[str, Any], *, role: IamRole) -> str:
    """A managed policy `role` may use: AWS-managed or one of its own account."""
    arn = payload.get("policy_arn")
    match = _POLICY_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        invalid(
            "payload.policy_arn",
            "Name a managed policy by its ARN, such as arn:aws:iam::aws:policy/ReadOnlyAccess.",
        )
    partition, owner = match.group(1), match.group(2)
    if partition != role.arn.split(":")[1] or owner not in ("aws", role.account.account_id):
        invalid(
            "payload.policy_arn",
            "A role can only use AWS-managed policies and the managed policies of its own "
            f"account ({role.account.account_id}).",
        )
    return match.group(0)


def identity_document(
    value: Any, *, where: str = "payload.document", other_inline_size: int = 0
) -> dict[str, Any]:
    if not isinstance(value, dict):
        invalid(where, "The policy document must be a JSON object.")
    findings = policy_lint(value, other_inline_policies_size=other_inline_size)
    blocking = [f for f in findings if f.severity == "error" and f.code in BLOCKING_LINT_CODES]
    if blocking:
        invalid(where, "; ".join(f"{f.title}: {f.detail}" for f in blocking[:5]))
    return value


def statements_of(document: Any) -> list[Any]:
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement")
    if isinstance(statements, dict):
        return [statements]
    return list(statements) if isinstance(statements, list) else []


# --- reading a stored change, talking to AWS ---------------------------------------------


def same_document(a: Any, b: Any) -> bool:
    return policy_document(a) == policy_document(b)


def dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def payload_of(change: Change) -> dict[str, Any]:
    return change.payload if isinstance(change.payload, dict) else {}


def outcome_of(change: Change) -> dict[str, Any]:
    return change.outcome if isinstance(change.outcome, dict) else {}


def dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def strs(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def last_segment(arn: str) -> str:
    # Role and policy names are the last segment after their path; bucket, queue
    # and topic names the last after a colon.
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def iam_client(session: boto3.Session) -> Any:
    return aws.client("iam", session=session)


def tolerating(codes: frozenset[str], call: Callable[..., Any], **params: Any) -> Any:
    """`call(**params)`, where AWS answering one of `codes` means it is already done."""
    try:
        return call(**params)
    except ClientError as exc:
        if error_code(exc) in codes:
            return None
        raise


ALREADY_GONE = frozenset({"NoSuchEntity"})


def listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


# --- what most types share ---------------------------------------------------------------


def role_guard(change: Change, session: boto3.Session) -> None:
    """Refuse a change whose target is one of iamportal's own roles, as the
    configuration says now."""
    if role_protected(change.target_arn):
        raise ChangeRefused(
            protected_role_refusal(last_segment(change.target_arn)) + " Nothing was changed."
        )


def reserved_policy_name(name: str) -> str:
    """Why no request may write the inline policy `name`, or "": the policy that
    denies revoked sessions is iamportal's own, written only by revoking
    sessions; a request deleting or replacing it would bring them back."""
    if name.strip().lower() != REVOKED_SESSIONS_POLICY.lower():
        return ""
    return (
        f"The inline policy {REVOKED_SESSIONS_POLICY} is iamportal's own: it denies "
        "sessions that were revoked, and only revoking sessions changes it."
    )


def inline_guard(change: Change) -> None:
    """role_guard, and refuse iamportal's own inline policy, for a request
    filed before that name was refused at submission."""
    name = change.payload.get("policy_name") if isinstance(change.payload, dict) else None
    refusal = reserved_policy_name(name) if isinstance(name, str) else ""
    if refusal:
        raise ChangeRefused(refusal + " Nothing was changed.")


def no_document(change: Change) -> tuple[Any, Any] | None:
    """For the types that are not about a policy document."""
    return None


def document_slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    """A whole policy document is one slot; statements merged by Sid take none:
    each request's Sids are its own."""
    if "statements" in payload:
        return set()
    return {("document", target_arn, "")}
