"""The notification outbox: an email is recorded with the action that causes it,
sent once by a task, and sent again by the sweep when its task was lost or the
mail server failed, until it gives up."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import transaction
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from requests_app import enqueue, notifications, services, tasks
from requests_app.models import Notification, PolicyRequest
from tests.factories import client_for

pytestmark = pytest.mark.django_db


class BrokenBackend(LocmemBackend):
    def send_messages(self, messages: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


@pytest.fixture(autouse=True)
def switched_on(settings: Any) -> None:
    settings.IAMPORTAL_NOTIFICATIONS = True
    settings.SITE_URL = "https://iamportal.example.com"


@pytest.fixture
def request_(requester: User) -> PolicyRequest:
    account = AwsAccount.objects.create(account_id="111111111111", name="acme-prod")
    role = IamRole.objects.create(
        account=account,
        arn="arn:aws:iam::111111111111:role/payments-api",
        name="payments-api",
        content_hash="x",
        synced_at=timezone.now(),
    )
    return PolicyRequest.objects.create(
        requester=requester, role=role, role_arn=role.arn, account=account, justification="x"
    )


def comment(request: PolicyRequest, author: User, *, run_tasks: bool = True) -> Notification:
    with TestCase.captureOnCommitCallbacks(execute=run_tasks):
        services.policy_request_comment(request_id=request.pk, author=author, body="Which bucket?")
    return Notification.objects.get(request=request, kind="commented")


def sweep() -> dict[str, int]:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return tasks.requests_work_sweep_task()


def handed_over_long_ago(notification: Notification, **fields: Any) -> None:
    Notification.objects.filter(pk=notification.pk).update(
        enqueued_at=timezone.now() - timedelta(minutes=10), **fields
    )


def test_the_email_is_recorded_with_the_action_and_sent_after_the_commit(
    request_: PolicyRequest, requester: User, reviewer: User
) -> None:
    notification = comment(request_, reviewer, run_tasks=False)

    assert notification.status == Notification.Status.PENDING
    assert (notification.actor, notification.comment) == (reviewer, request_.comments.get())
    assert notification.attempts == 1
    assert mail.outbox == []

    tasks.notification_send_task(notification.pk)

    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT
    assert notification.sent_at is not None
    assert notification.emails_sent == 1
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_an_action_rolled_back_leaves_no_email(
    request_: PolicyRequest, reviewer: User, settings: Any
) -> None:
    with (
        pytest.raises(RuntimeError),
        TestCase.captureOnCommitCallbacks(execute=True),
        transaction.atomic(),
    ):
        services.policy_request_comment(request_id=request_.pk, author=reviewer, body="Hm?")
        raise RuntimeError("the view failed after the comment")

    assert not Notification.objects.exists()
    assert mail.outbox == []


def test_a_sent_email_is_never_sent_again_by_a_redelivered_task(
    request_: PolicyRequest, reviewer: User
) -> None:
    notification = comment(request_, reviewer)
    assert len(mail.outbox) == 1

    assert tasks.notification_send_task(notification.pk) == 0
    handed_over_long_ago(notification)
    assert sweep()["emails_requeued"] == 0

    assert len(mail.outbox) == 1


def test_an_email_another_worker_is_sending_is_left_to_it(
    request_: PolicyRequest, reviewer: User
) -> None:
    notification = comment(request_, reviewer, run_tasks=False)
    Notification.objects.filter(pk=notification.pk).update(
        lease_owner="worker-2:4343:c0ffee00",
        lease_expires_at=timezone.now() + timedelta(minutes=4),
    )

    assert tasks.notification_send_task(notification.pk) == 0
    assert sweep()["emails_requeued"] == 0
    assert mail.outbox == []


def test_the_sweep_sends_an_email_whose_task_was_lost(
    request_: PolicyRequest, reviewer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(enqueue, "notification_send", lambda notification_id: None)
        notification = comment(request_, reviewer)
    assert mail.outbox == []
    assert sweep()["emails_requeued"] == 0  # just handed over
    handed_over_long_ago(notification)

    assert sweep()["emails_requeued"] == 1

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Notification.Status.SENT, 2)
    assert len(mail.outbox) == 1
    handed_over_long_ago(notification)
    assert sweep()["emails_requeued"] == 0
    assert len(mail.outbox) == 1


def test_the_sweep_sends_an_email_whose_worker_died_mid_send(
    request_: PolicyRequest, reviewer: User
) -> None:
    notification = comment(request_, reviewer, run_tasks=False)
    handed_over_long_ago(
        notification,
        lease_owner="worker-1:4242:0badcafe",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert sweep()["emails_requeued"] == 1

    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT
    assert len(mail.outbox) == 1


def test_a_mail_server_failure_is_retried_after_a_back_off_then_given_up(
    request_: PolicyRequest, reviewer: User, settings: Any
) -> None:
    settings.IAMPORTAL_NOTIFICATION_MAX_ATTEMPTS = 2
    settings.EMAIL_BACKEND = f"{__name__}.BrokenBackend"
    with pytest.raises(smtplib.SMTPServerDisconnected):
        comment(request_, reviewer)
    notification = Notification.objects.get()
    assert notification.status == Notification.Status.PENDING
    assert notification.last_error.startswith("SMTPServerDisconnected")
    assert notification.lease_expires_at is not None
    assert notification.lease_expires_at > timezone.now()
    assert sweep()["emails_requeued"] == 0  # backing off

    handed_over_long_ago(notification, lease_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(smtplib.SMTPServerDisconnected):
        sweep()
    notification.refresh_from_db()
    assert notification.attempts == 2
    handed_over_long_ago(notification, lease_expires_at=timezone.now() - timedelta(seconds=1))

    assert sweep()["emails_failed"] == 1

    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED
    assert notification.last_error.startswith(
        "Gave up after 2 attempts: SMTPServerDisconnected: Connection unexpectedly closed"
    )
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert tasks.notification_send_task(notification.pk) == 0
    assert mail.outbox == []


def test_nothing_is_recorded_while_notifications_are_switched_off(
    request_: PolicyRequest, reviewer: User, settings: Any
) -> None:
    settings.IAMPORTAL_NOTIFICATIONS = False
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_comment(request_id=request_.pk, author=reviewer, body="Hm?")
    assert not Notification.objects.exists()


def test_an_unknown_kind_is_refused_before_anything_is_recorded(
    request_: PolicyRequest,
) -> None:
    with pytest.raises(ValueError, match="unknown notification kind"):
        notifications.notification_queue(kind="whatever", request_id=request_.pk)
    assert not Notification.objects.exists()


def test_reviewers_see_the_outbox_in_the_admin_read_only(
    request_: PolicyRequest, reviewer: User, requester: User
) -> None:
    notification = comment(request_, reviewer)
    client = client_for(reviewer)

    listing = client.get(
        reverse("admin:requests_app_notification_changelist"), {"status__exact": "sent"}
    )
    assert listing.status_code == 200
    assert f"#{request_.pk}" in listing.content.decode()
    page = client.get(reverse("admin:requests_app_notification_change", args=[notification.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client_for(requester).get(
        reverse("admin:requests_app_notification_changelist")
    ).status_code in (302, 403)
