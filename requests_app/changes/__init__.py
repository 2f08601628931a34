"""Every kind of change a request carries: how it is validated when created, what
was there before, how it is applied through the spoke role of its account, and
how temporary access is taken away again.

The services orchestrate (who may, in which order, claims and statuses); this
package knows IAM, S3, SQS and SNS. Each family of change types has its module
(`inline`, `attachment`, `managed`, `tags`, `boundary`, `trust`, `resource`,
`lifecycle`, sharing `principal` and `common`), each type is one `ChangeType` object, and
`registry.CHANGE_TYPES` holds them all. The functions below are what callers
use; they look the type up in the registry.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from accounts.selectors import role_protected
from requests_app.changes.base import (
    ChangeInvalid,
    ChangeRefused,
    ChangeSpec,
    ChangeType,
    Checked,
    Slot,
)
from requests_app.changes.common import (
    JSON_MAX_DEPTH,
    PAYLOAD_MAX_SIZE,
    VERSION,
    document_slots,
    error_code,
    json_problem,
    json_size,
    protected_policy_refusal,
    protected_role_refusal,
    reserved_policy_name,
    role_guard,
)
from requests_app.changes.crossaccount import cross_account_changes, statement_sid
from requests_app.changes.principal import (
    AUTOMATIC_SID_PREFIX,
    MERGE_STATEMENTS_MAX,
    principal_policy_after,
)
from requests_app.changes.registry import CHANGE_TYPES, change_type
from requests_app.models import Change
from requests_app.policy.limits import ARN_MAX_LENGTH

__all__ = [
    "AUTOMATIC_SID_PREFIX",
    "CHANGE_TYPES",
    "JSON_MAX_DEPTH",
    "MERGE_STATEMENTS_MAX",
    "PAYLOAD_MAX_SIZE",
    "VERSION",
    "ChangeInvalid",
    "ChangeRefused",
    "ChangeSpec",
    "ChangeType",
    "Checked",
    "Slot",
    "change_apply",
    "change_document",
    "change_guard",
    "change_revert",
    "change_slots",
    "change_summary",
    "change_type",
    "change_validate",
    "cross_account_changes",
    "principal_policy_after",
    "protected_policy_refusal",
    "protected_role_refusal",
    "reserved_policy_name",
    "role_protected",
    "statement_sid",
]

# What AWS answers when the thing a revert would remove is already gone.
_GONE_CODES = frozenset(
    {
        "NoSuchEntity",
        "NoSuchBucket",
        "NoSuchBucketPolicy",
        "NotFound",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
    }
)


def change_validate(*, type: str, target_arn: str, payload: Any) -> ChangeSpec:
    """Check a change as the requester (or the wizard) describes it and return it
    normalised, with `previous` taken from the inventory. Raises ChangeInvalid."""
    if not isinstance(type, str) or type not in CHANGE_TYPES:
        choices = ", ".join(CHANGE_TYPES)
        raise ChangeInvalid({"type": f"Unknown change type. Use one of: {choices}."})
    if not isinstance(target_arn, str) or not target_arn:
        raise ChangeInvalid({"target_arn": "Give the ARN of what the change is about."})
    if len(target_arn) > ARN_MAX_LENGTH:
        raise ChangeInvalid({"target_arn": f"An ARN is at most {ARN_MAX_LENGTH} characters."})
    if not isinstance(payload, dict):
        raise ChangeInvalid({"payload": "The payload must be a JSON object."})
    problem = json_problem(payload)
    if problem:
        raise ChangeInvalid({"payload": f"The payload {problem}."})
    if json_size(payload) > PAYLOAD_MAX_SIZE:
        raise ChangeInvalid({"payload": f"The payload is over {PAYLOAD_MAX_SIZE} characters."})
    kind = Change.Type(type)
    checked = change_type(kind).validate(target_arn, payload)
    return ChangeSpec(
        type=kind.value,
        target_arn=target_arn,
        account_id=checked.account_id,
        payload=checked.payload,
        previous=checked.previous,
    )


def change_apply(*, change: Change, session: boto3.Session) -> dict[str, Any]:
    """Make the change in AWS with `session` (the spoke role of the change's
    account). Returns what undoing it later needs (stored as `Change.outcome`).
    Applying a change again once it is in place succeeds and changes nothing.
    Raises botocore's ClientError/BotoCoreError when AWS refuses, ChangeRefused
    when iamportal does."""
    return change_type(change.type).apply(change, session)


def change_revert(*, change: Change, session: boto3.Session) -> None:
    """Undo an applied change when its temporary access expires. What is already
    gone counts as undone. Raises ClientError/BotoCoreError or ChangeRefused."""
    try:
        change_type(change.type).revert(change, session)
    except ClientError as exc:
        if error_code(exc) not in _GONE_CODES:
            raise


def change_guard(*, change: Change, session: boto3.Session) -> None:
    """Refuse a change that would reach one of iamportal's own roles, as AWS has
    them now: the services call this for every change of a request before any
    of them is applied. Raises ChangeRefused, or ClientError when AWS cannot say
    (then nothing is written either). A type iamportal does not know is refused
    by its apply."""
    kind = CHANGE_TYPES.get(change.type)
    (kind.guard if kind else role_guard)(change, session)


def change_document(change: Change) -> tuple[Any, Any] | None:
    """(before, after) policy documents to show as a diff, or None when the change
    is not about a document."""
    kind = CHANGE_TYPES.get(change.type)
    return kind.document(change) if kind else None


def change_summary(change: Change) -> str:
    """One line saying what the change does, e.g. "Attach arn:aws:iam::aws:policy/X"."""
    kind = CHANGE_TYPES.get(change.type)
    return kind.summary(change) if kind else f"{change.type} on {change.target_arn}"


def change_slots(*, type: str, target_arn: str, payload: Any) -> set[Slot]:
    """What of a principal or resource a change sets, which overlapping temporary
    requests must not share (see `ChangeType.slots`)."""
    payload = payload if isinstance(payload, dict) else {}
    kind = CHANGE_TYPES.get(type)
    return kind.slots(target_arn, payload) if kind else document_slots(target_arn, payload)
