"""Inline policy names: IAM's rules for them, and a name that says what a
policy grants (`iamportal-s3-read-acme-reports`), for the wizard's default."""

from __future__ import annotations

import re
from typing import Any

from requests_app.policy.arns import ARN_PARTS
from requests_app.policy.reference import expand

POLICY_NAME_MAX_LENGTH = 128
POLICY_NAME = re.compile(rf"[\w+=,.@-]{{1,{POLICY_NAME_MAX_LENGTH}}}", re.ASCII)
"""What IAM accepts as the name of an inline policy."""
POLICY_NAME_PREFIX = "iamportal"

# Access levels from the narrowest to the widest: a name says the widest granted.
_LEVELS = ("list", "read", "tagging", "write", "permissions-management")
_MAX_SERVICES = 3
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9+=,.@_-]+")
_WILDCARD = re.compile(r"[*?]|\$\{")


def policy_name_sanitise(text: str, *, max_length: int = POLICY_NAME_MAX_LENGTH) -> str:
    """`text` as an inline policy name: characters IAM refuses become "-", runs
    of "-" one, at most `max_length` characters, never ending in "-"."""
    name = re.sub(r"-{2,}", "-", _NOT_IN_A_NAME.sub("-", text)).strip("-")
    return name[:max_length].rstrip("-")


def policy_name_describe(document: Any) -> str:
    """A name saying what `document` grants: the services, the widest access
    level and the resource, such as `iamportal-s3-read-acme-reports`, within
    IAM's rules. Never raises on a document of unexpected shape."""
    services: list[str] = []
    level = -1
    names: list[str] = []
    for statement in _allow_statements(document):
        for action in _strings(statement.get("Action")):
            service = action.partition(":")[0].lower()
            if service and not _WILDCARD.search(service) and service not in services:
                services.append(service)
            for known in expand(action):
                key = known.access_level.lower().replace(" ", "-")
                if key in _LEVELS:
                    level = max(level, _LEVELS.index(key))
        for resource in _strings(statement.get("Resource")):
            name = _resource_name(resource)
            if name and name not in names:
                names.append(name)
    parts = [POLICY_NAME_PREFIX]
    if len(services) > _MAX_SERVICES:
        parts.append(f"{len(services)}-services")
    else:
        parts.extend(services)
    if level >= 0:
        parts.append(_LEVELS[level])
    if names:
        parts.append(names[0] + (f"-and-{len(names) - 1}-more" if len(names) > 1 else ""))
    if len(parts) == 1:
        parts.append("policy")
    return policy_name_sanitise("-".join(parts))


def _allow_statements(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return []
    return [s for s in statements if isinstance(s, dict) and s.get("Effect") == "Allow"]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _resource_name(arn: str) -> str:
    """The name of the resource an ARN names (a bucket, a queue, a role, a
    function...), or nothing when it names no single one."""
    match = ARN_PARTS.fullmatch(arn)
    if match is None:
        return ""
    service, resource = match.group("service"), match.group("resource")
    if service == "s3":
        name = resource.split("/", 1)[0]
    elif service == "iam":
        name = resource.rsplit("/", 1)[-1]
    else:
        pieces = [piece for piece in re.split(r"[:/]", resource) if piece]
        name = pieces[1] if len(pieces) > 1 else (pieces[0] if pieces else "")
    return "" if _WILDCARD.search(name) else policy_name_sanitise(name)
