"""Every kind of change a request carries: how it is validated when created, what
was there before, how it is applied through the spoke role of its account, and
how temporary access is taken away again.

The services orchestrate (who may, in which order, claims and statuses); this
module knows IAM, S3, SQS and SNS. Each function here handles every type in
`Change.Type`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3

from requests_app.models import Change


class ChangeInvalid(ValueError):
    """A change that cannot be made: `errors` maps a field (type, target_arn,
    payload, or a payload key such as payload.document) to a user-facing message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


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


def change_validate(*, type: str, target_arn: str, payload: Any) -> ChangeSpec:
    """Check a change as the requester (or the wizard) describes it and return it
    normalised, with `previous` taken from the inventory. Raises ChangeInvalid."""
    raise NotImplementedError


def change_apply(*, change: Change, session: boto3.Session) -> dict[str, Any]:
    """Make the change in AWS with `session` (the spoke role of the change's
    account). Returns what undoing it later needs (stored as `Change.outcome`).
    Raises botocore's ClientError/BotoCoreError when AWS refuses."""
    raise NotImplementedError


def change_revert(*, change: Change, session: boto3.Session) -> None:
    """Undo an applied change when its temporary access expires."""
    raise NotImplementedError


def change_document(change: Change) -> tuple[Any, Any] | None:
    """(before, after) policy documents to show as a diff, or None when the change
    is not about a document."""
    raise NotImplementedError


def change_summary(change: Change) -> str:
    """One line saying what the change does, e.g. "Attach arn:aws:iam::aws:policy/X"."""
    raise NotImplementedError
