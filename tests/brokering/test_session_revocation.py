"""Revoking the sessions a user already holds on a role: the Deny put on the role
through the spoke role, merged per user, lifted when every session it denies has
expired; redelivery, crash recovery and refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import TestCase
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from brokering import services
from brokering.eligibility import FRESHNESS_SECONDS
from brokering.models import CredentialIssuance, SessionRevocation
from brokering.services import (
    IN_FLIGHT,
    REVOKED_SESSIONS_POLICY,
    RevocationRefused,
    grant_ended,
    role_sessions_revoke,
    session_revocation_apply,
    session_revocations_lift,
    session_revocations_sweep,
    user_deactivate,
)
from requests_app.models import Change, PolicyRequest
from requests_app.revision import revision_of_request
from requests_app.services import (
    RequestInvalid,
    policy_request_changes_submit,
    policy_request_preview,
)
from tests.factories import admin_iam, approve, big_policy, inline_names, make_user, role_in

pytestmark = pytest.mark.django_db(transaction=False)

# Revocation times in the future: a revocation lasts from the later of its time and now.
T1 = datetime(2099, 12, 5, 9, 0, 0, tzinfo=UTC)
T2 = datetime(2099, 12, 5, 10, 30, 0, 250000, tzinfo=UTC)


@pytest.fixture
def bob(db: None) -> User:
    return make_user("bob", "team-payments")


def revoke(
    role: IamRole, user: User, when: datetime, actor: User | None = None
) -> SessionRevocation:
    with TestCase.captureOnCommitCallbacks(execute=True):
        revocation = role_sessions_revoke(
            role=role, user=user, issued_before=when, actor=actor, reason="left the team"
        )
    revocation.refresh_from_db()
    return revocation


def denies(role: IamRole) -> Any:
    iam = admin_iam(role.account.account_id)
    document = iam.get_role_policy(RoleName=role.name, PolicyName=REVOKED_SESSIONS_POLICY)
    raw = document["PolicyDocument"]
    return raw if isinstance(raw, dict) else json.loads(raw)


def deny_of(session_name: str, time: str) -> dict[str, Any]:
    return {
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringLike": {"aws:userid": f"*:{session_name}"},
            "DateLessThan": {"aws:TokenIssueTime": time},
        },
    }


def test_it_puts_a_deny_of_the_users_older_sessions_on_the_role(
    role: IamRole, requester: User, reviewer: User
) -> None:
    revocation = revoke(role, requester, T1, actor=reviewer)

    assert revocation.status == SessionRevocation.Status.APPLIED
    assert revocation.session_name == "alice@example.com"
    assert revocation.actor == reviewer
    assert denies(role) == {
        "Version": "2012-10-17",
        "Statement": [deny_of("alice@example.com", "2099-12-05T09:00:00Z")],
    }


def test_the_deny_stays_as_long_as_the_longest_session_iamportal_may_have_issued(
    role: IamRole, requester: User, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_DURATION_SECONDS = 3600

    revocation = revoke(role, requester, timezone.now())

    window = revocation.remove_after - revocation.issued_before
    # The role's 2 hours, longer than iamportal's 1 hour, with a margin for clocks.
    assert timedelta(hours=2) < window <= timedelta(hours=2, minutes=10)


def test_the_time_is_rounded_up_to_the_second(role: IamRole, requester: User) -> None:
    revoke(role, requester, T2)

    time = denies(role)["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert time == "2099-12-05T10:30:01Z"


def test_two_users_get_a_statement_each(role: IamRole, requester: User, bob: User) -> None:
    revoke(role, requester, T1)
    revoke(role, bob, T2)

    assert denies(role)["Statement"] == [
        deny_of("alice@example.com", "2099-12-05T09:00:00Z"),
        deny_of("bob@example.com", "2099-12-05T10:30:01Z"),
    ]
    assert inline_names(role) == [REVOKED_SESSIONS_POLICY]


def test_a_later_revocation_moves_the_users_time_forward_and_never_back(
    role: IamRole, requester: User
) -> None:
    revoke(role, requester, T1)
    revoke(role, requester, T2)
    assert denies(role)["Statement"] == [deny_of("alice@example.com", "2099-12-05T10:30:01Z")]

    # An earlier one (applied late) leaves the later time in force.
    earlier = SessionRevocation.objects.create(
        role=role,
        account=role.account,
        role_arn=role.arn,
        user=requester,
        session_name="alice@example.com",
        issued_before=T1 - timedelta(hours=1),
        remove_after=T1,
    )
    assert session_revocation_apply(revocation_id=earlier.pk) == "applied"
    assert denies(role)["Statement"] == [deny_of("alice@example.com", "2099-12-05T10:30:01Z")]


def test_it_keeps_the_roles_other_inline_policies(role: IamRole, requester: User) -> None:
    iam = admin_iam(role.account.account_id)
    iam.put_role_policy(
        RoleName=role.name, PolicyName="read", PolicyDocument=json.dumps(big_policy(500))
    )

    revoke(role, requester, T1)

    assert sorted(inline_names(role)) == sorted(["read", REVOKED_SESSIONS_POLICY])


def test_revoking_again_is_the_same_revocation(role: IamRole, requester: User) -> None:
    first = revoke(role, requester, T2)
    again = revoke(role, requester, T1)

    assert again.pk == first.pk
    assert SessionRevocation.objects.count() == 1


def test_a_redelivered_task_does_nothing(role: IamRole, requester: User) -> None:
    revocation = revoke(role, requester, T1)
    before = denies(role)

    assert session_revocation_apply(revocation_id=revocation.pk) == "skipped"
    assert denies(role) == before
    revocation.refresh_from_db()
    assert revocation.status == SessionRevocation.Status.APPLIED


def test_the_deny_is_lifted_when_every_session_it_denies_has_expired(
    role: IamRole, requester: User, bob: User
) -> None:
    first = revoke(role, requester, T1)
    second = revoke(role, bob, T2)

    assert session_revocations_lift(now=first.remove_after + timedelta(seconds=1)) == 1
    assert denies(role)["Statement"] == [deny_of("bob@example.com", "2099-12-05T10:30:01Z")]
    first.refresh_from_db()
    assert first.status == SessionRevocation.Status.REMOVED

    # Again: nothing more to lift.
    assert session_revocations_lift(now=first.remove_after + timedelta(seconds=1)) == 0

    assert session_revocations_lift(now=second.remove_after + timedelta(seconds=1)) == 1
    assert inline_names(role) == []


def test_a_users_deny_stays_while_a_later_revocation_of_them_is_in_force(
    role: IamRole, requester: User
) -> None:
    first = revoke(role, requester, T1)
    second = revoke(role, requester, T2)

    assert session_revocations_lift(now=first.remove_after + timedelta(seconds=1)) == 0
    assert denies(role)["Statement"] == [deny_of("alice@example.com", "2099-12-05T10:30:01Z")]
    first.refresh_from_db()
    assert first.status == SessionRevocation.Status.APPLIED  # its deny is still there

    assert session_revocations_lift(now=second.remove_after + timedelta(seconds=1)) == 2
    assert inline_names(role) == []


def test_a_deny_kept_for_a_revocation_that_then_fails_is_still_lifted(
    role: IamRole, requester: User
) -> None:
    first = revoke(role, requester, T1)
    lift_at = first.remove_after + timedelta(seconds=1)
    # A later revocation of the same user, not applied yet: the deny stays for it.
    later = SessionRevocation.objects.create(
        role=role,
        account=role.account,
        role_arn=role.arn,
        user=requester,
        session_name=first.session_name,
        issued_before=T2,
        remove_after=T2 + timedelta(days=1),
    )
    assert session_revocations_lift(now=lift_at) == 0
    assert denies(role)["Statement"]

    SessionRevocation.objects.filter(pk=later.pk).update(status=SessionRevocation.Status.FAILED)

    assert session_revocations_lift(now=lift_at) == 1
    assert inline_names(role) == []


def test_a_revocation_applied_while_old_denies_are_lifted_keeps_its_deny(
    role: IamRole, requester: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = revoke(role, requester, T1)
    lift_at = first.remove_after + timedelta(seconds=1)
    spoke_session = services.aws.spoke_session
    lifting: list[bool] = []

    def reaching_the_account(account: AwsAccount) -> Any:
        # While the lift reaches the account, the user is revoked again (disabled,
        # say) and that revocation is applied, before the lift takes the lock.
        if not lifting:
            lifting.append(True)
            revoke(role, requester, lift_at)
        return spoke_session(account)

    monkeypatch.setattr(services.aws, "spoke_session", reaching_the_account)
    session_revocations_lift(now=lift_at)

    later = SessionRevocation.objects.exclude(pk=first.pk).get()
    assert later.status == SessionRevocation.Status.APPLIED
    assert [s["Condition"]["StringLike"] for s in denies(role)["Statement"]] == [
        {"aws:userid": "*:alice@example.com"}
    ]


def test_lifting_a_policy_deleted_by_hand_is_harmless(role: IamRole, requester: User) -> None:
    revocation = revoke(role, requester, T1)
    admin_iam(role.account.account_id).delete_role_policy(
        RoleName=role.name, PolicyName=REVOKED_SESSIONS_POLICY
    )

    assert session_revocations_lift(now=revocation.remove_after + timedelta(seconds=1)) == 1


def test_the_sweep_applies_a_revocation_whose_task_was_lost(
    role: IamRole, requester: User, settings: Any
) -> None:
    with TestCase.captureOnCommitCallbacks(execute=False):  # the task never ran
        revocation = role_sessions_revoke(
            role=role, user=requester, issued_before=T1, actor=None, reason="x"
        )
    assert inline_names(role) == []
    late = timezone.now() - timedelta(seconds=settings.IAMPORTAL_WORK_REQUEUE_SECONDS + 1)
    SessionRevocation.objects.filter(pk=revocation.pk).update(enqueued_at=late)

    with TestCase.captureOnCommitCallbacks(execute=True):
        outcome = session_revocations_sweep()

    assert outcome["requeued"] == 1
    revocation.refresh_from_db()
    assert revocation.status == SessionRevocation.Status.APPLIED
    assert revocation.attempts == 2
    assert denies(role)["Statement"] == [deny_of("alice@example.com", "2099-12-05T09:00:00Z")]


def test_the_sweep_takes_over_from_a_worker_that_died(role: IamRole, requester: User) -> None:
    with TestCase.captureOnCommitCallbacks(execute=False):
        revocation = role_sessions_revoke(
            role=role, user=requester, issued_before=T1, actor=None, reason="x"
        )
    # A worker claimed it, then died before putting anything; its lease has expired.
    now = timezone.now()
    SessionRevocation.objects.filter(pk=revocation.pk).update(
        enqueued_at=now - timedelta(minutes=6),
        lease_owner="host:1:dead",
        lease_expires_at=now - timedelta(seconds=1),
    )

    with TestCase.captureOnCommitCallbacks(execute=True):
        session_revocations_sweep()
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert session_revocations_sweep()["requeued"] == 0  # handed over once

    revocation.refresh_from_db()
    assert revocation.status == SessionRevocation.Status.APPLIED
    assert revocation.lease_owner == ""


def test_the_sweep_gives_up_after_the_attempts(
    role: IamRole, requester: User, settings: Any
) -> None:
    with TestCase.captureOnCommitCallbacks(execute=False):
        revocation = role_sessions_revoke(
            role=role, user=requester, issued_before=T1, actor=None, reason="x"
        )
    now = timezone.now()
    SessionRevocation.objects.filter(pk=revocation.pk).update(
        attempts=settings.IAMPORTAL_APPLY_MAX_ATTEMPTS,
        enqueued_at=now - timedelta(minutes=6),
        lease_expires_at=now - timedelta(seconds=1),
        last_error="Throttling",
    )

    assert session_revocations_sweep()["failed"] == 1
    revocation.refresh_from_db()
    assert revocation.status == SessionRevocation.Status.FAILED
    assert "Gave up after" in revocation.last_error


def test_a_deny_that_would_not_fit_fails_clearly_and_puts_nothing(
    role: IamRole, requester: User
) -> None:
    admin_iam(role.account.account_id).put_role_policy(
        RoleName=role.name, PolicyName="big", PolicyDocument=json.dumps(big_policy(10_100))
    )

    revocation = revoke(role, requester, T1)

    assert revocation.status == SessionRevocation.Status.FAILED
    assert "over IAM's 10240" in revocation.last_error
    assert "Revoke active sessions" in revocation.last_error
    assert inline_names(role) == ["big"]


def test_it_refuses_iamportals_own_roles(account: AwsAccount, requester: User) -> None:
    spoke = IamRole.objects.create(
        account=account,
        arn=account.spoke_role_arn,
        name=account.spoke_role_arn.rsplit("/", 1)[-1],
        content_hash="x",
        synced_at=timezone.now(),
    )

    with pytest.raises(RevocationRefused, match="lock iamportal out"):
        role_sessions_revoke(role=spoke, user=requester, issued_before=T1, actor=None, reason="x")
    assert not SessionRevocation.objects.exists()


def test_a_grant_ending_revokes_the_sessions_it_gave(role: IamRole, requester: User) -> None:
    before = timezone.now()
    with TestCase.captureOnCommitCallbacks(execute=True):
        revocation = grant_ended(user=requester, role=role)

    assert revocation is not None
    revocation.refresh_from_db()
    assert revocation.status == SessionRevocation.Status.APPLIED
    # Credentials issued a moment after, by a web server whose access index is
    # not fresh yet or a request already waiting for STS, are denied too.
    assert revocation.issued_before >= before + timedelta(seconds=FRESHNESS_SECONDS + 10)
    assert revocation.reason == "Access grant ended"


def _issued(user: User, role_arn: str, *, ago: timedelta, kind: str = "cli") -> None:
    CredentialIssuance.objects.create(
        user=user,
        user_email=user.email,
        role_arn=role_arn,
        kind=kind,
        outcome=CredentialIssuance.Outcome.ISSUED,
        requested_at=timezone.now() - ago,
    )


def test_disabling_a_user_revokes_on_every_role_they_used_lately(
    account: AwsAccount, role: IamRole, requester: User, admin_user: User
) -> None:
    console_role = role_in(account, "web-frontend")
    old_role = role_in(account, "archive")
    _issued(requester, role.arn, ago=timedelta(hours=1))
    _issued(requester, console_role.arn, ago=timedelta(hours=3), kind="console")
    _issued(requester, old_role.arn, ago=timedelta(hours=13))

    before = timezone.now()
    with TestCase.captureOnCommitCallbacks(execute=True):
        revocations = user_deactivate(user=requester, actor=admin_user)

    requester.refresh_from_db()
    assert not requester.is_active
    assert sorted(r.role_arn for r in revocations) == sorted([role.arn, console_role.arn])
    assert denies(role)["Statement"][0]["Condition"]["StringLike"] == {
        "aws:userid": "*:alice@example.com"
    }
    assert denies(console_role)["Statement"]
    assert inline_names(old_role) == []
    assert all(r.actor == admin_user for r in revocations)
    # As when a grant ends: a request already past its check is covered too.
    assert all(r.issued_before >= before + IN_FLIGHT for r in revocations)


def test_sessions_named_for_an_email_the_user_had_before_are_revoked_too(
    role: IamRole, requester: User, bob: User
) -> None:
    _issued(requester, role.arn, ago=timedelta(hours=2))
    _issued(bob, role.arn, ago=timedelta(hours=1))
    requester.email = "alice.smith@example.com"
    requester.save(update_fields=["email"])

    revocation = revoke(role, requester, T1)

    assert revocation.session_name == "alice.smith@example.com"
    statements = denies(role)["Statement"]
    assert len(statements) == 2
    for name in ("alice@example.com", "alice.smith@example.com"):
        assert deny_of(name, "2099-12-05T09:00:00Z") in statements
    assert revoke(role, requester, T1) == revocation
    assert SessionRevocation.objects.filter(user=requester).count() == 2


def test_the_apply_survives_a_passing_aws_error(
    role: IamRole, requester: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    def throttled(*args: Any, **kwargs: Any) -> Any:
        error = {"Error": {"Code": "Throttling", "Message": "slow down"}}
        raise ClientError(error, "PutRolePolicy")

    write = services._revoked_policy_write
    monkeypatch.setattr(services, "_revoked_policy_write", throttled)
    with pytest.raises(ClientError), TestCase.captureOnCommitCallbacks(execute=True):
        role_sessions_revoke(role=role, user=requester, issued_before=T1, actor=None, reason="x")

    revocation = SessionRevocation.objects.get()
    assert revocation.status == SessionRevocation.Status.PENDING
    assert "Throttling" in revocation.last_error
    monkeypatch.setattr(services, "_revoked_policy_write", write)  # AWS answers again
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert session_revocations_sweep()["requeued"] == 1
    revocation.refresh_from_db()
    assert revocation.status == SessionRevocation.Status.APPLIED


# --- iamportal's own inline policy is not for requests -------------------------------


def _synced_with_denies(role: IamRole, requester: User) -> IamRole:
    revoke(role, requester, T1)
    IamRole.objects.filter(pk=role.pk).update(
        inline_policies={REVOKED_SESSIONS_POLICY: denies(role)}
    )
    role.refresh_from_db()
    return role


@pytest.mark.parametrize(
    "change",
    [
        {"type": "inline_policy_delete", "payload": {"policy_name": REVOKED_SESSIONS_POLICY}},
        {
            "type": "inline_policy_put",
            "payload": {
                "policy_name": REVOKED_SESSIONS_POLICY.upper(),
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}],
                },
            },
        },
    ],
)
def test_a_request_cannot_delete_or_replace_the_revoked_sessions_policy(
    role: IamRole, requester: User, bob: User, change: dict[str, Any]
) -> None:
    role = _synced_with_denies(role, requester)
    with pytest.raises(RequestInvalid, match="iamportal's own"):
        policy_request_changes_submit(
            requester=bob,
            role=role,
            justification="Cleaning up.",
            changes=[{**change, "target_arn": role.arn}],
        )
    with pytest.raises(RequestInvalid, match="iamportal's own"):
        policy_request_preview(
            role=role,
            document=change["payload"].get("document") or {},
            justification="Cleaning up.",
            policy_name=REVOKED_SESSIONS_POLICY,
        )
    assert REVOKED_SESSIONS_POLICY in inline_names(role)


def test_a_request_filed_before_the_name_was_refused_is_refused_at_apply(
    role: IamRole, requester: User, bob: User, reviewer: User
) -> None:
    role = _synced_with_denies(role, requester)
    IamRole.objects.filter(pk=role.pk).update(
        inline_policies={**role.inline_policies, "cleanup": {"Version": "2012-10-17"}}
    )
    role.refresh_from_db()
    request = policy_request_changes_submit(
        requester=bob,
        role=role,
        justification="Cleaning up.",
        changes=[
            {
                "type": "inline_policy_delete",
                "target_arn": role.arn,
                "payload": {"policy_name": "cleanup"},
            }
        ],
    )
    assert isinstance(request, PolicyRequest)
    # As it would have been filed then: the reviewer sees and approves this name.
    Change.objects.filter(request=request).update(payload={"policy_name": REVOKED_SESSIONS_POLICY})
    PolicyRequest.objects.filter(pk=request.pk).update(revision=revision_of_request(request.pk))

    request = approve(request, reviewer)

    assert request.status == "failed"
    assert "iamportal's own" in request.changes.get().error
    assert REVOKED_SESSIONS_POLICY in inline_names(role)
