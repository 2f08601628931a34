"""The trust policy of a role: who may assume it. Replaced whole or merged by Sid;
iamportal also merges into it the other half of a cross-account grant."""

from __future__ import annotations

from typing import Any

import boto3

from requests_app.changes.base import ChangeRefused, ChangeType, Checked
from requests_app.changes.common import (
    document_slots,
    dumps,
    iam_client,
    last_segment,
    payload_of,
    role_guard,
    role_managed,
)
from requests_app.changes.principal import (
    PolicySlot,
    as_document,
    policy_apply,
    policy_revert,
    policy_summary,
    principal_document,
    principal_policy_payload,
)
from requests_app.models import Change
from requests_app.policy.limits import TRUST_POLICY_MAX_SIZE


def _trust_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    previous = role.trust_policy or None
    normalised = principal_policy_payload(
        payload,
        previous=previous,
        trust=True,
        max_size=TRUST_POLICY_MAX_SIZE,
        what="trust policy",
    )
    return Checked(role.account.account_id, normalised, previous)


def _trust_slot(change: Change, session: boto3.Session) -> PolicySlot:
    iam, role = iam_client(session), last_segment(change.target_arn)

    def read() -> dict[str, Any] | None:
        found = iam.get_role(RoleName=role)["Role"]
        if found.get("Arn") != change.target_arn:
            # IAM finds a role by name: never write to one with another path.
            raise ChangeRefused(
                f"The role named {role} is {found.get('Arn')}, not {change.target_arn}."
            )
        return as_document(found.get("AssumeRolePolicyDocument"))

    def write(document: dict[str, Any]) -> None:
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=dumps(document))

    def clear() -> None:
        raise ChangeRefused(
            f"Removing these statements would leave role {role} without a trust policy, "
            "which IAM does not allow: edit its trust policy by hand."
        )

    return PolicySlot(read, write, clear, deletable=False)


def _apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    return policy_apply(_trust_slot(change, session), change)


def _revert(change: Change, session: boto3.Session) -> None:
    policy_revert(_trust_slot(change, session), change)


def _summary(change: Change) -> str:
    role = last_segment(change.target_arn)
    return policy_summary(payload_of(change), f"the trust policy of role {role}")


TRUST_POLICY_UPDATE = ChangeType(
    type=Change.Type.TRUST_POLICY_UPDATE,
    validate=_trust_validate,
    apply=_apply,
    revert=_revert,
    guard=role_guard,
    document=principal_document,
    summary=_summary,
    slots=document_slots,
    noun="policy",
    targets_role=True,
    linted=False,
)
