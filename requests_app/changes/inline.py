"""Inline policies of a role: put (add or replace by name) and delete."""

from __future__ import annotations

from typing import Any

import boto3

from accounts.fetch import policy_document
from requests_app.changes.base import ChangeRefused, ChangeType, Checked, Slot
from requests_app.changes.common import (
    ALREADY_GONE,
    dumps,
    iam_client,
    identity_document,
    inline_guard,
    invalid,
    json_size,
    last_segment,
    outcome_of,
    payload_fields,
    payload_of,
    reserved_policy_name,
    role_guard,
    role_managed,
    same_document,
    tolerating,
)
from requests_app.models import Change
from requests_app.policy.names import POLICY_NAME

# ASCII only: \w and \d would otherwise accept letters and digits IAM refuses.


def _policy_name(payload: dict[str, Any]) -> str:
    name = payload.get("policy_name")
    if not isinstance(name, str) or not POLICY_NAME.fullmatch(name):
        invalid(
            "payload.policy_name",
            "A policy name is 1-128 letters, digits or +=,.@_- characters.",
        )
    refusal = reserved_policy_name(name)
    if refusal:
        invalid("payload.policy_name", refusal)
    return name


def _inline_guard(change: Change, session: boto3.Session) -> None:
    role_guard(change, session)
    inline_guard(change)


def _inline_put_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=("policy_name", "document"))
    name = _policy_name(payload)
    others = {k: v for k, v in (role.inline_policies or {}).items() if k != name}
    document = identity_document(
        payload["document"], other_inline_size=sum(json_size(doc) for doc in others.values())
    )
    previous = (role.inline_policies or {}).get(name)
    return Checked(role.account.account_id, {"policy_name": name, "document": document}, previous)


def _inline_delete_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=("policy_name",))
    name = _policy_name(payload)
    current = role.inline_policies or {}
    if name not in current:
        invalid("payload.policy_name", f"Role {role.name} has no inline policy {name}.")
    return Checked(role.account.account_id, {"policy_name": name}, current[name])


def _inline_put_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam, payload = iam_client(session), payload_of(change)
    role, name = last_segment(change.target_arn), payload["policy_name"]
    # A retried apply (its worker died after the write reached AWS) finds the
    # document in place and writes nothing.
    found = tolerating(ALREADY_GONE, iam.get_role_policy, RoleName=role, PolicyName=name)
    if found and same_document(found["PolicyDocument"], payload["document"]):
        return {}
    iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=dumps(payload["document"]))
    return {}


def _inline_put_revert(change: Change, session: boto3.Session) -> None:
    iam = iam_client(session)
    role, name = last_segment(change.target_arn), payload_of(change)["policy_name"]
    if isinstance(change.previous, dict):
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=dumps(change.previous))
    else:
        iam.delete_role_policy(RoleName=role, PolicyName=name)


def _inline_delete_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam = iam_client(session)
    role, name = last_segment(change.target_arn), payload_of(change)["policy_name"]
    # The document as it is in AWS now, which may be newer than the inventory's.
    found = tolerating(ALREADY_GONE, iam.get_role_policy, RoleName=role, PolicyName=name)
    tolerating(ALREADY_GONE, iam.delete_role_policy, RoleName=role, PolicyName=name)
    return {"document": policy_document(found["PolicyDocument"])} if found else {}


def _inline_delete_revert(change: Change, session: boto3.Session) -> None:
    document = outcome_of(change).get("document") or change.previous
    if not isinstance(document, dict):
        raise ChangeRefused("The deleted policy's document is not recorded: it cannot be restored.")
    iam_client(session).put_role_policy(
        RoleName=last_segment(change.target_arn),
        PolicyName=payload_of(change)["policy_name"],
        PolicyDocument=dumps(document),
    )


def _put_document(change: Change) -> tuple[Any, Any] | None:
    return change.previous, payload_of(change).get("document")


def _delete_document(change: Change) -> tuple[Any, Any] | None:
    return change.previous, None


def _put_summary(change: Change) -> str:
    verb = "Add" if change.previous is None else "Update"
    name = payload_of(change).get("policy_name", "")
    return f"{verb} inline policy {name} on role {last_segment(change.target_arn)}"


def _delete_summary(change: Change) -> str:
    name = payload_of(change).get("policy_name", "")
    return f"Delete inline policy {name} from role {last_segment(change.target_arn)}"


def _slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    return {("inline", target_arn, str(payload.get("policy_name", "")))}


INLINE_POLICY_PUT = ChangeType(
    type=Change.Type.INLINE_POLICY_PUT,
    validate=_inline_put_validate,
    apply=_inline_put_apply,
    revert=_inline_put_revert,
    guard=_inline_guard,
    document=_put_document,
    summary=_put_summary,
    slots=_slots,
    noun="inline policy",
    targets_role=True,
    linted=True,
)

INLINE_POLICY_DELETE = ChangeType(
    type=Change.Type.INLINE_POLICY_DELETE,
    validate=_inline_delete_validate,
    apply=_inline_delete_apply,
    revert=_inline_delete_revert,
    guard=_inline_guard,
    document=_delete_document,
    summary=_delete_summary,
    slots=_slots,
    noun="inline policy",
    targets_role=True,
    linted=False,
)
