"""Racing reviewers and twice-delivered tasks on PostgreSQL: every request is
approved and applied exactly once. (SQLite runs one writer at a time, so the
race cannot happen there; these tests run in CI, on PostgreSQL.)"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.db import connection

from accounts.models import AwsAccount, IamRole
from requests_app import services, tasks
from requests_app.models import Approval, PolicyRequest
from requests_app.services import review
from tests.factories import READ_INVOICES, kinds, make_user, policy_in_aws, race, submitted

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"
    ),
]


@pytest.fixture(autouse=True)
def widened_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold each approval inside its transaction a little, so the two threads
    really overlap there instead of one finishing before the other starts."""
    checked = review._self_approval

    def slow(request: PolicyRequest, reviewer: User) -> bool:
        time.sleep(0.3)
        return checked(request, reviewer)

    monkeypatch.setattr(review, "_self_approval", slow)


def reviewers(n: int) -> list[User]:
    return [make_user(f"reviewer{i}", "security-reviewers") for i in range(n)]


def test_two_reviewers_approving_at_once_apply_once(requester: User, role: IamRole) -> None:
    first, second = reviewers(2)
    request = submitted(requester, role)
    results = race(
        lambda: services.policy_request_approve(
            request_id=request.pk, reviewer=first, revision=request.revision
        ),
        lambda: services.policy_request_approve(
            request_id=request.pk, reviewer=second, revision=request.revision
        ),
    )
    refused = [r for r in results if isinstance(r, services.RequestActionRefused)]
    assert len(refused) == 1, results
    assert "only pending requests can be approved" in refused[0].message
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert request.approvals.count() == 1
    assert kinds(request).count("applying") == 1
    assert kinds(request).count("applied") == 1
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES


def test_racing_approvals_are_both_counted_when_two_are_required(
    requester: User, role: IamRole
) -> None:
    AwsAccount.objects.filter(pk=role.account_id).update(approvals_required=2)
    first, second = reviewers(2)
    request = submitted(requester, role)
    results = race(
        lambda: services.policy_request_approve(
            request_id=request.pk, reviewer=first, revision=request.revision
        ),
        lambda: services.policy_request_approve(
            request_id=request.pk, reviewer=second, revision=request.revision
        ),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert request.approvals.count() == 2
    assert kinds(request).count("applying") == 1


def test_one_reviewer_approving_twice_at_once_counts_once(requester: User, role: IamRole) -> None:
    AwsAccount.objects.filter(pk=role.account_id).update(approvals_required=2)
    (only,) = reviewers(1)
    request = submitted(requester, role)
    results = race(
        lambda: services.policy_request_approve(
            request_id=request.pk, reviewer=only, revision=request.revision
        ),
        lambda: services.policy_request_approve(
            request_id=request.pk, reviewer=only, revision=request.revision
        ),
    )
    assert sum(isinstance(r, services.RequestActionRefused) for r in results) == 1, results
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert request.approvals.count() == 1


def test_the_apply_task_delivered_twice_at_once_applies_once(
    requester: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    (approver,) = reviewers(1)
    Approval.objects.create(request=request, reviewer=approver, revision=request.revision)
    PolicyRequest.objects.filter(pk=request.pk).update(status=PolicyRequest.Status.APPROVED)
    results = race(
        lambda: tasks.policy_request_apply_task(request.pk),
        lambda: tasks.policy_request_apply_task(request.pk),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert kinds(request).count("applying") == 1
    assert kinds(request).count("applied") == 1
    assert request.changes.get().status == "applied"


def test_two_expiry_sweeps_at_once_remove_the_access_once(
    requester: User, reviewer: User, role: IamRole
) -> None:
    from django.utils import timezone

    request = submitted(requester, role)
    services.policy_request_approve(
        request_id=request.pk, reviewer=reviewer, revision=request.revision
    )
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    PolicyRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now())
    results = race(tasks.policy_requests_expiry_sweep_task, tasks.policy_requests_expiry_sweep_task)
    assert not [r for r in results if isinstance(r, Exception)], results
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.EXPIRED
    assert kinds(request).count("expired") == 1


def _held_by_a_dead_worker(request: PolicyRequest) -> None:
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    PolicyRequest.objects.filter(pk=request.pk).update(
        status=PolicyRequest.Status.APPLYING,
        enqueued_at=now - timedelta(minutes=11),
        lease_owner="worker-1:4242:0badcafe",
        lease_expires_at=now - timedelta(seconds=1),
    )


def _approved(requester: User, role: IamRole) -> PolicyRequest:
    request = submitted(requester, role)
    (approver,) = reviewers(1)
    Approval.objects.create(request=request, reviewer=approver, revision=request.revision)
    return request


def test_two_tasks_taking_over_a_lapsed_lease_at_once_apply_once(
    requester: User, role: IamRole
) -> None:
    request = _approved(requester, role)
    _held_by_a_dead_worker(request)
    results = race(
        lambda: tasks.policy_request_apply_task(request.pk),
        lambda: tasks.policy_request_apply_task(request.pk),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert kinds(request).count("recovered") == 1
    assert kinds(request).count("applied") == 1
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES


def test_two_sweeps_at_once_hand_a_lost_apply_over_once(requester: User, role: IamRole) -> None:
    request = _approved(requester, role)
    _held_by_a_dead_worker(request)
    results = race(tasks.requests_work_sweep_task, tasks.requests_work_sweep_task)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r["requeued"] for r in results) == 1, results
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert request.attempts == 1
    assert kinds(request).count("applied") == 1


def test_an_email_delivered_twice_at_once_is_sent_once(requester: User, role: IamRole) -> None:
    from django.core import mail

    from requests_app.models import Notification

    request = submitted(requester, role)
    notification = Notification.objects.create(request=request, kind="applied", attempts=1)
    mail.outbox.clear()
    results = race(
        lambda: tasks.notification_send_task(notification.pk),
        lambda: tasks.notification_send_task(notification.pk),
    )
    assert sorted(results) == [0, 1], results
    assert Notification.objects.get(pk=notification.pk).status == Notification.Status.SENT
    assert len(mail.outbox) == 1


def test_two_access_requests_for_one_role_at_once_make_one(
    requester: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from requests_app.services import access

    looked = access.access_request_pending

    def slow(**kwargs: object) -> PolicyRequest | None:
        time.sleep(0.3)  # both threads have looked before either makes its request
        return looked(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(access, "access_request_pending", slow)

    def ask() -> PolicyRequest:
        return services.access_request_submit(
            requester=requester, role=role, justification="On call.", duration=timedelta(hours=8)
        )

    results = race(ask, ask)

    refused = [r for r in results if isinstance(r, services.RequestInvalid)]
    assert len(refused) == 1, results
    assert "already in progress" in str(refused[0].errors)
    assert PolicyRequest.objects.filter(kind="access", requester=requester).count() == 1
