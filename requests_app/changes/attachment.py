"""Managed policies attached to a role: attach and detach. Each undoes the other."""

from __future__ import annotations

from typing import Any

import boto3

from accounts.models import IamRole
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


def _attached(role: IamRole) -> set[str]:
    return {str(p.get("arn")) for p in (role.managed_policies or []) if isinstance(p, dict)}


def _attach_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=("policy_arn",))
    arn = policy_arn_checked(payload, role=role)
    if arn in _attached(role):
        # Undoing temporary access would otherwise detach a policy the role had before.
        invalid("payload.policy_arn", f"{arn} is already attached to role {role.name}.")
    return Checked(role.account.account_id, {"policy_arn": arn}, None)


def _detach_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=("policy_arn",))
    arn = policy_arn_checked(payload, role=role)
    if arn not in _attached(role):
        invalid("payload.policy_arn", f"{arn} is not attached to role {role.name}.")
    return Checked(role.account.account_id, {"policy_arn": arn}, arn)


def _attach(change: Change, session: boto3.Session) -> None:
    iam_client(session).attach_role_policy(
        RoleName=last_segment(change.target_arn), PolicyArn=payload_of(change)["policy_arn"]
    )


def _detach(change: Change, session: boto3.Session) -> None:
    tolerating(
        ALREADY_GONE,
        iam_client(session).detach_role_policy,
        RoleName=last_segment(change.target_arn),
        PolicyArn=payload_of(change)["policy_arn"],
    )


def _attach_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _attach(change, session)
    return {}


def _detach_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    _detach(change, session)
    return {}


def _attach_summary(change: Change) -> str:
    arn = payload_of(change).get("policy_arn", "")
    return f"Attach {arn} to role {last_segment(change.target_arn)}"


def _detach_summary(change: Change) -> str:
    arn = payload_of(change).get("policy_arn", "")
    return f"Detach {arn} from role {last_segment(change.target_arn)}"


def _slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    return {("attachment", target_arn, str(payload.get("policy_arn", "")))}


MANAGED_POLICY_ATTACH = ChangeType(
    type=Change.Type.MANAGED_POLICY_ATTACH,
    validate=_attach_validate,
    apply=_attach_apply,
    revert=_detach,
    guard=role_guard,
    document=no_document,
    summary=_attach_summary,
    slots=_slots,
    noun="managed policy attachment",
    targets_role=True,
    linted=False,
)

MANAGED_POLICY_DETACH = ChangeType(
    type=Change.Type.MANAGED_POLICY_DETACH,
    validate=_detach_validate,
    apply=_detach_apply,
    revert=_attach,
    guard=role_guard,
    document=no_document,
    summary=_detach_summary,
    slots=_slots,
    noun="managed policy attachment",
    targets_role=True,
    linted=False,
)
