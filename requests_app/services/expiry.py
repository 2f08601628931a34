"""Temporary access: extending it, and taking it away when it expires."""

from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from requests_app.changes import ChangeSpec
from requests_app.models import Change, PolicyRequest, RequestEvent
from requests_app.services.access import access_end_errors
from requests_app.services.apply import _change_run, _roles_refresh, _Sessions
from requests_app.services.common import (
    RequestActionForbidden,
    RequestActionRefused,
    RequestInvalid,
    _event,
    _notify,
    _request_get,
)
from requests_app.services.leases import WorkLeaseLost, _work_claim
from requests_app.services.submit import (
    _expiry_errors,
    _justification_errors,
    _overlap_error,
    _request_create,
    changes_findings,
)

log = logging.getLogger(__name__)


def policy_request_extend(
    *, request_id: int, requester: User, expires_at: datetime | None, justification: str
) -> PolicyRequest:
    """Ask to keep temporary access longer: a new pending request, linked to the old
    one, with the same changes and a later expiry. Reviewers decide on it as on any
    request; until it is applied the old expiry stands."""
    justification = (justification or "").strip()
    errors = _justification_errors(justification) | _expiry_errors(expires_at)
    if expires_at is None:
        errors["expires_at"] = "Give the new expiry."
    with transaction.atomic():
        old = _request_get(request_id, lock=True)
        if old.requester_id != requester.pk:
            raise RequestActionForbidden("Only the requester asks to extend their access.")
        if (
            old.status != PolicyRequest.Status.APPLIED
            or old.expires_at is None
            or old.expires_at <= timezone.now()  # ended, the sweep not there yet
        ):
            raise RequestActionRefused(
                "Only applied temporary access can be extended, before it expires."
            )
        if expires_at is not None and expires_at <= old.expires_at:
            errors["expires_at"] = "The new expiry must be later than the current one."
        if old.kind == PolicyRequest.Kind.ACCESS and expires_at is not None:
            errors |= access_end_errors(old.account, start=timezone.now(), expires_at=expires_at)
        if errors:
            raise RequestInvalid(errors)
        waiting = (
            PolicyRequest.Status.PENDING,
            PolicyRequest.Status.APPROVED,
            PolicyRequest.Status.APPLYING,
        )
        if old.extensions.filter(status__in=waiting).exists():
            raise RequestActionRefused(
                "An extension of this request is already waiting for review or being applied."
            )
        role = old.role
        if role is None:
            raise RequestActionRefused("The role of this request is no longer in the inventory.")
        specs = [
            ChangeSpec(
                type=c.type,
                target_arn=c.target_arn,
                account_id=c.account_id,
                payload=c.payload,
                # What was there before the access was first granted, so that
                # expiry restores it rather than the granted state.
                previous=c.previous,
                automatic=c.automatic,
                note=c.note,
            )
            for c in old.changes.filter(status=Change.Status.APPLIED)
        ]
        overlap = _overlap_error(specs, temporary=True, exclude=old.pk)
        if overlap:
            raise RequestInvalid({"expires_at": overlap})
        # The same changes, judged again on the role as it is now; their error
        # findings were acknowledged when first submitted, and approving the
        # extension needs its own acknowledgement.
        return _request_create(
            requester=requester,
            role=role,
            specs=specs,
            justification=justification,
            expires_at=expires_at,
            findings=[f.as_dict() for f in changes_findings(role=role, specs=specs)],
            extends=old,
            kind=old.kind,
        )


EXPIRABLE = (PolicyRequest.Status.APPLIED, PolicyRequest.Status.FAILED)


def _status_after_expiry_failure(request_id: int) -> PolicyRequest.Status:
    """Where a request goes back to when its access could not be removed (yet)."""
    failed = Change.objects.filter(request_id=request_id, status=Change.Status.FAILED).exists()
    return PolicyRequest.Status.FAILED if failed else PolicyRequest.Status.APPLIED


def policy_request_expire(*, request_id: int) -> PolicyRequest:
    """Take temporary access away: undo the applied changes, last first (a failed
    request may have some). Claimed (-> expiring, with a lease, as an apply) so
    two sweeps never both undo; a worker that died mid-way is taken over once
    its lease expired, and reverted changes are skipped. When AWS refuses, the
    request goes back to where it was and the next sweep tries again."""
    status = PolicyRequest.objects.filter(pk=request_id).values_list("status", flat=True).first()
    claim = _work_claim(
        request_id,
        from_statuses=EXPIRABLE,
        to_status=PolicyRequest.Status.EXPIRING,
        attempts=1,
        enqueued_at=timezone.now(),
    )
    if claim is None:
        return _request_get(request_id)
    lease, previous = claim
    back = (
        PolicyRequest.Status(status)
        if status in EXPIRABLE
        else _status_after_expiry_failure(request_id)
    )
    request = _request_get(request_id)
    applied = list(request.changes.filter(status=Change.Status.APPLIED).order_by("-position"))
    sessions = _Sessions()
    error = ""
    try:
        for change in applied:
            if not lease.change_claim(change.pk, statuses=(Change.Status.APPLIED,)):
                continue
            error, _ = _change_run(change, sessions, revert=True)
            if error:
                lease.change_record(change.pk, error=f"Not removed: {error}"[:5000])
                break
            lease.change_record(change.pk, status=Change.Status.REVERTED, error="")
        with transaction.atomic():
            if error:
                lease.release(to_status=back)
                _event(request_id, RequestEvent.Kind.EXPIRY_FAILED, actor=None, message=error)
            else:
                lease.release(to_status=PolicyRequest.Status.EXPIRED)
                _event(
                    request_id,
                    RequestEvent.Kind.EXPIRED,
                    actor=None,
                    message=f"Taken over from the worker {previous}, which stopped."
                    if previous
                    else "",
                )
                _notify("expired", request_id)
    except WorkLeaseLost as exc:
        log.warning("%s; stopping", exc)
        return _request_get(request_id)
    _roles_refresh(request, applied)
    request.refresh_from_db()
    return request


def policy_requests_due_to_expire(*, now: datetime | None = None) -> list[int]:
    now = now or timezone.now()
    return list(
        PolicyRequest.objects.filter(status__in=EXPIRABLE, expires_at__lte=now).values_list(
            "pk", flat=True
        )
    )
