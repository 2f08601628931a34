"""Policy documents against what a role uses: which services a document grants,
and the document without the services or actions that went unused (or with
only those that were used). Pure functions on documents; no Django."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _statements(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    return [st for st in _as_list(document.get("Statement")) if isinstance(st, dict)]


def action_namespace(action: str) -> str:
    """The service prefix of an action (`s3:GetObject` -> `s3`); `*` for `*`."""
    action = action.strip().lower()
    if action == "*":
        return "*"
    return action.partition(":")[0]


def granted_namespaces(document: Any) -> set[str]:
    """The service prefixes an identity policy allows actions of (`*` when it
    allows every action). NotAction statements grant an unknown set: `*`."""
    found: set[str] = set()
    for statement in _statements(document):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            found.add("*")
            continue
        for action in _as_list(statement.get("Action")):
            if isinstance(action, str) and action.strip():
                found.add(action_namespace(action))
    return found


def granted_actions(document: Any, namespace: str) -> set[str]:
    """The actions of `namespace` an identity policy names outright (lower case),
    wildcards left out: AWS reports use per action only for exact names."""
    found: set[str] = set()
    for statement in _statements(document):
        if statement.get("Effect") != "Allow" or "NotAction" in statement:
            continue
        for action in _as_list(statement.get("Action")):
            if not isinstance(action, str) or "*" in action or "?" in action:
                continue
            if action_namespace(action) == namespace:
                found.add(action.strip().lower())
    return found


def _keep_action(action: Any, *, services: set[str], actions: set[str]) -> bool:
    if not isinstance(action, str):
        return True
    if action_namespace(action) in services:
        return False
    return action.strip().lower() not in actions


def document_without(
    document: Any, *, services: Iterable[str], actions: Iterable[str] = ()
) -> dict[str, Any] | None:
    """`document` without the Allow of `services` (whole prefixes) and `actions`
    (exact names, any case). A statement left with no action goes; None when no
    statement is left (the policy would grant nothing). Deny and NotAction
    statements are kept as they are: removing them would never reduce access."""
    drop_services = {s.lower() for s in services}
    drop_actions = {a.lower() for a in actions}
    kept: list[dict[str, Any]] = []
    for statement in _statements(document):
        if statement.get("Effect") != "Allow" or "NotAction" in statement:
            kept.append(copy.deepcopy(statement))
            continue
        listed = _as_list(statement.get("Action"))
        remaining = [
            a for a in listed if _keep_action(a, services=drop_services, actions=drop_actions)
        ]
        if not remaining:
            continue
        statement = copy.deepcopy(statement)
        statement["Action"] = remaining if len(remaining) > 1 else remaining[0]
        kept.append(statement)
    if not kept:
        return None
    result = {k: copy.deepcopy(v) for k, v in document.items() if k != "Statement"}
    result.setdefault("Version", "2012-10-17")
    result["Statement"] = kept
    return result


def document_only(document: Any, *, services: Iterable[str]) -> dict[str, Any] | None:
    """The Allow statements of `document` cut down to the actions of `services`
    (what the role used): the inline policy that replaces a shared managed
    policy. None when nothing of `services` is in it."""
    wanted = {s.lower() for s in services}
    kept: list[dict[str, Any]] = []
    for statement in _statements(document):
        if statement.get("Effect") != "Allow" or "NotAction" in statement:
            continue
        listed = _as_list(statement.get("Action"))
        remaining = [a for a in listed if isinstance(a, str) and action_namespace(a) in wanted]
        if not remaining:
            continue
        statement = copy.deepcopy(statement)
        statement["Action"] = remaining if len(remaining) > 1 else remaining[0]
        kept.append(statement)
    if not kept:
        return None
    return {"Version": "2012-10-17", "Statement": kept}
