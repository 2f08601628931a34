"""Email about permission requests: who is told what, and when.

Each event on a request (submitted, approved, ...) is one row of the outbox
(`Notification`), written in the transaction of the action itself: an email is
never lost when a task is, and never describes something that was rolled back.
A task sends it after the commit with `request_notify`; the sweep hands it to
the broker again until it is sent. Each recipient gets their own message
(nobody sees who else was told), all sent over one connection.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from iamportal import jobs
from requests_app import enqueue
from requests_app.changes import change_document, change_summary
from requests_app.models import (
    Approval,
    Change,
    Comment,
    Notification,
    PolicyRequest,
    RequestEvent,
)
from requests_app.policy.diff import policy_diff
from requests_app.revision import revision_short

log = logging.getLogger(__name__)

KINDS = frozenset(
    {
        "submitted",
        "approved",
        "rejected",
        "applied",
        "failed",
        "commented",
        "edited",
        "expiring",
        "expired",
    }
)
REMINDER_AHEAD = timedelta(hours=24)
TEMPLATE_DIR = "requests_app/email"


def site_url() -> str:
    """The address people reach iamportal at, without a trailing slash.

    SITE_URL when set. Otherwise, while DEBUG is on, the development server
    (`make demo` and `runserver` listen on 127.0.0.1:8000); in production the
    first host name in ALLOWED_HOSTS over HTTPS.
    """
    configured = settings.SITE_URL.rstrip("/")
    if configured:
        return configured
    hosts = [h for h in settings.ALLOWED_HOSTS if h and h != "*" and not h.startswith(".")]
    if settings.DEBUG or not hosts:
        return "http://127.0.0.1:8000"
    return f"https://{hosts[0]}"


def request_url(request_id: int) -> str:
    return site_url() + reverse("request_detail", args=[request_id])


def role_url(request: PolicyRequest) -> str:
    """The role's page: where an access request's grant is used from."""
    account_id, _, name = request.role_arn.partition(":role/")
    return site_url() + reverse(
        "role_detail", args=[account_id.rsplit(":", 1)[-1], name.rsplit("/", 1)[-1]]
    )


def reviewers() -> QuerySet[User]:
    """Everyone who may review, as `iamportal.permissions.is_reviewer` decides,
    with an address to write to: active superusers and members of the reviewer
    or admin groups, in one query."""
    groups = [*settings.IAMPORTAL_REVIEWER_GROUPS, *settings.IAMPORTAL_ADMIN_GROUPS]
    in_groups = User.groups.through.objects.filter(group__name__in=groups).values("user_id")
    return (
        User.objects.filter(is_active=True)
        .exclude(email="")
        .filter(Q(is_superuser=True) | Q(pk__in=in_groups))
        .order_by("pk")
    )


@dataclass
class _Email:
    """What one event says, to whom. `extra` goes into the templates."""

    requester_told: bool
    others: list[User]
    extra: dict[str, Any]


# What a request about the role itself asks for, in "alice asks ... payments-api".
_LIFECYCLE_ASKS: dict[str, str] = {
    Change.Type.ROLE_CREATE: "to create the role",
    Change.Type.ROLE_DELETE: "to delete the role",
    Change.Type.ROLE_UPDATE: "to change the description or session duration of",
}


def _asks_for(request: PolicyRequest) -> str:
    for kind in request.changes.values_list("type", flat=True):
        if kind in _LIFECYCLE_ASKS:
            return _LIFECYCLE_ASKS[kind]
    return "for new permissions on"


def request_notify(
    *, request_id: int, kind: str, actor_id: int | None = None, comment_id: int | None = None
) -> int:
    """Send the emails for one event on a request; returns how many were sent."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if kind == "commented" and comment_id is None:
        raise ValueError("a comment notification needs the comment_id")
    if not settings.IAMPORTAL_NOTIFICATIONS:
        return 0
    request = (
        PolicyRequest.objects.select_related("requester", "account", "role")
        .filter(pk=request_id)
        .first()
    )
    if request is None:
        return 0
    actor = User.objects.filter(pk=actor_id).first() if actor_id is not None else None
    email = _recipients_and_details(request, kind, actor=actor, comment_id=comment_id)
    if email is None:
        return 0
    people = [request.requester] if email.requester_told else []
    people += [u for u in email.others if u.pk != request.requester_id]
    context = {
        "policy_request": request,
        "role_name": request.role.name if request.role else request.role_arn.rsplit("/", 1)[-1],
        "asks_for": _asks_for(request),
        "url": request_url(request.pk),
        "role_url": role_url(request),
        "actor": actor,
        **email.extra,
    }
    messages = _messages(kind, context, people, request=request)
    sent = _send(messages)
    log.info("sent %d of %d %s emails for request #%s", sent, len(messages), kind, request.pk)
    return sent


def notification_queue(
    *, kind: str, request_id: int, actor_id: int | None = None, comment_id: int | None = None
) -> Notification | None:
    """Put one email event in the outbox, in the caller's transaction, and hand
    it to a worker once that commits. None when notifications are switched off
    (turning them on later must not send a backlog of old news)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if not settings.IAMPORTAL_NOTIFICATIONS:
        return None
    notification = Notification.objects.create(
        request_id=request_id,
        kind=kind,
        actor_id=actor_id,
        comment_id=comment_id,
        attempts=1,
        enqueued_at=timezone.now(),
    )
    transaction.on_commit(lambda: enqueue.notification_send(notification.pk))
    return notification


def _send_backoff(attempts: int) -> timedelta:
    """How long a failed email waits before the sweep tries again: doubling, so
    that the attempts span a mail server outage of a while rather than a minute."""
    return timedelta(seconds=settings.IAMPORTAL_WORK_REQUEUE_SECONDS * 2 ** max(attempts - 1, 0))


def notification_send(*, notification_id: int) -> int:
    """Send one email event of the outbox; returns how many emails went out.

    The row is claimed first (a lease, as for an apply): a second delivery of the
    task, or one for an email already sent, does nothing. A failure is recorded
    on the row and raised; the sweep hands it over again after a back-off, until
    IAMPORTAL_NOTIFICATION_MAX_ATTEMPTS."""
    now = timezone.now()
    owner = jobs.worker_id()
    lapsed = Q(lease_expires_at=None) | Q(lease_expires_at__lt=now)
    claimed = Notification.objects.filter(
        lapsed, pk=notification_id, status=Notification.Status.PENDING
    ).update(
        lease_owner=owner,
        heartbeat_at=now,
        lease_expires_at=now + timedelta(seconds=settings.IAMPORTAL_WORK_LEASE_SECONDS),
    )
    if not claimed:
        return 0
    notification = Notification.objects.get(pk=notification_id)
    try:
        sent = request_notify(
            request_id=notification.request_id,
            kind=notification.kind,
            actor_id=notification.actor_id,
            comment_id=notification.comment_id,
        )
    except Exception as exc:
        Notification.objects.filter(
            pk=notification_id, status=Notification.Status.PENDING, lease_owner=owner
        ).update(
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            lease_owner="",
            lease_expires_at=timezone.now() + _send_backoff(notification.attempts),
        )
        raise
    # Sent, whoever holds the row now: recording it keeps anyone from sending it again.
    Notification.objects.filter(pk=notification_id, status=Notification.Status.PENDING).update(
        status=Notification.Status.SENT,
        sent_at=timezone.now(),
        emails_sent=sent,
        last_error="",
        lease_owner="",
        lease_expires_at=None,
    )
    return sent


def expiry_reminders_send(*, now: datetime | None = None) -> int:
    """Remind requesters 24 h before their temporary access expires, once per
    request: the reminder goes into the outbox with the claim that it was made.
    Returns how many were queued."""
    if not settings.IAMPORTAL_NOTIFICATIONS:
        return 0
    now = now or timezone.now()
    queued = 0
    for request_id in _reminders_due(now):
        with transaction.atomic():
            # Claimed: of two workers running the sweep, one reminds.
            claimed = PolicyRequest.objects.filter(
                pk=request_id,
                status=PolicyRequest.Status.APPLIED,
                expiry_reminded_at__isnull=True,
            ).update(expiry_reminded_at=now)
            if not claimed:
                continue
            notification_queue(kind="expiring", request_id=request_id)
        queued += 1
    return queued


def _reminders_due(now: datetime) -> list[int]:
    due = PolicyRequest.objects.filter(
        status=PolicyRequest.Status.APPLIED,
        expires_at__gt=now,
        expires_at__lte=now + REMINDER_AHEAD,
        expiry_reminded_at__isnull=True,
    )
    return list(due.order_by("expires_at", "pk").values_list("pk", flat=True))


# --- who is told what -----------------------------------------------------------------


def _recipients_and_details(
    request: PolicyRequest, kind: str, *, actor: User | None, comment_id: int | None
) -> _Email | None:
    if kind == "submitted":
        everyone = reviewers().exclude(pk=request.requester_id)
        if actor is not None:
            everyone = everyone.exclude(pk=actor.pk)
        return _Email(requester_told=False, others=_who_may_approve(request, everyone), extra={})
    if kind == "approved":
        return _Email(requester_told=True, others=[], extra=_approvals(request, actor))
    if kind == "rejected":
        event = _latest_event(request, RequestEvent.Kind.REJECTED)
        extra: dict[str, Any] = {"reason": event.message if event else ""}
        if actor is None and event is not None:
            extra["actor"] = event.actor
        return _Email(requester_told=True, others=[], extra=extra)
    if kind == "failed":
        # A worker that stopped mid-apply is recovered, not failed, by the sweep.
        event = _latest_event(request, RequestEvent.Kind.FAILED, RequestEvent.Kind.RECOVERED)
        error = event.message if event else ""
        if not error:
            failed = request.changes.exclude(error="").values_list("error", flat=True).first()
            error = failed or ""
        approvers = reviewers().filter(pk__in=_approver_ids(request))
        return _Email(requester_told=True, others=list(approvers), extra={"error": error})
    if kind == "commented" and comment_id is not None:
        comment = (
            Comment.objects.select_related("author")
            .filter(pk=comment_id, request_id=request.pk)
            .first()
        )
        if comment is None:
            return None
        extra = {"comment": comment, "actor": comment.author}
        if comment.author_id != request.requester_id:
            return _Email(requester_told=True, others=[], extra=extra)
        involved = reviewers().filter(pk__in=_involved_ids(request))
        audience = involved if involved.exists() else reviewers()
        others = list(audience.exclude(pk=comment.author_id))
        return _Email(requester_told=False, others=others, extra=extra)
    if kind == "edited":
        # The approvals are gone by now; the timeline still names who gave them.
        involved = reviewers().filter(pk__in=_involved_ids(request))
        if actor is not None:
            involved = involved.exclude(pk=actor.pk)
        event = _latest_event(request, RequestEvent.Kind.EDITED)
        extra = {
            "approvals_withdrawn": event.data.get("approvals_withdrawn", 0) if event else 0,
            "revision": revision_short(request.revision),
            "changes": _changes_with_diff(request),
        }
        return _Email(requester_told=False, others=list(involved), extra=extra)
    # applied, expiring, expired: only the requester, about their own access.
    return _Email(requester_told=True, others=[], extra={})


def _who_may_approve(request: PolicyRequest, everyone: QuerySet[User]) -> list[User]:
    """The reviewers the request's approval policy lets approve it: members of the
    groups it names, or every reviewer when it names none. When nobody in those
    groups can be written to, every reviewer is told, so that the request is not
    left waiting unseen."""
    groups = (request.approval_requirement or {}).get("reviewer_groups") or []
    if groups:
        members = User.groups.through.objects.filter(group__name__in=groups).values("user_id")
        allowed = list(everyone.filter(pk__in=members))
        if allowed:
            return allowed
    return list(everyone)


def _changes_with_diff(request: PolicyRequest) -> list[dict[str, Any]]:
    """Each change as the review page shows it: its summary and, for a document,
    the diff."""
    shown = []
    for change in request.changes.all():
        documents = change_document(change)
        payload = change.payload if isinstance(change.payload, dict) else {}
        name = str(payload.get("policy_name", "")) or change.target_arn.rsplit("/", 1)[-1]
        shown.append(
            {
                "summary": change_summary(change),
                "automatic": change.automatic,
                "diff": policy_diff(*documents, name=name) if documents is not None else [],
            }
        )
    return shown


def _latest_event(request: PolicyRequest, *kinds: RequestEvent.Kind) -> RequestEvent | None:
    return (
        RequestEvent.objects.select_related("actor")
        .filter(request=request, kind__in=kinds)
        .order_by("-created_at", "-pk")
        .first()
    )


def _approvals(request: PolicyRequest, actor: User | None) -> dict[str, Any]:
    """How far along the approvals are as of `actor`'s approval: "rita (1 of 2)"."""
    approvals = list(Approval.objects.filter(request=request).select_related("reviewer"))
    required = max(request.approvals_required, 1)
    position = next(
        (i + 1 for i, a in enumerate(approvals) if actor and a.reviewer_id == actor.pk),
        len(approvals),
    )
    if actor is None and approvals:
        actor = approvals[position - 1].reviewer
    automatic = next((a.policy_name for a in approvals if a.automatic), "")
    # Approvals recorded only as events count as one complete approval.
    complete = not approvals or position >= required
    return {
        "actor": actor,
        "approvals_count": position,
        "approvals_required": required,
        "approvals_missing": max(required - position, 0),
        "fully_approved": complete,
        "automatic_policy": automatic,
    }


def _approver_ids(request: PolicyRequest) -> set[int]:
    approvals = Approval.objects.filter(request=request, reviewer__isnull=False)
    ids = set(approvals.values_list("reviewer_id", flat=True))
    ids |= _event_actor_ids(request, [RequestEvent.Kind.APPROVED])
    return ids


def _involved_ids(request: PolicyRequest) -> set[int]:
    """Reviewers who already took part: approved, rejected or commented."""
    ids = _approver_ids(request)
    ids |= set(Comment.objects.filter(request=request).values_list("author_id", flat=True))
    ids |= _event_actor_ids(request, [RequestEvent.Kind.REJECTED])
    ids.discard(request.requester_id)
    return ids


def _event_actor_ids(request: PolicyRequest, kinds: Iterable[str]) -> set[int]:
    found = RequestEvent.objects.filter(request=request, kind__in=list(kinds), actor__isnull=False)
    return {pk for pk in found.values_list("actor_id", flat=True) if pk is not None}


# --- rendering and sending ------------------------------------------------------------


def _deliverable(user: User) -> bool:
    if not user.is_active or not user.email:
        return False
    try:
        validate_email(user.email)
    except ValidationError:
        log.warning("user %s has an unusable email address; not notified", user.pk)
        return False
    return True


def _messages(
    kind: str, context: dict[str, Any], people: list[User], *, request: PolicyRequest
) -> list[tuple[int, EmailMultiAlternatives]]:
    """One message per person (user id, message), each addressed to them alone."""
    headers = {
        # Out-of-office replies stay away from an address nobody reads.
        "Auto-Submitted": "auto-generated",
        # Mail clients thread every email about one request together.
        "References": f"<request-{request.pk}@{urlsplit(site_url()).hostname or 'iamportal'}>",
    }
    rendered: dict[bool, tuple[str, str, str]] = {}
    messages: list[tuple[int, EmailMultiAlternatives]] = []
    seen: set[int] = set()
    for person in people:
        if person.pk in seen or not _deliverable(person):
            continue
        seen.add(person.pk)
        is_requester = person.pk == request.requester_id
        if is_requester not in rendered:
            rendered[is_requester] = _render(kind, {**context, "is_requester": is_requester})
        subject, text, html = rendered[is_requester]
        message = EmailMultiAlternatives(subject, text, to=[person.email], headers=headers)
        message.attach_alternative(html, "text/html")
        messages.append((person.pk, message))
    return messages


def _render(kind: str, context: dict[str, Any]) -> tuple[str, str, str]:
    subject = render_to_string(f"{TEMPLATE_DIR}/{kind}_subject.txt", context)
    text = render_to_string(f"{TEMPLATE_DIR}/{kind}.txt", context)
    html = render_to_string(f"{TEMPLATE_DIR}/{kind}.html", context)
    # Template tags leave blank lines behind; plain text reads better without runs of them.
    body = re.sub(r"\n\s*\n(\s*\n)+", "\n\n", str(text)).strip() + "\n"
    return " ".join(subject.split()), body, str(html)


def _send(messages: list[tuple[int, EmailMultiAlternatives]]) -> int:
    """Send over one connection. A recipient the mail server refuses is logged and
    skipped, so one bad address never stops the others; any other failure (server
    down, authentication) propagates for the task to record."""
    if not messages:
        return 0
    sent = 0
    with get_connection() as connection:
        for user_id, message in messages:
            message.connection = connection
            try:
                sent += connection.send_messages([message]) or 0
            except smtplib.SMTPRecipientsRefused as exc:
                replies = [f"{code} {reply!r}" for code, reply in exc.recipients.values()]
                log.warning("the mail server refused user %s's address: %s", user_id, replies)
    return sent
