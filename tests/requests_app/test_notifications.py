"""Email notifications: who is told about each event on a request, what the email
says, and the once-only expiry reminder."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.test import TestCase
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from requests_app import notifications, tasks
from requests_app.models import Approval, Change, Comment, Notification, PolicyRequest, RequestEvent
from requests_app.notifications import request_notify, site_url
from tests.factories import html_of, make_user

pytestmark = pytest.mark.django_db

SITE = "https://iamportal.example.com"
ROLE_ARN = "arn:aws:iam::111111111111:role/payments-api"


@pytest.fixture(autouse=True)
def site(settings: Any) -> None:
    settings.SITE_URL = SITE
    settings.IAMPORTAL_NOTIFICATIONS = True


@pytest.fixture
def account() -> AwsAccount:
    return AwsAccount.objects.create(account_id="111111111111", name="acme-prod")


@pytest.fixture
def role(account: AwsAccount) -> IamRole:
    return IamRole.objects.create(
        account=account,
        arn=ROLE_ARN,
        name="payments-api",
        content_hash="x",
        synced_at=timezone.now(),
    )


def policy_request(
    requester: User,
    role: IamRole,
    *,
    status: str = PolicyRequest.Status.PENDING,
    justification: str = "Read invoices for the monthly report.",
    expires_at: datetime | None = None,
    approvals_required: int = 1,
) -> PolicyRequest:
    request = PolicyRequest.objects.create(
        requester=requester,
        role=role,
        role_arn=role.arn,
        account=role.account,
        justification=justification,
        status=status,
        expires_at=expires_at,
        approvals_required=approvals_required,
    )
    Change.objects.create(
        request=request,
        type=Change.Type.INLINE_POLICY_PUT,
        target_arn=role.arn,
        account_id=role.account.account_id,
        payload={"policy_name": "read-invoices", "document": {}},
    )
    RequestEvent.objects.create(
        request=request, actor=requester, kind=RequestEvent.Kind.SUBMITTED, message=justification
    )
    return request


def recipients() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


def only_message() -> EmailMultiAlternatives:
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert isinstance(message, EmailMultiAlternatives)
    return message


def url_of(request: PolicyRequest) -> str:
    return f"{SITE}/requests/{request.pk}/"


# --- submitted --------------------------------------------------------------------------


def test_it_tells_every_reviewer_about_a_new_request(
    requester: User, reviewer: User, admin_user: User, superuser: User, outsider: User, role: Any
) -> None:
    request = policy_request(requester, role)

    sent = request_notify(request_id=request.pk, kind="submitted", actor_id=requester.pk)

    assert sent == 3
    assert recipients() == ["admin@example.com", "rita@example.com", "root@example.com"]
    for message in mail.outbox:
        assert len(message.to) == 1
        assert message.cc == []
        assert message.bcc == []
        assert (
            message.subject == f"[iamportal] #{request.pk} needs review: payments-api in acme-prod"
        )
        assert "alice asks for new permissions on payments-api in acme-prod" in message.body
        assert "Read invoices for the monthly report." in message.body
        assert url_of(request) in message.body
        assert f'href="{url_of(request)}"' in html_of(message)


def test_a_requester_who_is_a_reviewer_is_not_asked_to_review_their_own_request(
    reviewer: User, role: Any
) -> None:
    ravi = make_user("ravi", "security-reviewers")
    request = policy_request(ravi, role)

    request_notify(request_id=request.pk, kind="submitted", actor_id=ravi.pk)

    assert recipients() == ["rita@example.com"]


def test_reviewers_follow_the_group_settings(settings: Any, requester: User, role: Any) -> None:
    make_user("rita", "security-reviewers")
    make_user("sam", "appsec")
    settings.IAMPORTAL_REVIEWER_GROUPS = ["appsec"]
    request = policy_request(requester, role)

    request_notify(request_id=request.pk, kind="submitted")

    assert recipients() == ["sam@example.com"]


def test_it_skips_reviewers_without_an_email_or_no_longer_active(
    requester: User, reviewer: User, role: Any
) -> None:
    make_user("ned", "security-reviewers", is_active=False)
    nomail = make_user("nomail", "security-reviewers")
    User.objects.filter(pk=nomail.pk).update(email="")
    make_user("broken", "security-reviewers")
    User.objects.filter(username="broken").update(email="not an address")
    request = policy_request(requester, role)

    assert request_notify(request_id=request.pk, kind="submitted") == 1
    assert recipients() == ["rita@example.com"]


def test_the_justification_is_escaped_in_html_and_plain_in_text(
    requester: User, reviewer: User, role: Any
) -> None:
    request = policy_request(requester, role, justification="<script>alert('x')</script> & more")

    request_notify(request_id=request.pk, kind="submitted")

    message = only_message()
    html = html_of(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "<script>alert('x')</script> & more" in message.body
    assert "&lt;" not in message.body


# --- approved ---------------------------------------------------------------------------


def test_a_partial_approval_says_how_many_are_still_needed(
    requester: User, reviewer: User, admin_user: User, outsider: User, role: Any
) -> None:
    request = policy_request(requester, role, approvals_required=2)
    Approval.objects.create(request=request, reviewer=reviewer)

    request_notify(request_id=request.pk, kind="approved", actor_id=reviewer.pk)

    message = only_message()
    assert message.to == ["alice@example.com"]
    assert message.subject == (
        f"[iamportal] #{request.pk} approved by rita (1 of 2): payments-api in acme-prod"
    )
    assert "1 of 2 approvals" in message.body
    assert "It needs 1 more approval from another reviewer" in message.body
    assert "being applied" not in message.body


def test_the_last_approval_says_the_request_is_being_applied(
    requester: User, reviewer: User, admin_user: User, role: Any
) -> None:
    request = policy_request(requester, role, status="approved", approvals_required=2)
    Approval.objects.create(request=request, reviewer=reviewer)
    Approval.objects.create(request=request, reviewer=admin_user)

    request_notify(request_id=request.pk, kind="approved", actor_id=admin_user.pk)

    message = only_message()
    assert message.subject == f"[iamportal] #{request.pk} approved: payments-api in acme-prod"
    assert "admin approved your request" in message.body
    assert "being applied in AWS now" in message.body
    assert "being applied in AWS now" in html_of(message)


def test_an_approval_is_counted_as_of_its_own_reviewer(
    requester: User, reviewer: User, admin_user: User, role: Any
) -> None:
    """The second approval landed before the first one's email went out."""
    request = policy_request(requester, role, status="approved", approvals_required=2)
    Approval.objects.create(request=request, reviewer=reviewer)
    Approval.objects.create(request=request, reviewer=admin_user)

    request_notify(request_id=request.pk, kind="approved", actor_id=reviewer.pk)

    assert "approved by rita (1 of 2)" in only_message().subject


def test_a_single_approval_without_approval_rows_is_complete(
    requester: User, reviewer: User, role: Any
) -> None:
    request = policy_request(requester, role, status="approved")

    request_notify(request_id=request.pk, kind="approved", actor_id=reviewer.pk)

    message = only_message()
    assert message.subject == f"[iamportal] #{request.pk} approved: payments-api in acme-prod"
    assert "rita approved your request" in message.body


# --- rejected, applied ------------------------------------------------------------------


def test_a_rejection_tells_the_requester_the_latest_reason(
    requester: User, reviewer: User, admin_user: User, role: Any
) -> None:
    request = policy_request(requester, role, status="rejected")
    RequestEvent.objects.create(
        request=request, actor=admin_user, kind=RequestEvent.Kind.REJECTED, message="Old reason"
    )
    RequestEvent.objects.create(
        request=request,
        actor=reviewer,
        kind=RequestEvent.Kind.REJECTED,
        message="Use the read-only role <ro> instead.",
    )

    request_notify(request_id=request.pk, kind="rejected")

    message = only_message()
    assert message.to == ["alice@example.com"]
    assert message.subject == f"[iamportal] #{request.pk} rejected: payments-api in acme-prod"
    assert "rita rejected your request" in message.body
    assert "Use the read-only role <ro> instead." in message.body
    assert "Old reason" not in message.body
    assert "Use the read-only role &lt;ro&gt; instead." in html_of(message)
    assert url_of(request) in message.body


def test_applied_tells_only_the_requester_and_when_temporary_access_ends(
    requester: User, reviewer: User, outsider: User, role: Any
) -> None:
    ends = datetime(2030, 5, 1, 12, 30, tzinfo=UTC)
    request = policy_request(requester, role, status="applied", expires_at=ends)
    Approval.objects.create(request=request, reviewer=reviewer)

    request_notify(request_id=request.pk, kind="applied")

    message = only_message()
    assert message.to == ["alice@example.com"]
    assert message.subject == f"[iamportal] #{request.pk} applied: payments-api in acme-prod"
    assert "it is removed at 2030-05-01 12:30 UTC" in message.body


# --- failed -----------------------------------------------------------------------------


def test_a_failure_tells_the_requester_and_the_reviewers_who_approved_it(
    requester: User, reviewer: User, admin_user: User, outsider: User, role: Any
) -> None:
    request = policy_request(requester, role, status="failed")
    Approval.objects.create(request=request, reviewer=reviewer)
    RequestEvent.objects.create(
        request=request,
        kind=RequestEvent.Kind.FAILED,
        message="AccessDenied: iam:PutRolePolicy is not allowed",
    )

    assert request_notify(request_id=request.pk, kind="failed") == 2

    assert recipients() == ["alice@example.com", "rita@example.com"]
    by_address = {message.to[0]: message for message in mail.outbox}
    for message in by_address.values():
        assert message.subject == (
            f"[iamportal] #{request.pk} failed to apply: payments-api in acme-prod"
        )
        assert "AccessDenied: iam:PutRolePolicy is not allowed" in message.body
        assert "AccessDenied: iam:PutRolePolicy is not allowed" in html_of(message)
    assert "Your request" in by_address["alice@example.com"].body
    assert "which you approved" in by_address["rita@example.com"].body
    assert "you asked for this access" in by_address["alice@example.com"].body
    assert "you review permission requests" in by_address["rita@example.com"].body


def test_a_failure_without_an_event_message_uses_the_change_error(
    requester: User, reviewer: User, role: Any
) -> None:
    request = policy_request(requester, role, status="failed")
    request.changes.update(status=Change.Status.FAILED, error="Throttling: slow down")

    request_notify(request_id=request.pk, kind="failed")

    assert "Throttling: slow down" in only_message().body


def test_a_failure_after_a_stopped_worker_gives_the_recovery_message(
    requester: User, reviewer: User, role: Any
) -> None:
    request = policy_request(requester, role, status="failed")
    RequestEvent.objects.create(
        request=request, kind=RequestEvent.Kind.FAILED, message="An earlier failure"
    )
    RequestEvent.objects.create(
        request=request, kind=RequestEvent.Kind.RECOVERED, message="The worker stopped."
    )

    request_notify(request_id=request.pk, kind="failed")

    body = only_message().body
    assert "The worker stopped." in body
    assert "An earlier failure" not in body


# --- commented --------------------------------------------------------------------------


def comment(request: PolicyRequest, author: User, body: str) -> Comment:
    return Comment.objects.create(request=request, author=author, body=body)


def test_a_reviewer_comment_goes_to_the_requester_only(
    requester: User, reviewer: User, admin_user: User, outsider: User, role: Any
) -> None:
    request = policy_request(requester, role)
    note = comment(request, reviewer, "Which prefix do you need?")

    request_notify(request_id=request.pk, kind="commented", comment_id=note.pk)

    message = only_message()
    assert message.to == ["alice@example.com"]
    assert message.subject == (
        f"[iamportal] #{request.pk} comment from rita: payments-api in acme-prod"
    )
    assert "rita commented on your request" in message.body
    assert "Which prefix do you need?" in message.body


def test_a_requester_comment_goes_to_the_reviewers_involved(
    requester: User, reviewer: User, admin_user: User, outsider: User, role: Any
) -> None:
    request = policy_request(requester, role)
    comment(request, reviewer, "Which prefix do you need?")
    reply = comment(request, requester, "Only invoices/2030/.")

    request_notify(request_id=request.pk, kind="commented", comment_id=reply.pk)

    message = only_message()
    assert message.to == ["rita@example.com"]
    assert "alice commented on request" in message.body
    assert "Only invoices/2030/." in message.body


def test_a_requester_comment_reaches_the_reviewers_who_approved(
    requester: User, reviewer: User, admin_user: User, role: Any
) -> None:
    request = policy_request(requester, role, approvals_required=2)
    Approval.objects.create(request=request, reviewer=admin_user)
    note = comment(request, requester, "Any news?")

    request_notify(request_id=request.pk, kind="commented", comment_id=note.pk)

    assert recipients() == ["admin@example.com"]


def test_a_requester_comment_before_any_review_goes_to_every_reviewer(
    requester: User, reviewer: User, admin_user: User, outsider: User, role: Any
) -> None:
    request = policy_request(requester, role)
    note = comment(request, requester, "Urgent: the report is due today.")

    request_notify(request_id=request.pk, kind="commented", comment_id=note.pk)

    assert recipients() == ["admin@example.com", "rita@example.com"]


def test_a_reviewer_requester_never_gets_their_own_comment(reviewer: User, role: Any) -> None:
    ravi = make_user("ravi", "security-reviewers")
    request = policy_request(ravi, role)
    note = comment(request, ravi, "Adding context.")

    request_notify(request_id=request.pk, kind="commented", comment_id=note.pk)

    assert recipients() == ["rita@example.com"]


def test_a_comment_of_another_request_sends_nothing(
    requester: User, reviewer: User, role: Any
) -> None:
    request = policy_request(requester, role)
    other = policy_request(requester, role)
    note = comment(other, reviewer, "Elsewhere.")

    assert request_notify(request_id=request.pk, kind="commented", comment_id=note.pk) == 0
    assert mail.outbox == []


def test_a_comment_notification_needs_the_comment(requester: User, role: Any) -> None:
    request = policy_request(requester, role)

    with pytest.raises(ValueError, match="comment_id"):
        request_notify(request_id=request.pk, kind="commented")


# --- expiring, expired ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "subject", "says"),
    [
        ("expiring", "access ends 2030-05-01 12:30 UTC", "ends soon"),
        ("expired", "expired", "has ended"),
    ],
)
def test_expiry_emails_go_to_the_requester_only(
    kind: str, subject: str, says: str, requester: User, reviewer: User, role: Any
) -> None:
    ends = datetime(2030, 5, 1, 12, 30, tzinfo=UTC)
    request = policy_request(requester, role, status="applied", expires_at=ends)
    Approval.objects.create(request=request, reviewer=reviewer)

    request_notify(request_id=request.pk, kind=kind)

    message = only_message()
    assert message.to == ["alice@example.com"]
    assert message.subject == f"[iamportal] #{request.pk} {subject}: payments-api in acme-prod"
    assert says in message.body
    assert "2030-05-01 12:30 UTC" in message.body
    assert url_of(request) in html_of(message)


# --- edges ------------------------------------------------------------------------------


def test_an_unknown_kind_is_an_error(requester: User, role: Any) -> None:
    request = policy_request(requester, role)

    with pytest.raises(ValueError, match="unknown notification kind"):
        request_notify(request_id=request.pk, kind="promoted")


def test_a_request_that_no_longer_exists_sends_nothing(reviewer: User) -> None:
    assert request_notify(request_id=987654, kind="submitted") == 0
    assert mail.outbox == []


def test_a_requester_without_an_email_is_skipped(requester: User, role: Any) -> None:
    request = policy_request(requester, role, status="applied")
    User.objects.filter(pk=requester.pk).update(email="")

    assert request_notify(request_id=request.pk, kind="applied") == 0
    assert mail.outbox == []


def test_notifications_can_be_switched_off(
    settings: Any, requester: User, reviewer: User, role: Any
) -> None:
    settings.IAMPORTAL_NOTIFICATIONS = False
    request = policy_request(requester, role)

    assert request_notify(request_id=request.pk, kind="submitted") == 0
    assert mail.outbox == []


def test_subjects_are_one_line_and_text_is_not_html_escaped(
    requester: User, reviewer: User, account: AwsAccount, role: Any
) -> None:
    AwsAccount.objects.filter(pk=account.pk).update(name="R&D <lab>")
    request = policy_request(requester, role)

    request_notify(request_id=request.pk, kind="submitted")

    message = only_message()
    assert message.subject == f"[iamportal] #{request.pk} needs review: payments-api in R&D <lab>"
    assert "in R&D <lab>" in message.body
    assert "in <strong>R&amp;D &lt;lab&gt;</strong>" in html_of(message)


def test_emails_come_from_the_configured_sender_and_thread_by_request(
    settings: Any, requester: User, reviewer: User, role: Any
) -> None:
    settings.DEFAULT_FROM_EMAIL = "IAM portal <noreply@example.com>"
    request = policy_request(requester, role)

    request_notify(request_id=request.pk, kind="submitted")

    message = only_message()
    assert message.from_email == "IAM portal <noreply@example.com>"
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    assert message.extra_headers["References"] == f"<request-{request.pk}@iamportal.example.com>"


@pytest.mark.parametrize(
    ("configured", "debug", "hosts", "expected"),
    [
        ("https://iam.example.com/", False, ["iam.example.com"], "https://iam.example.com"),
        ("", True, ["localhost"], "http://127.0.0.1:8000"),
        ("", False, [".example.com", "iam.example.com"], "https://iam.example.com"),
        ("", False, ["*"], "http://127.0.0.1:8000"),
    ],
)
def test_links_fall_back_when_site_url_is_not_set(
    settings: Any, configured: str, debug: bool, hosts: list[str], expected: str
) -> None:
    settings.SITE_URL = configured
    settings.DEBUG = debug
    settings.ALLOWED_HOSTS = hosts

    assert site_url() == expected


# --- sending ----------------------------------------------------------------------------


class RefusingBackend(LocmemBackend):
    """Refuses addresses starting with "bounce", as a mail server would; counts
    the connections opened."""

    opened: ClassVar[int] = 0

    def open(self) -> bool:
        RefusingBackend.opened += 1
        return True

    def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        for message in messages:
            if message.to[0].startswith("bounce"):
                raise smtplib.SMTPRecipientsRefused({message.to[0]: (550, b"no such user")})
        return super().send_messages(messages)


class BrokenBackend(LocmemBackend):
    def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        raise smtplib.SMTPServerDisconnected("connection lost")


def test_one_refused_address_does_not_stop_the_others(
    settings: Any, requester: User, reviewer: User, admin_user: User, role: Any
) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    RefusingBackend.opened = 0
    bounce = make_user("bounce", "security-reviewers")
    assert bounce.pk > admin_user.pk
    make_user("zed", "security-reviewers")
    request = policy_request(requester, role)

    assert request_notify(request_id=request.pk, kind="submitted") == 3

    assert recipients() == ["admin@example.com", "rita@example.com", "zed@example.com"]
    assert RefusingBackend.opened == 1


def test_a_mail_server_failure_propagates(
    settings: Any, requester: User, reviewer: User, role: Any
) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.BrokenBackend"
    request = policy_request(requester, role)

    with pytest.raises(smtplib.SMTPServerDisconnected):
        request_notify(request_id=request.pk, kind="submitted")


# --- expiry reminders -------------------------------------------------------------------

NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def expiry_reminders_send(*, now: datetime) -> int:
    """Queue the reminders due at `now` and send them as the workers would."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return notifications.expiry_reminders_send(now=now)


def test_it_reminds_once_a_day_before_temporary_access_ends(
    requester: User, reviewer: User, role: Any
) -> None:
    request = policy_request(
        requester, role, status="applied", expires_at=NOW + timedelta(hours=23)
    )

    assert expiry_reminders_send(now=NOW) == 1
    assert expiry_reminders_send(now=NOW + timedelta(hours=1)) == 0

    message = only_message()
    assert message.to == ["alice@example.com"]
    assert "ends soon" in message.body
    request.refresh_from_db()
    assert request.expiry_reminded_at == NOW


@pytest.mark.parametrize(
    ("status", "expires_in", "reminded"),
    [
        ("applied", timedelta(hours=24, seconds=1), False),
        ("applied", timedelta(0), False),
        ("applied", -timedelta(hours=1), False),
        ("applied", timedelta(hours=2), True),
        ("pending", timedelta(hours=2), False),
        ("approved", timedelta(hours=2), False),
        ("expiring", timedelta(hours=2), False),
        ("expired", timedelta(hours=2), False),
    ],
)
def test_it_reminds_only_applied_requests_inside_the_window(
    status: str, expires_in: timedelta, reminded: bool, requester: User, role: Any
) -> None:
    request = policy_request(requester, role, status=status, expires_at=NOW + expires_in)
    if reminded:
        PolicyRequest.objects.filter(pk=request.pk).update(expiry_reminded_at=NOW)

    assert expiry_reminders_send(now=NOW) == 0
    assert mail.outbox == []


def test_the_window_includes_exactly_24_hours(requester: User, role: Any) -> None:
    policy_request(requester, role, status="applied", expires_at=NOW + timedelta(hours=24))
    policy_request(requester, role, status="applied")

    assert expiry_reminders_send(now=NOW) == 1


def test_a_request_claimed_by_another_worker_is_not_reminded_again(
    requester: User, role: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = policy_request(requester, role, status="applied", expires_at=NOW + timedelta(hours=3))
    # This worker read the due requests; another worker claimed this one since.
    monkeypatch.setattr(notifications, "_reminders_due", lambda now: [request.pk])
    PolicyRequest.objects.filter(pk=request.pk).update(expiry_reminded_at=NOW)

    assert expiry_reminders_send(now=NOW) == 0
    assert mail.outbox == []


def test_a_failed_reminder_stays_in_the_outbox_for_the_sweep(
    settings: Any, requester: User, role: Any
) -> None:
    request = policy_request(requester, role, status="applied", expires_at=NOW + timedelta(hours=3))
    settings.EMAIL_BACKEND = f"{__name__}.BrokenBackend"

    with pytest.raises(smtplib.SMTPServerDisconnected):
        expiry_reminders_send(now=NOW)
    request.refresh_from_db()
    assert request.expiry_reminded_at == NOW
    reminder = Notification.objects.get(request=request, kind="expiring")
    assert reminder.status == Notification.Status.PENDING
    assert "SMTPServerDisconnected" in reminder.last_error

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert expiry_reminders_send(now=NOW) == 0  # reminded once: the outbox retries it
    # The back-off has passed.
    Notification.objects.filter(pk=reminder.pk).update(
        enqueued_at=timezone.now() - timedelta(minutes=10),
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        tasks.requests_work_sweep_task()
    reminder.refresh_from_db()
    assert reminder.status == Notification.Status.SENT
    assert "ends soon" in only_message().body


def test_reminders_respect_the_switch(settings: Any, requester: User, role: Any) -> None:
    settings.IAMPORTAL_NOTIFICATIONS = False
    request = policy_request(requester, role, status="applied", expires_at=NOW + timedelta(hours=3))

    assert expiry_reminders_send(now=NOW) == 0
    request.refresh_from_db()
    assert request.expiry_reminded_at is None
