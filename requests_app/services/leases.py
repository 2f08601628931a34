"""Leases on background work: a worker's hold on a request's apply or expiry,
so that a worker that died is taken over and no change is made twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from iamportal import jobs
from requests_app.models import Change, PolicyRequest


class WorkLeaseLost(Exception):
    """Another worker took the request's work over (this one's lease had
    expired): this one must stop without writing anything more."""


def _lease_duration() -> timedelta:
    return timedelta(seconds=settings.IAMPORTAL_WORK_LEASE_SECONDS)


def _lapsed(now: datetime) -> Q:
    return Q(lease_expires_at__lt=now) | Q(lease_expires_at=None)


@dataclass
class _WorkLease:
    """A worker's hold on a request's apply or expiry: renewed between changes,
    and every write the worker makes is conditional on still holding it."""

    request_id: int
    owner: str
    status: PolicyRequest.Status

    def _held(self) -> Any:
        return PolicyRequest.objects.filter(
            pk=self.request_id, status=self.status, lease_owner=self.owner
        )

    def renew(self) -> None:
        now = timezone.now()
        if not self._held().update(heartbeat_at=now, lease_expires_at=now + _lease_duration()):
            raise WorkLeaseLost(f"request #{self.request_id} is no longer held by {self.owner}")

    def change_claim(self, change_id: int, *, statuses: tuple[str, ...]) -> bool:
        """Claim one change to run. Inside the renewal's row lock: only the lease
        holder claims, so two workers never run a change at once. False when the
        change is no longer in `statuses` (done by an earlier holder): skip it."""
        with transaction.atomic():
            self.renew()
            return bool(
                Change.objects.filter(pk=change_id, status__in=statuses).update(
                    claimed_by=self.owner
                )
            )

    def change_record(self, change_id: int, **fields: Any) -> None:
        """Record the outcome of a change this worker ran, unless a worker that
        took over has claimed it since (then that one records it)."""
        if not Change.objects.filter(pk=change_id, claimed_by=self.owner).update(**fields):
            raise WorkLeaseLost(f"change {change_id} is no longer held by {self.owner}")

    def release(self, *, to_status: PolicyRequest.Status, **fields: Any) -> None:
        """The final status write, only while still holding the lease."""
        released = self._held().update(
            status=to_status,
            lease_owner="",
            heartbeat_at=None,
            lease_expires_at=None,
            updated_at=timezone.now(),
            **fields,
        )
        if not released:
            raise WorkLeaseLost(f"request #{self.request_id} is no longer held by {self.owner}")


def _work_claim(
    request_id: int,
    *,
    from_statuses: tuple[PolicyRequest.Status, ...],
    to_status: PolicyRequest.Status,
    **fresh: Any,
) -> tuple[_WorkLease, str] | None:
    """Claim a request's work in one conditional UPDATE: from one of
    `from_statuses` (`fresh` fields are set too), or already in `to_status`
    under an expired lease (its worker died: this one takes over). Returns the
    lease and the worker taken over from (empty for a fresh claim); None when
    there is nothing to do or another worker holds it."""
    now = timezone.now()
    owner = jobs.worker_id()
    row = PolicyRequest.objects.filter(pk=request_id).values("status", "lease_owner").first()
    if row is None:
        return None
    lease = {
        "status": to_status,
        "lease_owner": owner,
        "heartbeat_at": now,
        "lease_expires_at": now + _lease_duration(),
        "updated_at": now,
    }
    rows = PolicyRequest.objects.filter(pk=request_id, status=row["status"])
    if row["status"] in from_statuses:
        claimed = rows.update(**lease, **fresh)
        previous = ""
    elif row["status"] == to_status:
        claimed = rows.filter(_lapsed(now), lease_owner=row["lease_owner"]).update(**lease)
        previous = row["lease_owner"] or "unknown"
    else:
        return None
    if not claimed:
        return None
    return _WorkLease(request_id=request_id, owner=owner, status=to_status), previous
