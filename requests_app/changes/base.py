"""What every change type is made of: the errors it raises, the validated change
it returns, and `ChangeType`, the one object per type that the registry holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import boto3

from requests_app.models import Change


class ChangeInvalid(ValueError):
    """A change that cannot be made: `errors` maps a field (type, target_arn,
    payload, or a payload key such as payload.document) to a user-facing message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class ChangeRefused(Exception):
    """AWS would allow it, but doing it would break something: the message says
    what a person has to do first. Nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ChangeSpec:
    """A validated change, ready to be stored as a `Change` row."""

    type: str
    target_arn: str
    account_id: str
    payload: dict[str, Any]
    previous: Any = None
    automatic: bool = False
    # Why iamportal added it (automatic changes), shown on the request page.
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Checked(NamedTuple):
    """What a type's validate returns: the account the change is made in, the
    payload normalised, and what is there now (`Change.previous`)."""

    account_id: str
    payload: dict[str, Any]
    previous: Any


# What of a principal or resource a change sets, as (kind, ARN, name): an inline
# policy by name, a tag by key, an attachment, the boundary, a whole document.
Slot = tuple[str, str, str]


@dataclass(frozen=True)
class ChangeType:
    """Everything iamportal knows about one `Change.Type`. Every field is
    required: a type without a revert or a summary does not import."""

    type: str
    # (target_arn, payload) -> Checked: the payload normalised, what is there
    # now; raises ChangeInvalid. The payload is a JSON object of bounded size.
    validate: Callable[[str, dict[str, Any]], Checked]
    # Makes the change with the spoke session; idempotent. Returns the outcome
    # (what revert needs). Raises ClientError/BotoCoreError or ChangeRefused.
    apply: Callable[[Change, boto3.Session], dict[str, Any]]
    # Undoes an applied change (temporary access).
    revert: Callable[[Change, boto3.Session], None]
    # Refuses, just before apply, a change that would reach iamportal's own roles.
    guard: Callable[[Change, boto3.Session], None]
    # (before, after) to show as a diff, or None when there is no document.
    document: Callable[[Change], tuple[Any, Any] | None]
    # One line saying what the change does. Never fails on an odd payload.
    summary: Callable[[Change], str]
    # (target_arn, payload) -> what it sets, which two live requests must not
    # share when either is temporary.
    slots: Callable[[str, dict[str, Any]], set[Slot]]
    # What a slot is called: "Request #3 changes the same <noun>".
    noun: str
    # Whether it changes the principal itself: it must then name the request's role.
    targets_role: bool
    # Whether its document (after) is an identity policy the linter understands.
    linted: bool
