"""Tags of a role: set and remove. The access tags among them decide who may use
the role through iamportal, so summaries and diffs show their values."""

from __future__ import annotations

import re
from typing import Any

import boto3
from django.conf import settings

from requests_app.changes.base import ChangeType, Checked, Slot
from requests_app.changes.common import (
    document_slots,
    iam_client,
    invalid,
    last_segment,
    listing,
    payload_fields,
    payload_of,
    role_guard,
    role_managed,
    strs,
)
from requests_app.models import Change
from requests_app.policy.limits import ROLE_TAGS_MAX, TAG_KEY_MAX_LENGTH, TAG_VALUE_MAX_LENGTH

# IAM's tag rule is [\p{L}\p{Z}\p{N}_.:/=+\-@]: letters and digits of any script, and
# spaces (only the plain one here; \s would let in line breaks).
_TAG_TEXT = re.compile(r"[\w .:/=+\-@]*")


def _tag_key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not 1 <= len(key) <= TAG_KEY_MAX_LENGTH:
        return f"A tag key is 1-{TAG_KEY_MAX_LENGTH} characters."
    if not _TAG_TEXT.fullmatch(key):
        return f"The tag key {key!r} may only hold letters, digits, spaces and _.:/=+-@."
    if key.lower().startswith("aws:"):
        return f"The tag key {key!r} starts with aws:, which AWS keeps for itself."
    return None


def tags_checked(tags: Any, *, where: str = "payload.tags") -> set[str]:
    """Check tags given as an object of keys to values, as IAM would; returns
    their keys in lower case (IAM tag keys of a role ignore case)."""
    if not isinstance(tags, dict) or not tags:
        invalid(where, 'Give the tags as an object, such as {"team": "payments"}.')
    seen: set[str] = set()
    for key, value in tags.items():
        problem = _tag_key_problem(key)
        if problem:
            invalid(where, problem)
        if key.lower() in seen:
            invalid(where, f"IAM tag keys ignore case: {key!r} is given twice.")
        seen.add(key.lower())
        if not isinstance(value, str) or len(value) > TAG_VALUE_MAX_LENGTH:
            invalid(
                where,
                f"The value of tag {key!r} must be a string of at most {TAG_VALUE_MAX_LENGTH} "
                "characters.",
            )
        if not _TAG_TEXT.fullmatch(value):
            invalid(
                where,
                f"The value of tag {key!r} may only hold letters, digits, spaces and _.:/=+-@.",
            )
    return seen


def _tags_put_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=("tags",))
    tags = payload["tags"]
    seen = tags_checked(tags)
    # IAM tag keys of a role ignore case: "Team" replaces "team".
    current = {str(k).lower(): v for k, v in (role.tags or {}).items()}
    total = len(set(current) | seen)
    if total > ROLE_TAGS_MAX:
        invalid(
            "payload.tags",
            f"A role has at most {ROLE_TAGS_MAX} tags; with these it would have {total}.",
        )
    previous = {key: current.get(key.lower()) for key in tags}
    return Checked(role.account.account_id, {"tags": dict(tags)}, previous)


def _tags_delete_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=("keys",))
    keys = payload["keys"]
    if not isinstance(keys, list) or not keys or len(keys) > ROLE_TAGS_MAX:
        invalid("payload.keys", f"Give a list of 1 to {ROLE_TAGS_MAX} tag keys.")
    current = {str(k).lower(): v for k, v in (role.tags or {}).items()}
    seen: set[str] = set()
    for key in keys:
        problem = _tag_key_problem(key)
        if problem:
            invalid("payload.keys", problem)
        if key.lower() in seen:
            invalid("payload.keys", f"IAM tag keys ignore case: {key!r} is given twice.")
        seen.add(key.lower())
        if key.lower() not in current:
            invalid("payload.keys", f"Role {role.name} has no tag {key!r}.")
    previous = {key: current[key.lower()] for key in keys}
    return Checked(role.account.account_id, {"keys": list(keys)}, previous)


def _tags_restore(change: Change, session: boto3.Session, keys: list[str]) -> None:
    """Give `keys` back the values they had before; untag those that did not exist."""
    previous = change.previous if isinstance(change.previous, dict) else {}
    iam, role = iam_client(session), last_segment(change.target_arn)
    restore = [{"Key": k, "Value": previous[k]} for k in keys if previous.get(k) is not None]
    absent = [k for k in keys if previous.get(k) is None]
    if absent:
        iam.untag_role(RoleName=role, TagKeys=absent)
    if restore:
        iam.tag_role(RoleName=role, Tags=restore)


def _tags_put_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    tags = payload_of(change)["tags"]
    iam_client(session).tag_role(
        RoleName=last_segment(change.target_arn),
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    return {}


def _tags_put_revert(change: Change, session: boto3.Session) -> None:
    _tags_restore(change, session, list(payload_of(change)["tags"]))


def _tags_delete_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam_client(session).untag_role(
        RoleName=last_segment(change.target_arn), TagKeys=payload_of(change)["keys"]
    )
    return {}


def _tags_delete_revert(change: Change, session: boto3.Session) -> None:
    _tags_restore(change, session, strs(payload_of(change)["keys"]))


def _document(change: Change) -> tuple[Any, Any] | None:
    # Tags decide who may use a role through iamportal: show their values.
    payload = payload_of(change)
    before = change.previous if isinstance(change.previous, dict) else {}
    before = {k: v for k, v in before.items() if v is not None}
    tags = payload.get("tags")
    after = dict(before)
    if change.type == Change.Type.TAGS_PUT and isinstance(tags, dict):
        after.update(tags)
    for key in strs(payload.get("keys")) if change.type == Change.Type.TAGS_DELETE else []:
        after.pop(key, None)
    return before, after


def _put_summary(change: Change) -> str:
    tags = payload_of(change).get("tags")
    pairs = [f"{k}={v}" for k, v in tags.items()] if isinstance(tags, dict) else []
    access = {settings.IAMPORTAL_AUTH_TAG, settings.IAMPORTAL_AUTH_CLI_TAG}
    warning = (
        " (these tags decide who may use the role through iamportal)"
        if isinstance(tags, dict) and access & set(tags)
        else ""
    )
    return f"Set tags {listing(pairs)} on role {last_segment(change.target_arn)}{warning}"


def _delete_summary(change: Change) -> str:
    keys = strs(payload_of(change).get("keys"))
    return f"Remove tags {listing(keys)} from role {last_segment(change.target_arn)}"


def _put_slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    if not isinstance(payload.get("tags"), dict):
        return document_slots(target_arn, payload)
    return {("tag", target_arn, str(key).lower()) for key in payload["tags"]}


def _delete_slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    if not isinstance(payload.get("keys"), list):
        return document_slots(target_arn, payload)
    return {("tag", target_arn, str(key).lower()) for key in payload["keys"]}


TAGS_PUT = ChangeType(
    type=Change.Type.TAGS_PUT,
    validate=_tags_put_validate,
    apply=_tags_put_apply,
    revert=_tags_put_revert,
    guard=role_guard,
    document=_document,
    summary=_put_summary,
    slots=_put_slots,
    noun="tag",
    targets_role=True,
    linted=False,
)

TAGS_DELETE = ChangeType(
    type=Change.Type.TAGS_DELETE,
    validate=_tags_delete_validate,
    apply=_tags_delete_apply,
    revert=_tags_delete_revert,
    guard=role_guard,
    document=_document,
    summary=_delete_summary,
    slots=_delete_slots,
    noun="tag",
    targets_role=True,
    linted=False,
)
