"""Would IAM allow an action on a resource? Evaluation of policy documents,
with no database and no Django.

`policy_evaluate(documents, action=..., resource=...)` answers for a set of
documents the way IAM combines the statements of one policy type: an explicit
Deny wins, then an Allow, otherwise the action is not allowed. It reads
`Action`/`NotAction` and `Resource`/`NotResource` with their `*` and `?`
wildcards (actions ignore case, resources do not; a `${...}` policy variable
matches anything), and the conditions it can decide from `context` (string and
ARN operators on the keys given, such as `aws:PrincipalArn`); a condition it
cannot decide makes its statement *conditional*, never silently true or false.

The action and resource asked about may themselves be patterns (a requested
`s3:Get*` on `arn:aws:s3:::bucket/*`): a statement *covers* them when it
matches everything they match, and *overlaps* them when it matches only part.

`guardrail_notes(...)` applies this to a requested identity policy against the
service control policies of the role's account (an action must be allowed at
every level of the OU tree and denied at none) and the role's permissions
boundary (which must allow it too), one note per statement and action.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_VARIABLE = re.compile(r"\$\{[^}]*\}")


class Match(enum.IntEnum):
    NONE = 0
    PARTIAL = 1
    FULL = 2


class Decision(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    NOT_ALLOWED = "not allowed"


@dataclass(frozen=True)
class Statement:
    """One statement, normalised: lists of strings, the condition as given."""

    index: int
    sid: str
    effect: str
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    condition: Mapping[str, Any] | None


@dataclass(frozen=True)
class Evaluation:
    """What the documents decide. `conditional` when the decision rests on a
    condition not decided from the context; `partly` when the deciding
    statements match only part of a pattern asked about."""

    decision: Decision
    conditional: bool = False
    partly: bool = False
    denied_by: tuple[Statement, ...] = ()
    # Denies that may apply: conditions not decided, or only part of the pattern.
    maybe_denied_by: tuple[Statement, ...] = ()
    allowed_by: tuple[Statement, ...] = ()
    unknown_keys: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def policy_statements(document: Any) -> list[Statement]:
    """The statements of a policy document; anything malformed is skipped, never raised."""
    if not isinstance(document, dict):
        return []
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        effect = item.get("Effect")
        if effect not in ("Allow", "Deny"):
            continue
        condition = item.get("Condition")
        found.append(
            Statement(
                index=index,
                sid=str(item.get("Sid") or ""),
                effect=effect,
                actions=_strings(item.get("Action")),
                not_actions=_strings(item.get("NotAction")),
                resources=_strings(item.get("Resource")),
                not_resources=_strings(item.get("NotResource")),
                condition=condition if isinstance(condition, dict) and condition else None,
            )
        )
    return found


@functools.lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    text = _VARIABLE.sub("*", text)
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def glob_covers(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Whether `pattern` matches everything `value` matches (a plain value is
    matched as is; its own wildcards are taken as the characters they are, which
    a broader pattern's `*` covers)."""
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def _literal_prefix(text: str) -> str:
    cut = [i for i in (text.find("*"), text.find("?"), text.find("${")) if i >= 0]
    return text[: min(cut)] if cut else text


def glob_overlaps(a: str, b: str, *, ignore_case: bool = False) -> bool:
    """Whether two patterns may match a common value (an approximation that
    errs towards yes: their fixed beginnings agree)."""
    if glob_covers(a, b, ignore_case=ignore_case) or glob_covers(b, a, ignore_case=ignore_case):
        return True
    if not any(ch in a + b for ch in "*?$"):
        return False
    pa, pb = _literal_prefix(a), _literal_prefix(b)
    if ignore_case:
        pa, pb = pa.lower(), pb.lower()
    return pa.startswith(pb) or pb.startswith(pa)


def _element(
    listed: tuple[str, ...] | None, excluded: tuple[str, ...] | None, value: str, ignore_case: bool
) -> Match:
    if listed is not None:
        if any(glob_covers(p, value, ignore_case=ignore_case) for p in listed):
            return Match.FULL
        if any(glob_overlaps(p, value, ignore_case=ignore_case) for p in listed):
            return Match.PARTIAL
        return Match.NONE
    if excluded is not None:
        if any(glob_covers(p, value, ignore_case=ignore_case) for p in excluded):
            return Match.NONE
        if any(glob_overlaps(p, value, ignore_case=ignore_case) for p in excluded):
            return Match.PARTIAL
        return Match.FULL
    return Match.NONE


def statement_match(statement: Statement, *, action: str, resource: str) -> Match:
    """How much of (`action`, `resource`) the statement's action and resource elements match."""
    on_action = _element(statement.actions, statement.not_actions, action, True)
    if on_action is Match.NONE:
        return Match.NONE
    on_resource = _element(statement.resources, statement.not_resources, resource, False)
    return min(on_action, on_resource)


_STRING_OPERATORS = {
    "StringEquals": (False, False, False),
    "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, False, True),
    "StringNotEqualsIgnoreCase": (True, False, True),
    "StringLike": (False, True, False),
    "StringNotLike": (True, True, False),
    "ArnEquals": (False, True, False),
    "ArnLike": (False, True, False),
    "ArnNotEquals": (True, True, False),
    "ArnNotLike": (True, True, False),
}


def condition_holds(
    condition: Mapping[str, Any] | None, context: Mapping[str, str]
) -> tuple[bool | None, tuple[str, ...]]:
    """Whether a statement's condition holds: True, False, or None when it
    cannot be told from `context` (then also the keys it would need)."""
    if not condition:
        return True, ()
    known = {key.lower(): value for key, value in context.items()}
    unknown: list[str] = []
    result: bool | None = True
    for operator, tests in condition.items():
        spec = _STRING_OPERATORS.get(operator) if isinstance(operator, str) else None
        if spec is None or not isinstance(tests, dict):
            unknown += [str(k) for k in tests] if isinstance(tests, dict) else [str(operator)]
            result = None if result is not False else result
            continue
        negated, like, ignore_case = spec
        for key, expected in tests.items():
            value = known.get(str(key).lower())
            if value is None:
                unknown.append(str(key))
                result = None if result is not False else result
                continue
            values = _strings(expected) or ()
            if like:
                hit = any(glob_covers(v, value, ignore_case=ignore_case) for v in values)
            elif ignore_case:
                hit = value.lower() in (v.lower() for v in values)
            else:
                hit = value in values
            if hit == negated:
                result = False
    return result, tuple(dict.fromkeys(unknown))


def policy_evaluate(
    documents: Iterable[Any],
    *,
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> Evaluation:
    """What the statements of `documents` together decide for `action` on `resource`."""
    context = context or {}
    denied: list[Statement] = []
    maybe_denied: list[Statement] = []
    allowed: list[Statement] = []
    maybe_allowed: list[Statement] = []
    partly_allowed = False
    unknown: list[str] = []
    for document in documents:
        for statement in policy_statements(document):
            match = statement_match(statement, action=action, resource=resource)
            if match is Match.NONE:
                continue
            holds, keys = condition_holds(statement.condition, context)
            if holds is False:
                continue
            unknown += keys
            if statement.effect == "Deny":
                if match is Match.FULL and holds:
                    denied.append(statement)
                else:
                    maybe_denied.append(statement)
            elif match is Match.FULL and holds:
                allowed.append(statement)
            else:
                maybe_allowed.append(statement)
                partly_allowed = partly_allowed or match is Match.PARTIAL
    keys = tuple(dict.fromkeys(unknown))
    if denied:
        return Evaluation(Decision.DENIED, denied_by=tuple(denied), unknown_keys=keys)
    if allowed or maybe_allowed:
        return Evaluation(
            Decision.ALLOWED,
            conditional=not allowed and any(s.condition for s in maybe_allowed),
            partly=not allowed and partly_allowed,
            maybe_denied_by=tuple(maybe_denied),
            allowed_by=tuple(allowed or maybe_allowed),
            unknown_keys=keys,
        )
    return Evaluation(Decision.NOT_ALLOWED, maybe_denied_by=tuple(maybe_denied), unknown_keys=keys)


def allowed_resources(documents: Iterable[Any], *, action: str) -> list[str]:
    """The resource patterns that Allow statements name for `action`, in order,
    each once (the candidates to evaluate; a Deny may still take them away)."""
    found: dict[str, None] = {}
    for document in documents:
        for statement in policy_statements(document):
            if statement.effect != "Allow" or statement.resources is None:
                continue
            if _element(statement.actions, statement.not_actions, action, True) is Match.NONE:
                continue
            for resource in statement.resources:
                found.setdefault(resource, None)
    return list(found)


# --- guardrails: service control policies and permissions boundaries -------------------


@dataclass(frozen=True)
class NamedPolicy:
    name: str
    document: Any


@dataclass(frozen=True)
class ScpLevel:
    """The SCPs attached at one level of the OU tree (the root, an OU, the account)."""

    label: str
    policies: tuple[NamedPolicy, ...]


@dataclass(frozen=True)
class GuardrailNote:
    statement: int  # the statement's position in the requested document
    sid: str
    action: str
    resource: str
    source: str  # "scp" or "boundary"
    name: str  # the SCP's name or the boundary's ARN
    certain: bool  # denied for sure, or only maybe (conditions, part of a pattern)
    message: str


def _keys_text(keys: Sequence[str]) -> str:
    return f" when {', '.join(keys)} match its condition" if keys else ""


def _scp_notes(
    levels: Sequence[ScpLevel], action: str, resource: str, context: Mapping[str, str]
) -> list[tuple[str, bool, str]]:
    notes: list[tuple[str, bool, str]] = []
    for level in levels:
        for policy in level.policies:
            result = policy_evaluate(
                [policy.document], action=action, resource=resource, context=context
            )
            if result.decision is Decision.DENIED:
                notes.append(
                    (policy.name, True, f"denied by the SCP {policy.name} (on {level.label})")
                )
            elif result.maybe_denied_by:
                notes.append(
                    (
                        policy.name,
                        False,
                        f"may be denied by the SCP {policy.name} (on {level.label})"
                        + _keys_text(result.unknown_keys),
                    )
                )
        if not level.policies:
            continue  # AWS always attaches one; none stored means it was not read
        documents = [policy.document for policy in level.policies]
        result = policy_evaluate(documents, action=action, resource=resource, context=context)
        if result.decision is Decision.NOT_ALLOWED:
            names = ", ".join(policy.name for policy in level.policies)
            notes.append((names, True, f"not allowed by any SCP on {level.label} ({names})"))
    return notes


def _boundary_notes(
    boundary: NamedPolicy, action: str, resource: str, context: Mapping[str, str]
) -> list[tuple[str, bool, str]]:
    result = policy_evaluate([boundary.document], action=action, resource=resource, context=context)
    name = boundary.name
    if result.decision is Decision.DENIED:
        return [(name, True, f"denied by the permissions boundary {name}")]
    if result.decision is Decision.NOT_ALLOWED:
        return [(name, True, f"not allowed by the permissions boundary {name}")]
    if result.maybe_denied_by or result.conditional or result.partly:
        return [
            (
                name,
                False,
                f"only partly or conditionally allowed by the permissions boundary {name}"
                + _keys_text(result.unknown_keys),
            )
        ]
    return []


def guardrail_notes(
    document: Any,
    *,
    scp_levels: Sequence[ScpLevel] = (),
    boundary: NamedPolicy | None = None,
    context: Mapping[str, str] | None = None,
) -> list[GuardrailNote]:
    """A note for each action of each Allow statement of `document` that an SCP
    of `scp_levels` or the `boundary` denies (or may deny, or does not allow)."""
    context = context or {}
    notes: list[GuardrailNote] = []
    for statement in policy_statements(document):
        if statement.effect != "Allow" or statement.actions is None:
            continue
        resources = statement.resources or ("*",)
        for action in statement.actions:
            for resource in resources:
                found = [
                    ("scp", *note) for note in _scp_notes(scp_levels, action, resource, context)
                ]
                if boundary is not None:
                    found += [
                        ("boundary", *note)
                        for note in _boundary_notes(boundary, action, resource, context)
                    ]
                for source, name, certain, text in found:
                    notes.append(
                        GuardrailNote(
                            statement=statement.index,
                            sid=statement.sid,
                            action=action,
                            resource=resource,
                            source=source,
                            name=name,
                            certain=certain,
                            message=f"{action} on {resource}: {text}.",
                        )
                    )
    return notes
