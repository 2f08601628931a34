"""The permissions boundary of a role: set (or replace) and remove."""

from __future__ import annotations

from typing import Any

import boto3

from requests_app.changes.base import ChangeType, Checked, Slot
from requests_app.changes.common import (
    ALREADY_GONE,
    iam_client,
    invalid,
    last_segment,
    no_document,
    payload_fields,
    payload_of,
    policy_arn_checked,
    role_guard,
    role_managed,
    tolerating,
)
from requests_app.models import Change


def _boundary_put_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=("policy_arn",))
    arn = policy_arn_checked(payload, role=role)
    previous = role.permissions_boundary_arn or None
    if arn == previous:
        invalid("payload.policy_arn", f"{arn} already is the boundary of role {role.name}.")
    return Checked(role.account.account_id, {"policy_arn": arn}, previous)


def _boundary_delete_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=())
    if not role.permissions_boundary_arn:
        invalid("target_arn", f"Role {role.name} has no permissions boundary.")
    return Checked(role.account.account_id, {}, role.permissions_boundary_arn)


def _boundary_set(change: Change, session: boto3.Session, arn: Any) -> None:
    iam, role = iam_client(session), last_segment(change.target_arn)
    if isinstance(arn, str) and arn:
        iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=arn)
    else:
        tolerating(ALREADY_GONE, iam.delete_role_permissions_boundary, RoleName=role)


def _boundary_put_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _boundary_set(change, session, payload_of(change)["policy_arn"])
    return {}


def _boundary_delete_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _boundary_set(change, session, None)
    return {}


def _boundary_revert(change: Change, session: boto3.Session) -> None:
    _boundary_set(change, session, change.previous)


def _put_summary(change: Change) -> str:
    arn = payload_of(change).get("policy_arn", "")
    return f"Set the permissions boundary of role {last_segment(change.target_arn)} to {arn}"


def _delete_summary(change: Change) -> str:
    return f"Remove the permissions boundary of role {last_segment(change.target_arn)}"


def _slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    return {("boundary", target_arn, "")}


PERMISSIONS_BOUNDARY_PUT = ChangeType(
    type=Change.Type.PERMISSIONS_BOUNDARY_PUT,
    validate=_boundary_put_validate,
    apply=_boundary_put_apply,
    revert=_boundary_revert,
    guard=role_guard,
    document=no_document,
    summary=_put_summary,
    slots=_slots,
    noun="permissions boundary",
    targets_role=True,
    linted=False,
)

PERMISSIONS_BOUNDARY_DELETE = ChangeType(
    type=Change.Type.PERMISSIONS_BOUNDARY_DELETE,
    validate=_boundary_delete_validate,
    apply=_boundary_delete_apply,
    revert=_boundary_revert,
    guard=role_guard,
    document=no_document,
    summary=_delete_summary,
    slots=_slots,
    noun="permissions boundary",
    targets_role=True,
    linted=False,
)
