"""Applies and expiries whose task was lost or whose worker died: the sweep hands
them to the broker again, a task takes a lapsed lease over, and nothing is ever
applied twice nor written by a worker that was taken over."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import TestCase
from django.utils import timezone
from django_q.brokers import get_broker

from accounts.models import IamRole
from iamportal import aws
from requests_app import enqueue, services, tasks
from requests_app.models import Change, Notification, PolicyRequest
from tests.factories import (
    OTHER_DOCUMENT,
    READ_INVOICES,
    admin_iam,
    approve,
    inline_names,
    kinds,
    policy_in_aws,
    submitted,
)

pytestmark = pytest.mark.django_db

DEAD_WORKER = "worker-1:4242:0badcafe"
LIVE_WORKER = "worker-2:4343:c0ffee00"


def sweep() -> dict[str, int]:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return tasks.requests_work_sweep_task()


def nothing(**extra: int) -> dict[str, int]:
    counts = {"requeued": 0, "failed": 0, "returned": 0, "emails_requeued": 0, "emails_failed": 0}
    return counts | extra


def lose_apply_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker loses every apply task (a Redis broker popped it, then the worker died)."""
    monkeypatch.setattr(enqueue, "policy_request_apply", lambda request_id: None)


def puts_counted(role: IamRole) -> list[str]:
    """The names of the inline policies iamportal writes to `role`'s account from now on."""
    written: list[str] = []

    def count(params: dict[str, Any], **kwargs: Any) -> None:
        written.append(params["PolicyName"])

    aws.on_session_call(
        aws.spoke_session(role.account), "provide-client-params.iam.PutRolePolicy", count
    )
    return written


def approved_but_lost(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> PolicyRequest:
    with monkeypatch.context() as patched:
        lose_apply_tasks(patched)
        request = approve(submitted(requester, role), reviewer)
    assert request.status == PolicyRequest.Status.APPROVED
    return request


def two_policies(requester: User, reviewer: User, role: IamRole, mp: Any) -> PolicyRequest:
    """An approved request of two inline policies, its apply task lost."""
    request = services.policy_request_changes_submit(
        requester=requester,
        role=role,
        changes=[
            {"type": "inline_policy_put", "payload": {"policy_name": name, "document": doc}}
            for name, doc in (("invoices-read", READ_INVOICES), ("queue-send", OTHER_DOCUMENT))
        ],
        justification="Invoices and the export queue.",
    )
    assert isinstance(request, PolicyRequest)
    with mp.context() as patched:
        lose_apply_tasks(patched)
        request = approve(request, reviewer)
    return request


def held_by(request: PolicyRequest, owner: str, *, expired: bool, **fields: Any) -> None:
    """A worker claimed the request (applying unless told) and holds, or held, the lease."""
    now = timezone.now()
    PolicyRequest.objects.filter(pk=request.pk).update(
        **{
            "status": PolicyRequest.Status.APPLYING,
            "enqueued_at": now - timedelta(minutes=11),
            "lease_owner": owner,
            "heartbeat_at": now - timedelta(minutes=6),
            "lease_expires_at": now + (timedelta(seconds=-1) if expired else timedelta(minutes=4)),
            **fields,
        }
    )


def long_ago(request: PolicyRequest) -> None:
    PolicyRequest.objects.filter(pk=request.pk).update(
        enqueued_at=timezone.now() - timedelta(minutes=10)
    )


# --- a lost apply task ------------------------------------------------------------------


def test_a_lost_apply_task_is_re_enqueued_by_the_sweep_and_applied_once(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = approved_but_lost(requester, reviewer, role, monkeypatch)
    written = puts_counted(role)
    assert sweep() == nothing()  # not lost yet: just handed over
    long_ago(request)

    assert sweep() == nothing(requeued=1)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert request.attempts == 2
    assert request.lease_owner == ""
    assert written == ["invoices-read"]
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    long_ago(request)
    assert sweep() == nothing()
    assert written == ["invoices-read"]
    assert kinds(request).count("applied") == 1
    assert [m.subject for m in mail.outbox if "applied" in m.subject]


def test_the_sweep_waits_while_the_broker_has_a_backlog(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = approved_but_lost(requester, reviewer, role, monkeypatch)
    long_ago(request)
    get_broker().enqueue("another task waiting for a worker")

    assert sweep() == nothing()
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPROVED


def test_a_redelivered_task_leaves_a_request_with_a_live_lease_alone(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = approved_but_lost(requester, reviewer, role, monkeypatch)
    held_by(request, LIVE_WORKER, expired=False)
    written = puts_counted(role)

    tasks.policy_request_apply_task(request.pk)
    assert sweep() == nothing()  # the worker is alive

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLYING
    assert request.lease_owner == LIVE_WORKER
    assert written == []
    assert request.changes.get().status == Change.Status.PENDING


def test_a_take_over_after_the_lease_expired_skips_the_changes_already_applied(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = two_policies(requester, reviewer, role, monkeypatch)
    first = request.changes.order_by("position").first()
    assert first is not None
    # The dead worker applied the first change; someone has changed that policy since.
    Change.objects.filter(pk=first.pk).update(
        status=Change.Status.APPLIED, claimed_by=DEAD_WORKER, applied_at=timezone.now()
    )
    admin_iam(role.account.account_id).put_role_policy(
        RoleName=role.name, PolicyName="invoices-read", PolicyDocument=json.dumps(OTHER_DOCUMENT)
    )
    held_by(request, DEAD_WORKER, expired=True)
    written = puts_counted(role)
    # At once, even with other tasks waiting: this one's task died with its worker.
    get_broker().enqueue("another task waiting for a worker")

    assert sweep() == nothing(requeued=1)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert written == ["queue-send"]
    assert policy_in_aws(role, "invoices-read") == OTHER_DOCUMENT
    assert policy_in_aws(role, "queue-send") == OTHER_DOCUMENT
    assert set(request.changes.values_list("status", flat=True)) == {"applied"}
    recovered = request.events.get(kind="recovered")
    assert DEAD_WORKER in recovered.message
    assert kinds(request)[-2:] == ["recovered", "applied"]
    assert sweep() == nothing()  # once per expiry


def test_a_change_whose_write_reached_aws_before_its_worker_died_is_not_written_again(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = two_policies(requester, reviewer, role, monkeypatch)
    first = request.changes.order_by("position").first()
    assert first is not None
    # The dead worker had claimed the first change and its write reached AWS,
    # but it died before recording the change as applied.
    Change.objects.filter(pk=first.pk).update(claimed_by=DEAD_WORKER)
    admin_iam(role.account.account_id).put_role_policy(
        RoleName=role.name, PolicyName="invoices-read", PolicyDocument=json.dumps(READ_INVOICES)
    )
    held_by(request, DEAD_WORKER, expired=True)
    written = puts_counted(role)

    assert sweep() == nothing(requeued=1)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert written == ["queue-send"]
    assert set(request.changes.values_list("status", flat=True)) == {"applied"}


def test_a_worker_whose_lease_was_taken_over_stops_without_writing(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker stalls in its first AWS call past its lease and another takes
    the request over; once it wakes up it records the change it made, then
    stops: no second change, no status, no event, no email."""
    request = two_policies(requester, reviewer, role, monkeypatch)
    written = puts_counted(role)

    def stalled(params: dict[str, Any], **kwargs: Any) -> None:
        if len(written) == 1:
            held = PolicyRequest.objects.filter(pk=request.pk)
            held.update(lease_owner=LIVE_WORKER, lease_expires_at=timezone.now())

    aws.on_session_call(
        aws.spoke_session(role.account), "provide-client-params.iam.PutRolePolicy", stalled
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_apply(request_id=request.pk)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLYING
    assert request.lease_owner == LIVE_WORKER
    assert written == ["invoices-read"]
    assert list(request.changes.order_by("position").values_list("status", flat=True)) == [
        "applied",
        "pending",
    ]
    assert "applied" not in kinds(request)
    assert "failed" not in kinds(request)
    assert not request.notifications.filter(kind__in=["applied", "failed"]).exists()


def test_a_worker_taken_over_mid_change_leaves_the_outcome_to_the_new_holder(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = two_policies(requester, reviewer, role, monkeypatch)
    written = puts_counted(role)

    def taken_over(params: dict[str, Any], **kwargs: Any) -> None:
        if len(written) == 1:
            PolicyRequest.objects.filter(pk=request.pk).update(lease_owner=LIVE_WORKER)
            Change.objects.filter(request=request).update(claimed_by=LIVE_WORKER)

    aws.on_session_call(
        aws.spoke_session(role.account), "provide-client-params.iam.PutRolePolicy", taken_over
    )
    services.policy_request_apply(request_id=request.pk)

    assert set(request.changes.values_list("status", flat=True)) == {"pending"}
    assert written == ["invoices-read"]


def test_approvals_of_another_revision_still_block_the_apply_after_a_take_over(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = approved_but_lost(requester, reviewer, role, monkeypatch)
    held_by(request, DEAD_WORKER, expired=True)
    # The content changed behind the approval's back (not by an edit, which withdraws it).
    change = request.changes.get()
    Change.objects.filter(pk=change.pk).update(
        payload={**change.payload, "document": OTHER_DOCUMENT}
    )
    written = puts_counted(role)

    assert sweep() == nothing(requeued=1)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert request.lease_owner == ""
    assert written == []
    assert not request.approvals.exists()
    assert kinds(request)[-1] == "withdrawn"


# --- giving up ----------------------------------------------------------------------------


def test_the_sweep_gives_up_after_the_attempt_limit_and_a_reviewer_can_retry(
    requester: User,
    reviewer: User,
    role: IamRole,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.IAMPORTAL_APPLY_MAX_ATTEMPTS = 3
    with monkeypatch.context() as patched:
        lose_apply_tasks(patched)
        request = approve(submitted(requester, role), reviewer)
        for attempt in (2, 3):
            long_ago(request)
            assert sweep() == nothing(requeued=1)
            request.refresh_from_db()
            assert (request.status, request.attempts) == (PolicyRequest.Status.APPROVED, attempt)
        long_ago(request)
        mail.outbox.clear()

        assert sweep() == nothing(failed=1)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.FAILED
    failed = request.events.get(kind="failed")
    assert failed.message.startswith("Gave up after 3 attempts: no worker started it within")
    assert request.changes.get().status == Change.Status.FAILED
    assert request.notifications.get(kind="failed").status == Notification.Status.SENT
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "rita@example.com"]
    assert all("Gave up after 3 attempts" in m.body for m in mail.outbox)
    # A late task finds nothing to do; a reviewer's retry applies it.
    tasks.policy_request_apply_task(request.pk)
    assert PolicyRequest.objects.get(pk=request.pk).status == PolicyRequest.Status.FAILED
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_retry(request_id=request.pk, reviewer=reviewer)
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES


def test_the_sweep_gives_up_on_a_request_whose_workers_keep_dying(
    requester: User,
    reviewer: User,
    role: IamRole,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.IAMPORTAL_APPLY_MAX_ATTEMPTS = 3
    request = approved_but_lost(requester, reviewer, role, monkeypatch)
    held_by(request, DEAD_WORKER, expired=True, attempts=3)

    assert sweep() == nothing(failed=1)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.FAILED
    assert request.lease_owner == ""
    message = request.events.get(kind="failed").message
    assert f"the worker applying it ({DEAD_WORKER}) stopped without finishing" in message
    assert request.notifications.filter(kind="failed").exists()


# --- expiry -------------------------------------------------------------------------------


def temporary_applied(requester: User, reviewer: User, role: IamRole) -> PolicyRequest:
    preview = services.policy_request_preview(
        role=role,
        document=READ_INVOICES,
        justification="Incident 4711.",
        policy_name="invoices-read",
        expires_at=timezone.now() + timedelta(hours=8),
    )
    request = approve(
        services.policy_request_submit(requester=requester, preview=preview), reviewer
    )
    assert request.status == PolicyRequest.Status.APPLIED
    PolicyRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now())
    return request


def test_an_expiry_whose_worker_died_is_taken_over(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = temporary_applied(requester, reviewer, role)
    held_by(request, DEAD_WORKER, expired=False, status=PolicyRequest.Status.EXPIRING, attempts=1)
    assert sweep() == nothing()
    held_by(request, DEAD_WORKER, expired=True, status=PolicyRequest.Status.EXPIRING, attempts=1)

    assert sweep() == nothing(requeued=1)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.EXPIRED
    assert inline_names(role) == []
    assert request.changes.get().status == Change.Status.REVERTED
    assert DEAD_WORKER in request.events.get(kind="expired").message


def test_an_expiry_that_keeps_dying_goes_back_for_the_next_expiry_sweep(
    requester: User, reviewer: User, role: IamRole, settings: Any
) -> None:
    settings.IAMPORTAL_APPLY_MAX_ATTEMPTS = 2
    request = temporary_applied(requester, reviewer, role)
    held_by(request, DEAD_WORKER, expired=True, status=PolicyRequest.Status.EXPIRING, attempts=2)

    assert sweep() == nothing(returned=1)

    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert "Gave up after 2 attempts" in request.events.get(kind="recovered").message
    with TestCase.captureOnCommitCallbacks(execute=True):
        tasks.policy_requests_expiry_sweep_task()
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.EXPIRED
    assert inline_names(role) == []


def test_the_work_sweep_is_on_the_schedule() -> None:
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="requests_app.work_sweep")
    assert schedule.func == "requests_app.tasks.requests_work_sweep_task"
    assert schedule.minutes == 1
