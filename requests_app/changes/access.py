"""Access to a role: the one change of an access request. It changes nothing in
AWS; applying it makes the requester's grant (a rule in the access index, from
its start until the request's expiry), and undoing it ends the grant and the
sessions it gave. Its payload names who gets the role, whether only from the
command line, and from when, so the request's revision covers all of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.dateparse import parse_datetime

from accounts.models import IamRole
from brokering.models import AccessRule
from brokering.services import access_grant_end, access_grant_start
from requests_app.changes.base import ChangeRefused, ChangeType, Checked, Slot
from requests_app.changes.common import invalid, last_segment, role_guard
from requests_app.models import Change, PolicyRequest


def access_payload(*, user: User, cli_only: bool, starts_at: datetime | None) -> dict[str, Any]:
    return {
        "user_id": user.pk,
        "user": user.email or user.get_username(),
        "cli_only": bool(cli_only),
        "starts_at": starts_at.isoformat() if starts_at else None,
    }


def payload_starts_at(payload: Any) -> datetime | None:
    value = payload.get("starts_at") if isinstance(payload, dict) else None
    return parse_datetime(value) if isinstance(value, str) else None


def _validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    # Who gets the role is the requester, which a change alone cannot know: access
    # is asked for with an access request, never as a change of another request.
    invalid(
        "type",
        "Access to a role is asked for with an access request "
        "(POST /api/v1/requests/access), not as a change.",
    )


def _apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    request = PolicyRequest.objects.select_related("requester").get(pk=change.request_id)
    payload = change.payload if isinstance(change.payload, dict) else {}
    user_id = payload.get("user_id")
    user = User.objects.filter(pk=user_id).first() if isinstance(user_id, int) else None
    if user is None or not user.is_active:
        raise ChangeRefused("The user this access is for is no longer active: nothing granted.")
    role = IamRole.objects.select_related("account").filter(arn=change.target_arn).first()
    if role is None:
        raise ChangeRefused("The role is no longer in the inventory: nothing granted.")
    with transaction.atomic():
        # A retry (its worker died after the grant was made) finds the grant: the
        # access it extends may have ended since, by this very grant's hand-over.
        made = AccessRule.objects.filter(request_id=request.pk).exists()
        if request.extends_id is not None and not made:
            # Locked as revoking it locks it: a revocation either comes first and
            # is seen here, or comes after and ends this grant too. An extension
            # takes over access in force, never brings back access that ended.
            extended = PolicyRequest.objects.select_for_update().get(pk=request.extends_id)
            if extended.status != PolicyRequest.Status.APPLIED:
                raise ChangeRefused(
                    f"The access this extends (request #{extended.pk}) is no longer in force "
                    "(revoked, given up, expired or already extended): nothing granted. Ask "
                    "for access again."
                )
        grant = access_grant_start(
            request_id=request.pk,
            user=user,
            role=role,
            cli_only=bool(payload.get("cli_only")),
            starts_at=payload_starts_at(payload),
            expires_at=request.expires_at,
            replaces_request_id=request.extends_id,
        )
    return {"grant": grant.pk}


def _revert(change: Change, session: boto3.Session) -> None:
    access_grant_end(request_id=change.request_id)


def _summary(change: Change) -> str:
    payload = change.payload if isinstance(change.payload, dict) else {}
    text = f"Let {payload.get('user', 'the requester')} use {last_segment(change.target_arn)}"
    if payload.get("cli_only"):
        text += ", from the command line only"
    starts_at = payload_starts_at(payload)
    if starts_at is not None:
        text += f", from {starts_at:%Y-%m-%d %H:%M} UTC"
    return text


def _slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    return {("access", target_arn, str(payload.get("user_id", "")))}


def _document(change: Change) -> tuple[Any, Any] | None:
    return None


ROLE_ACCESS_GRANT = ChangeType(
    type=Change.Type.ROLE_ACCESS_GRANT,
    validate=_validate,
    apply=_apply,
    revert=_revert,
    guard=role_guard,
    document=_document,
    summary=_summary,
    slots=_slots,
    noun="access to the role",
    targets_role=False,
    linted=False,
)
