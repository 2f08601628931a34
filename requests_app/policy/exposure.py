"""Whether a resource policy (or a role's trust policy) makes its resource public:
an Allow that any principal matches, with no condition that narrows who.

Plain data in, a boolean out: no Django, no database. The sync stores the
answer with each item, so the Policies page filters on a column."""

from __future__ import annotations

from typing import Any

# Condition keys that narrow a "*" principal down to known callers: an account,
# an organisation, a source resource or network endpoint. A condition on
# anything else (a time, a TLS version) leaves the resource open to everyone.
LIMITING_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:SourceArn",
        "aws:SourceAccount",
        "aws:SourceOwner",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:SourceIp",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:userid",
        "aws:username",
    )
)


def _statements(document: Any) -> list[Any]:
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement")
    if isinstance(statements, dict):
        return [statements]
    return statements if isinstance(statements, list) else []


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _anyone(principal: Any) -> bool:
    """Whether a Principal element matches every caller: "*", or "*" among the
    AWS principals (or any other kind, such as CanonicalUser)."""
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in _values(value) for value in principal.values())
    return False


def _limited(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return False
    return any(
        str(key).lower() in LIMITING_KEYS
        for block in condition.values()
        if isinstance(block, dict)
        for key in block
    )


def statement_is_public(statement: Any) -> bool:
    if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
        return False
    # Allow with NotPrincipal allows everyone but the principals it names.
    opens = _anyone(statement.get("Principal")) or "NotPrincipal" in statement
    return opens and not _limited(statement)


def policy_is_public(document: Any) -> bool:
    """Whether any statement of `document` allows any principal without a
    limiting condition. Anything that is not a policy document is not public."""
    return any(statement_is_public(statement) for statement in _statements(document))
