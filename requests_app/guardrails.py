"""What the organisation's guardrails would deny of a request: for each change
that grants a role permissions, the actions a service control policy of the
account or the role's permissions boundary denies, so nobody approves what
cannot work. The judgement is `requests_app.policy.evaluate`; this module reads
the SCPs and the boundary from the inventory.

The boundary is the one the role will have: the request's own boundary change
counts. A boundary the inventory does not hold (an AWS-managed policy) is not
judged, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from accounts.models import AwsAccount, IamRole, ManagedPolicy
from accounts.selectors import boundary_policy, scp_levels_for_account
from requests_app.findings import ChangeLike
from requests_app.models import Change
from requests_app.policy.evaluate import GuardrailNote, NamedPolicy, ScpLevel, guardrail_notes

# A policy with many actions and resources under a conditional SCP could make
# thousands of notes; a page shows this many per change, and how many more.
NOTES_MAX = 50


@dataclass(frozen=True)
class ChangeGuardrails:
    """What the guardrails say about one change of a request."""

    notes: list[GuardrailNote]
    # A boundary the inventory does not hold, so not judged.
    boundary_unknown: str = ""
    # Notes beyond NOTES_MAX, not listed.
    more: int = 0


def _payload(change: ChangeLike) -> dict[str, Any]:
    return change.payload if isinstance(change.payload, dict) else {}


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


def _boundary_after(role: IamRole, changes: Sequence[ChangeLike]) -> str:
    arn = role.permissions_boundary_arn
    for change in changes:
        if change.target_arn != role.arn:
            continue
        if change.type == Change.Type.PERMISSIONS_BOUNDARY_PUT:
            arn = str(_payload(change).get("policy_arn", ""))
        elif change.type == Change.Type.PERMISSIONS_BOUNDARY_DELETE:
            arn = ""
    return arn


def _granted(change: ChangeLike, role: IamRole | None) -> tuple[Any, bool]:
    """The identity policy a change grants, and whether it is granted to `role`
    (so its boundary applies): an inline policy, an attached managed policy, or
    a managed policy's new document (for every role using it: SCPs only)."""
    payload = _payload(change)
    on_role = role is not None and change.target_arn == role.arn
    if change.type == Change.Type.INLINE_POLICY_PUT and on_role:
        return payload.get("document"), True
    if change.type == Change.Type.MANAGED_POLICY_ATTACH and on_role:
        arn = str(payload.get("policy_arn", ""))
        document = ManagedPolicy.objects.filter(arn=arn).values_list("document", flat=True).first()
        return document, True
    if change.type in (Change.Type.MANAGED_POLICY_CREATE, Change.Type.MANAGED_POLICY_VERSION):
        return payload.get("document"), False
    return None, False


def changes_guardrails(
    *, role: IamRole | None, changes: Sequence[ChangeLike]
) -> list[ChangeGuardrails]:
    """One entry per change, in order: the notes on what the SCPs of its account
    and the role's boundary deny of what it grants (empty for other changes)."""
    levels: dict[str, list[ScpLevel]] = {}
    boundary_arn = _boundary_after(role, changes) if role is not None else ""
    boundary: NamedPolicy | None = boundary_policy(arn=boundary_arn)
    found = []
    for change in changes:
        document, on_role = _granted(change, role)
        if not isinstance(document, dict):
            found.append(ChangeGuardrails(notes=[]))
            continue
        account_id = _account_of(change.target_arn)
        if account_id not in levels:
            account = AwsAccount.objects.filter(account_id=account_id).first()
            levels[account_id] = scp_levels_for_account(account=account) if account else []
        context = {"aws:PrincipalAccount": account_id}
        if on_role and role is not None:
            context["aws:PrincipalArn"] = role.arn
        notes = guardrail_notes(
            document,
            scp_levels=levels[account_id],
            boundary=boundary if on_role else None,
            context=context,
        )
        unknown = boundary_arn if on_role and boundary_arn and boundary is None else ""
        # Certain denials first (the page groups them by certainty).
        notes.sort(key=lambda note: not note.certain)
        found.append(
            ChangeGuardrails(
                notes=notes[:NOTES_MAX],
                boundary_unknown=unknown,
                more=max(0, len(notes) - NOTES_MAX),
            )
        )
    return found
