"""What trust policies and resource policies (S3, SQS, SNS) share: both name who
is let in (a Principal), and a change to one either replaces the whole document
or merges statements into it by Sid. The policy is read, written and removed
through a `PolicySlot`, so both modes work the same on a role, a bucket, a queue
and a topic."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accounts.fetch import policy_document
from requests_app.changes.common import (
    VERSION,
    dicts,
    invalid,
    json_size,
    listing,
    payload_fields,
    payload_of,
    statements_of,
    strs,
)
from requests_app.models import Change
from requests_app.policy.lint_rules import DOCUMENT_KEYS, STATEMENT_KEYS

MERGE_STATEMENTS_MAX = 100
_MERGE_SID = re.compile(r"[A-Za-z0-9]+", re.ASCII)
# Sids of the statements iamportal adds for cross-account grants start with this.
AUTOMATIC_SID_PREFIX = "Iamportal"


# --- validation --------------------------------------------------------------------------


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
        invalid(where, "The policy document must be a JSON object.")
    unknown = sorted(key for key in value if key not in DOCUMENT_KEYS)
    if unknown:
        invalid(where, f"Unknown top-level elements: {', '.join(unknown)[:200]}.")
    if value.get("Version") != VERSION:
        invalid(where, f'The policy needs "Version": "{VERSION}".')
    if "Id" in value and not isinstance(value["Id"], str):
        invalid(where, "Id must be a string.")
    statements = value.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        invalid(where, "The policy needs a Statement: a statement or a list of them.")
    sids: set[str] = set()
    for number, statement in enumerate(statements, start=1):
        problem = _statement_problem(statement, trust=trust, merge=False)
        if problem:
            invalid(where, f"Statement {number} {problem}.")
        sid = statement.get("Sid")
        if sid:
            if sid in sids:
                invalid(where, f"Two statements have the Sid {sid}: each needs its own.")
            sids.add(sid)
    return value


def _merge_statements(value: Any, *, trust: bool) -> list[dict[str, Any]]:
    where = "payload.statements"
    if not isinstance(value, list) or not value:
        invalid(where, "Give a list of statements to add or replace.")
    if len(value) > MERGE_STATEMENTS_MAX:
        invalid(where, f"Give at most {MERGE_STATEMENTS_MAX} statements.")
    sids: set[str] = set()
    for number, statement in enumerate(value, start=1):
        problem = _statement_problem(statement, trust=trust, merge=True)
        if problem:
            invalid(where, f"Statement {number} {problem}.")
        if statement["Sid"] in sids:
            invalid(where, f"Two statements have the Sid {statement['Sid']}: each needs its own.")
        sids.add(statement["Sid"])
    return value


def principal_policy_payload(
    payload: dict[str, Any], *, previous: Any, trust: bool, max_size: int, what: str
) -> dict[str, Any]:
    """The payload of a trust or resource policy change: replace or merge mode."""
    payload_fields(payload, required=(), optional=("document", "statements"))
    if ("document" in payload) == ("statements" in payload):
        invalid(
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
        taken = {str(s.get("Sid")) for s in statements_of(previous) if isinstance(s, dict)}
        clashes = sorted(str(s["Sid"]) for s in statements if s["Sid"] in taken)
        if clashes:
            # Replacing someone else's statement would be shown as an addition,
            # and removing ours at expiry would take theirs with it.
            invalid(
                "payload.statements",
                f"The policy already has a statement with the Sid {', '.join(clashes)}: "
                "use a Sid of your own.",
            )
        if any(str(s["Sid"]).startswith(AUTOMATIC_SID_PREFIX) for s in statements):
            invalid(
                "payload.statements",
                f"Sids starting with {AUTOMATIC_SID_PREFIX} are iamportal's own: use another.",
            )
        document = _merged(previous, statements)
        normalised = {"statements": statements}
        where = "payload.statements"
    size = json_size(document)
    if size > max_size:
        invalid(
            where,
            f"A {what} is at most {max_size} characters without white space; the result "
            f"would be {size}.",
        )
    return normalised


# --- documents ---------------------------------------------------------------------------


def principal_policy_after(*, previous: Any, payload: dict[str, Any]) -> Any:
    """The trust or resource policy once a change with `payload` is applied to
    `previous`: the new document, or `previous` with the statements merged in."""
    if "statements" in payload:
        return _merged(previous, dicts(payload.get("statements")))
    return payload.get("document")


def _merged(current: Any, statements: list[dict[str, Any]]) -> dict[str, Any]:
    """`current` with `statements` in it: a statement with the Sid of one of them is
    replaced in place, the others are appended; everything else is kept."""
    document = copy.deepcopy(current) if isinstance(current, dict) else {}
    document.setdefault("Version", VERSION)
    incoming = {s.get("Sid"): copy.deepcopy(s) for s in statements}
    result: list[Any] = []
    for statement in statements_of(document):
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
    statements = statements_of(current)
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


def principal_document(change: Change) -> tuple[Any, Any] | None:
    """Before and after of a trust or resource policy change."""
    return change.previous, principal_policy_after(
        previous=change.previous, payload=payload_of(change)
    )


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
                found += [values] if isinstance(values, str) else strs(values)
    return sorted(set(found))


def policy_summary(payload: dict[str, Any], what: str) -> str:
    if "statements" in payload:
        statements = dicts(payload.get("statements"))
        count = len(statements)
        noun = "statement" if count == 1 else "statements"
        summary = f"Add {count} {noun} to {what}"
    else:
        document = payload.get("document")
        statements = statements_of(document) if isinstance(document, dict) else []
        summary = f"Replace {what}"
    allowed = _principals(statements)
    return f"{summary}, allowing {listing(allowed)}" if allowed else summary


# --- apply and revert --------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySlot:
    """Where a trust or resource policy lives in AWS: how to read, write and
    remove it. (Not the `slots` of a change type, which name what two requests
    must not both set.)"""

    read: Callable[[], dict[str, Any] | None]
    write: Callable[[dict[str, Any]], None]
    # What "no policy" means for the service: deleted, or the closest to it.
    clear: Callable[[], None]
    # Whether `clear` really leaves no policy (S3, SQS); SNS topics and roles
    # always have one.
    deletable: bool


def as_document(raw: Any) -> dict[str, Any] | None:
    document = policy_document(raw) if raw else None
    return document if isinstance(document, dict) else None


def policy_apply(slot: PolicySlot, change: Change) -> dict[str, Any]:
    """Apply a trust or resource policy change to the policy `slot` reaches."""
    payload = payload_of(change)
    if "statements" in payload:
        # Read from AWS now, not from the inventory: edits made since the request
        # was submitted stay.
        slot.write(_merged(slot.read(), payload["statements"]))
    else:
        slot.write(payload["document"])
    return {}


def policy_revert(slot: PolicySlot, change: Change) -> None:
    """Take a trust or resource policy change away again: the merged statements,
    or the replaced document."""
    payload = payload_of(change)
    if "statements" in payload:
        sids = {str(s.get("Sid")) for s in dicts(payload["statements"])}
        remaining, removed = _without(slot.read(), _with_sid(sids))
    elif isinstance(change.previous, dict):
        slot.write(change.previous)
        return
    elif slot.deletable:
        slot.clear()
        return
    else:
        # Nothing to go back to: take out what the apply put in, keep the rest.
        applied = statements_of(payload.get("document"))
        remaining, removed = _without(slot.read(), _one_of(applied))
    if not removed:
        return
    if remaining is None:
        slot.clear()
    else:
        slot.write(remaining)
