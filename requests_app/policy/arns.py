"""ARN patterns: the exact shapes of the ARNs iamportal changes (roles, managed
policies, buckets, queues and topics), and the token patterns the linter
matches a policy's Resource against the IAM reference's ARN formats with."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from requests_app.policy.limits import ARN_MAX_LENGTH, PARTITION_PATTERN, PARTITIONS

# ASCII only: \w and \d would otherwise accept letters and digits IAM refuses.
_PATH = r"/(?:[!-~]+/)?"
ROLE_ARN = re.compile(
    rf"arn:({PARTITION_PATTERN}):iam::([0-9]{{12}}):role({_PATH})([\w+=,.@-]{{1,64}})", re.ASCII
)
"""Groups: partition, account, path, name."""
POLICY_ARN = re.compile(
    rf"arn:({PARTITION_PATTERN}):iam::([0-9]{{12}}|aws):policy({_PATH})([\w+=,.@-]{{1,128}})",
    re.ASCII,
)
"""Groups: partition, account (or "aws" for AWS managed policies), path, name."""
BUCKET_ARN = re.compile(rf"arn:({PARTITION_PATTERN}):s3:::([A-Za-z0-9._-]{{1,255}})", re.ASCII)
"""Groups: partition, bucket."""
QUEUE_OR_TOPIC_ARN = re.compile(
    rf"arn:({PARTITION_PATTERN}):(sqs|sns):([a-z]{{2}}(?:-[a-z]+)+-[0-9]+):([0-9]{{12}}):"
    r"([A-Za-z0-9_.-]{1,256})",
    re.ASCII,
)
"""Groups: partition, service, region, account, name."""
ARN_PARTS = re.compile(
    r"arn:(?P<partition>[^:]*):(?P<service>[^:]*):(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)"
)
"""Any ARN's six parts by name, whatever they hold."""


# ARN patterns
#
# A pattern is a tuple of tokens: one character each, or one of the wildcards
# below. Policy ARNs use `*` and `?`; reference ARN formats use `${Name}`
# placeholders, which match anything except where a name never contains "/".

STAR = "\x00*"
SEGMENT = "\x00/"
VARIABLE = "\x00$"  # a policy variable such as ${aws:username}: some value, unknown here
ONE = "\x00?"
WILDCARDS = (STAR, SEGMENT, VARIABLE)

# Placeholders whose values never contain "/": without this, "bucket/*" would
# pass as a bucket and "table/T/index/*" as a table.
_NO_SLASH_PLACEHOLDERS = frozenset(
    {
        ("s3", "BucketName"),
        ("s3", "AccessPointName"),
        ("s3express", "BucketName"),
        ("dynamodb", "TableName"),
    }
)

Pattern = tuple[str, ...]


@dataclass(frozen=True, eq=False)  # compared by identity: parsing is cached, tuples are long
class Arn:
    text: str
    partition: Pattern
    service: Pattern
    region: Pattern
    account: Pattern
    resource: Pattern

    @functools.cached_property
    def resource_glob(self) -> Glob:
        return Glob.of(self.resource)

    @functools.cached_property
    def literal_service(self) -> str | None:
        if any(token in (*WILDCARDS, ONE) for token in self.service):
            return None
        return "".join(self.service)


def _tokens(text: str, *, placeholder: str = VARIABLE, service: str = "") -> Pattern:
    """Tokens of a policy ARN (policy variables) or a reference format (placeholders)."""
    tokens: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        end = text.find("}", index) if text.startswith("${", index) else -1
        if end != -1:
            name = text[index + 2 : end]
            if name in ("*", "?", "$"):
                tokens.append(name)  # ${*} and friends are the literal character
            elif (service, name) in _NO_SLASH_PLACEHOLDERS:
                tokens.append(SEGMENT)
            else:
                tokens.append(placeholder)
            index = end + 1
            continue
        tokens.append(STAR if char == "*" else ONE if char == "?" else char)
        index += 1
    return tuple(tokens)


def _split_fields(tokens: Pattern) -> list[Pattern] | None:
    fields: list[Pattern] = []
    start = 0
    for index, part in enumerate(tokens):
        if part == ":" and len(fields) < 5:
            fields.append(tokens[start:index])
            start = index + 1
    if len(fields) < 5:
        return None
    fields.append(tokens[start:])
    return fields


@functools.lru_cache(maxsize=16384)
def policy_arn(text: str) -> Arn | str:
    """The parsed ARN of a policy's Resource, or why it is malformed."""
    if len(text) > ARN_MAX_LENGTH:
        return f"it is longer than {ARN_MAX_LENGTH} characters"
    if any(char.isspace() or ord(char) < 32 for char in text):
        return "it contains white space or control characters"
    fields = _split_fields(_tokens(text))
    if fields is None or fields[0] != tuple("arn"):
        return 'an ARN has six parts, "arn:partition:service:region:account:resource"'
    partition, service, region, account, resource = fields[1:]
    if not any(globs_intersect(partition, tuple(known)) for known in PARTITIONS):
        return f"the partition must be one of {', '.join(PARTITIONS)}"
    if not service:
        return "the service part is empty"
    if not resource:
        return "the resource part is empty"
    return Arn(text, partition, service, region, account, resource)


@functools.lru_cache(maxsize=8192)
def reference_arn(text: str) -> Arn | None:
    service = text.split(":")[2] if text.count(":") >= 2 else ""
    fields = _split_fields(_tokens(text, placeholder=STAR, service=service))
    if fields is None:
        return None
    return Arn(text, *fields[1:])


@dataclass(frozen=True, eq=False)
class Glob:
    """A policy pattern as bit masks: bit i stands for position i of the pattern."""

    length: int
    wild: int  # `*` and policy variables
    fixed: int  # characters and `?`
    fixed_not_slash: int  # characters other than "/", and `?`
    one: int  # `?`
    chars: dict[str, int]  # where each character is

    @classmethod
    def of(cls, pattern: Pattern) -> Glob:
        wild = fixed = fixed_not_slash = one = 0
        chars: dict[str, int] = {}
        for index, part in enumerate(pattern):
            bit = 1 << index
            if part in WILDCARDS:
                wild |= bit
                continue
            fixed |= bit
            if part == ONE:
                one |= bit
            else:
                chars[part] = chars.get(part, 0) | bit
            if part != "/":
                fixed_not_slash |= bit
        return cls(len(pattern), wild, fixed, fixed_not_slash, one, chars)


def _advance(states: int, movable: int) -> int:
    """States plus every position reachable from them by stepping over `movable` ones.

    Adding the movable run a state sits in carries a bit through to the end
    of the run; the exclusive-or picks out the positions the carry passed.
    """
    return states | (((states & movable) + movable) ^ movable)


def globs_intersect(policy: Pattern | Glob, reference: Pattern) -> bool:
    """Whether some string matches both a policy pattern and a reference pattern.

    Walks the reference pattern keeping the set of policy positions that can
    be reached (a product automaton, a machine word at a time), so the cost
    grows with the product of the lengths divided by the word size, whatever
    the wildcards.
    """
    glob = policy if isinstance(policy, Glob) else Glob.of(policy)
    states = 1
    for token in reference:
        if token == STAR:
            states = _advance(states, glob.wild | glob.fixed)
        elif token == SEGMENT:
            states = _advance(states, glob.wild | glob.fixed_not_slash)
        else:
            states = _advance(states, glob.wild)
            matching = glob.chars.get(token, 0) | glob.one
            states = (states & glob.wild) | ((states & matching) << 1)
        if not states:
            return False
    return bool(_advance(states, glob.wild) >> glob.length & 1)


@functools.lru_cache(maxsize=65536)
def arn_matches(policy_arn: Arn, reference: Arn) -> bool:
    return (
        globs_intersect(policy_arn.service, reference.service)
        and globs_intersect(policy_arn.region, reference.region)
        and globs_intersect(policy_arn.account, reference.account)
        and globs_intersect(policy_arn.resource_glob, reference.resource)
    )


def covers_every_resource(policy_arn: Arn, reference: Arn) -> bool:
    """Whether the ARN names every resource of the type, not some of them.

    True when the wildcard starts where the type's own name starts, such as
    `secret:*`, `table/*` or, for S3, `*` and `*/*`.
    """
    prefix_length = 0
    for token in reference.resource:
        if token in WILDCARDS:
            break
        prefix_length += 1
    return STAR in policy_arn.resource[: prefix_length + 1]
