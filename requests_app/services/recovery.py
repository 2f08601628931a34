"""The sweep: work whose task was lost, or whose worker died, is handed to the
broker again, or given up on after too many attempts."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from iamportal import jobs
from requests_app import enqueue
from requests_app.models import Change, Notification, PolicyRequest, RequestEvent
from requests_app.services.common import _event, _notify
from requests_app.services.expiry import _status_after_expiry_failure
from requests_app.services.leases import _lapsed, _lease_duration

log = logging.getLogger(__name__)


def requests_work_recover() -> dict[str, int]:
    """The sweep (every minute): hand work no worker is doing to the broker again.

    - applying or expiring under an expired lease: its worker died, so its task
      is gone: re-enqueued at once, once per expiry (the task takes it over);
    - approved (or re-enqueued and still not picked up) for longer than
      IAMPORTAL_WORK_REQUEUE_SECONDS while the broker holds nothing else (with a
      backlog, its task may simply be waiting its turn);
    - after IAMPORTAL_APPLY_MAX_ATTEMPTS hand-overs, it gives up: an apply fails
      (a reviewer can Retry), an expiry goes back for the next expiry sweep;
    - emails of the outbox likewise, up to IAMPORTAL_NOTIFICATION_MAX_ATTEMPTS.
    """
    now = timezone.now()
    backlog = jobs.broker_backlog()
    outcome = {"requeued": 0, "failed": 0, "returned": 0, "emails_requeued": 0, "emails_failed": 0}
    due = _work_due(now=now, backlog=backlog)
    for pk in PolicyRequest.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:1000]:
        result = _request_work_recover(request_id=pk, due=due, now=now)
        if result:
            outcome[result] += 1
    due = _emails_due(now=now, backlog=backlog)
    for pk in Notification.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:1000]:
        result = _notification_recover(notification_id=pk, due=due, now=now)
        if result:
            outcome[result] += 1
    return outcome


def _requeue_due(*, now: datetime, backlog: int | None, waiting: Q, running: Q, since: str) -> Q:
    """Rows whose task must be handed over again: `running` ones whose lease
    expired since their last hand-over (at once), and, while the broker has no
    backlog, `waiting` or lapsed ones handed over longer ago than the requeue
    delay (rows from before hand-overs were recorded: `since` stands in)."""
    requeue = now - timedelta(seconds=settings.IAMPORTAL_WORK_REQUEUE_SECONDS)
    lapsed = running & (
        Q(lease_expires_at__lt=now)
        # Claimed before leases existed: judged by the last change of the row.
        | Q(lease_expires_at=None, **{f"{since}__lt": now - _lease_duration()})
    )
    never_requeued = Q(enqueued_at=None) | Q(enqueued_at__lt=F("lease_expires_at"))
    due = lapsed & never_requeued
    if backlog == 0:
        stale = Q(enqueued_at__lt=requeue) | Q(enqueued_at=None, **{f"{since}__lt": requeue})
        due |= (waiting | lapsed) & stale
    return due


def _work_due(*, now: datetime, backlog: int | None) -> Q:
    return _requeue_due(
        now=now,
        backlog=backlog,
        waiting=Q(status=PolicyRequest.Status.APPROVED) & _lapsed(now),
        running=Q(status__in=[PolicyRequest.Status.APPLYING, PolicyRequest.Status.EXPIRING]),
        since="updated_at",
    )


def _emails_due(*, now: datetime, backlog: int | None) -> Q:
    pending = Q(status=Notification.Status.PENDING)
    return _requeue_due(
        now=now,
        backlog=backlog,
        waiting=pending & Q(lease_expires_at=None),
        running=pending & Q(lease_expires_at__isnull=False),
        since="created_at",
    )


def _request_work_recover(*, request_id: int, due: Q, now: datetime) -> str | None:
    with transaction.atomic():
        # skip_locked: a request being claimed or written right now is not lost.
        request = (
            PolicyRequest.objects.select_for_update(skip_locked=True)
            .filter(due, pk=request_id)
            .only("pk", "status", "attempts", "lease_owner")
            .first()
        )
        if request is None:
            return None
        expiring = request.status == PolicyRequest.Status.EXPIRING
        if request.attempts >= settings.IAMPORTAL_APPLY_MAX_ATTEMPTS:
            if expiring:
                _expiry_give_up(request, now=now)
                return "returned"
            _apply_give_up(request, now=now)
            return "failed"
        PolicyRequest.objects.filter(pk=request_id).update(
            attempts=F("attempts") + 1, enqueued_at=now
        )
        hand_over = enqueue.policy_request_expire if expiring else enqueue.policy_request_apply
        transaction.on_commit(lambda: hand_over(request_id))
    log.info(
        "request #%s handed to the broker again (attempt %s)", request_id, request.attempts + 1
    )
    return "requeued"


def _give_up_cause(request: PolicyRequest, doing: str) -> str:
    if request.status == PolicyRequest.Status.APPROVED:
        return (
            f"no worker started it within {settings.IAMPORTAL_WORK_REQUEUE_SECONDS} s "
            "(is a qcluster running?)"
        )
    return f"the worker {doing} ({request.lease_owner or 'unknown'}) stopped without finishing"


def _apply_give_up(request: PolicyRequest, *, now: datetime) -> None:
    """Fail an apply no worker could finish, for a reviewer to retry."""
    cause = _give_up_cause(request, "applying it")
    message = (
        f"Gave up after {request.attempts} attempts: {cause}. Changes not marked as applied "
        "can be applied again with Retry; applying a change twice is harmless."
    )
    PolicyRequest.objects.filter(pk=request.pk, status=request.status).update(
        status=PolicyRequest.Status.FAILED,
        lease_owner="",
        heartbeat_at=None,
        lease_expires_at=None,
        updated_at=now,
    )
    Change.objects.filter(request_id=request.pk, status=Change.Status.PENDING).update(
        status=Change.Status.FAILED, error="Not applied: the worker stopped."
    )
    _event(
        request.pk,
        RequestEvent.Kind.FAILED,
        actor=None,
        message=message,
        data={"attempts": request.attempts, "worker": request.lease_owner},
    )
    _notify("failed", request.pk)
    log.warning("request #%s: %s", request.pk, message)


def _expiry_give_up(request: PolicyRequest, *, now: datetime) -> None:
    """Send an expiry no worker could finish back, for the next expiry sweep."""
    cause = _give_up_cause(request, "removing this access")
    message = f"Gave up after {request.attempts} attempts: {cause}; the next sweep tries again."
    PolicyRequest.objects.filter(pk=request.pk, status=request.status).update(
        status=_status_after_expiry_failure(request.pk),
        lease_owner="",
        heartbeat_at=None,
        lease_expires_at=None,
        attempts=0,
        updated_at=now,
    )
    _event(request.pk, RequestEvent.Kind.RECOVERED, actor=None, message=message)
    log.warning("request #%s: %s", request.pk, message)


def _notification_recover(*, notification_id: int, due: Q, now: datetime) -> str | None:
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(due, pk=notification_id)
            .only("pk", "attempts", "last_error", "lease_owner", "lease_expires_at")
            .first()
        )
        if notification is None:
            return None
        if notification.attempts >= settings.IAMPORTAL_NOTIFICATION_MAX_ATTEMPTS:
            cause = notification.last_error or "no worker sent it"
            Notification.objects.filter(pk=notification_id).update(
                status=Notification.Status.FAILED,
                last_error=f"Gave up after {notification.attempts} attempts: {cause}"[:2000],
                lease_owner="",
                lease_expires_at=None,
            )
            log.warning(
                "email %s: gave up after %s attempts", notification_id, notification.attempts
            )
            return "emails_failed"
        Notification.objects.filter(pk=notification_id).update(
            attempts=F("attempts") + 1, enqueued_at=now
        )
        transaction.on_commit(lambda: enqueue.notification_send(notification_id))
    return "emails_requeued"
