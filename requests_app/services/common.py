"""What the request services share: their errors, the statuses that hold
changes, loading and claiming a request, its timeline and its emails."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from requests_app import enqueue, notifications
from requests_app.models import PolicyRequest, RequestEvent
from requests_app.revision import revision_of_request

REASON_MAX_LENGTH = 5000


# Requests whose changes may still reach AWS.
OPEN_STATUSES = (
    PolicyRequest.Status.PENDING,
    PolicyRequest.Status.APPROVED,
    PolicyRequest.Status.APPLYING,
    PolicyRequest.Status.FAILED,
)


class RequestInvalid(ValueError):
    """Bad input for a request: `errors` maps a field to its user-facing message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class RequestActionRefused(Exception):
    """An action on a request that its rules do not allow; nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestActionForbidden(RequestActionRefused):
    """Refused because of who asks, whatever state the request is in (the API's
    403; the other refusals are about the request's state, its 409)."""


def _revision_refresh(request_id: int) -> str:
    """Store the revision recomputed from the request's rows; returns it. Every
    service that changes a request's changes or expiry calls it."""
    revision = revision_of_request(request_id)
    PolicyRequest.objects.filter(pk=request_id).exclude(revision=revision).update(revision=revision)
    return revision


def _request_get(request_id: int, *, lock: bool = False) -> PolicyRequest:
    rows = PolicyRequest.objects.filter(pk=request_id)
    if lock:
        rows = rows.select_for_update(of=("self",))
    found = rows.select_related("account", "role").first()
    if found is None:
        raise RequestActionRefused(f"Request #{request_id} does not exist.")
    return found


def _status_claim(
    request_id: int, *, from_status: PolicyRequest.Status, to_status: PolicyRequest.Status
) -> bool:
    """Move the request from one status to another in one conditional UPDATE:
    of two callers racing, exactly one gets True."""
    claimed = PolicyRequest.objects.filter(pk=request_id, status=from_status).update(
        status=to_status, updated_at=timezone.now()
    )
    return claimed == 1


def _refuse_unless_claimed(
    request_id: int,
    *,
    from_status: PolicyRequest.Status,
    to_status: PolicyRequest.Status,
    verb: str,
) -> None:
    if not _status_claim(request_id, from_status=from_status, to_status=to_status):
        current = PolicyRequest.objects.filter(pk=request_id).values_list("status", flat=True)
        raise RequestActionRefused(
            f"Request #{request_id} is {current.first() or 'gone'}: only {from_status} "
            f"requests can be {verb}."
        )


def _event(
    request_id: int,
    kind: RequestEvent.Kind,
    *,
    actor: User | None,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> RequestEvent:
    return RequestEvent.objects.create(
        request_id=request_id, actor=actor, kind=kind, message=message, data=data or {}
    )


def _notify(
    kind: str, request_id: int, *, actor: User | None = None, comment_id: int | None = None
) -> None:
    """Email the people concerned: recorded in the outbox with the action (in
    the caller's transaction) and sent by a worker once that commits."""
    notifications.notification_queue(
        kind=kind,
        request_id=request_id,
        actor_id=actor.pk if actor is not None else None,
        comment_id=comment_id,
    )


def _apply_enqueue(request_id: int) -> None:
    """Hand the apply to the broker once the caller's transaction commits; the
    sweep hands it over again if no worker picks it up."""
    PolicyRequest.objects.filter(pk=request_id).update(enqueued_at=timezone.now(), attempts=1)
    transaction.on_commit(lambda: enqueue.policy_request_apply(request_id))
