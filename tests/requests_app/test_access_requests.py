"""Access requests: asking to use a role for a while, reviewed as every request,
granted on apply (the access index has it at once), taken away at expiry, on
revocation or when given up (with the sessions it gave), extended without a gap."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from brokering import selectors as brokering_selectors
from brokering.models import AccessRule, SessionRevocation
from brokering.services import REVOKED_SESSIONS_POLICY, access_grant_start
from requests_app import services, tasks
from requests_app.changes import ChangeRefused, change_apply
from requests_app.models import ApprovalPolicy, Change, PolicyRequest
from requests_app.revision import revision_compute
from requests_app.services import apply as apply_service
from tests.factories import admin_action, admin_iam, approve, make_user, revision_of_request

pytestmark = pytest.mark.django_db


def asked(user: User, role: IamRole, **fields: Any) -> PolicyRequest:
    fields.setdefault("duration", timedelta(hours=8))
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.access_request_submit(
            requester=user, role=role, justification="On call this week.", **fields
        )


def may_use(user: User, role: IamRole) -> bool:
    fresh = User.objects.get(pk=user.pk)
    return role.pk in brokering_selectors.eligible_role_ids(fresh)


def deny_statements(role: IamRole) -> list[dict[str, object]]:
    iam = admin_iam(role.account.account_id)
    try:
        answer = iam.get_role_policy(RoleName=role.name, PolicyName=REVOKED_SESSIONS_POLICY)
    except iam.exceptions.NoSuchEntityException:
        return []
    document = answer["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    return list(document["Statement"])


def test_an_access_request_is_an_ordinary_pending_request(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = asked(requester, role, cli_only=True)
    assert (request.kind, request.status, request.role_arn) == ("access", "pending", role.arn)
    change = request.changes.get()
    assert change.type == Change.Type.ROLE_ACCESS_GRANT
    assert change.payload["cli_only"] is True
    assert request.expires_at is not None
    left = request.expires_at - timezone.now()
    assert timedelta(hours=7, minutes=59) < left <= timedelta(hours=8)
    assert request.events.filter(kind="submitted").exists()
    assert "rita@example.com" in [to for m in mail.outbox for to in m.to]


def test_the_revision_covers_the_role_the_duration_the_start_and_cli_only(
    requester: User, role: IamRole
) -> None:
    request = asked(requester, role)
    change = request.changes.get()
    base = revision_compute([change], request.expires_at)
    assert request.revision == base
    for key, value in (("cli_only", True), ("starts_at", "2030-01-01T00:00:00+00:00")):
        change.payload = {**change.payload, key: value}
        assert revision_compute([change], request.expires_at) != base
        change.refresh_from_db()
    change.target_arn = role.arn.replace("payments-api", "other")
    assert revision_compute([change], request.expires_at) != base
    change.refresh_from_db()
    assert request.expires_at is not None
    later = request.expires_at + timedelta(hours=1)
    assert revision_compute([change], later) != base


def test_nobody_approves_their_own_access_request(reviewer: User, role: IamRole) -> None:
    request = asked(reviewer, role)
    with pytest.raises(services.RequestActionForbidden):
        services.policy_request_approve(
            request_id=request.pk, reviewer=reviewer, revision=request.revision
        )
    assert not AccessRule.objects.filter(request=request).exists()


def test_approval_grants_the_role_at_once_and_tells_the_user(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = asked(requester, role)
    assert not may_use(requester, role)
    mail.outbox.clear()
    request = approve(request, reviewer)
    assert request.status == "applied"
    grant = AccessRule.objects.get(request=request)
    assert (grant.user_id, grant.role_pattern, grant.expires_at) == (
        requester.pk,
        role.arn,
        request.expires_at,
    )
    assert may_use(requester, role)
    told = [m for m in mail.outbox if m.to == ["alice@example.com"] and "applied" in m.subject]
    assert told, [m.subject for m in mail.outbox]
    assert f"/accounts/{role.account.account_id}/roles/{role.name}/" in told[0].body


def test_applying_twice_makes_one_grant(requester: User, reviewer: User, role: IamRole) -> None:
    request = approve(asked(requester, role), reviewer)
    PolicyRequest.objects.filter(pk=request.pk).update(status="approved")
    Change.objects.filter(request=request).update(status="pending")
    services.policy_request_apply(request_id=request.pk)
    assert AccessRule.objects.filter(request=request).count() == 1


def test_expiry_takes_the_role_away_and_denies_the_sessions_it_gave(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(asked(requester, role), reviewer)
    assert may_use(requester, role)
    PolicyRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now())
    AccessRule.objects.filter(request=request).update(expires_at=timezone.now())
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.policy_requests_expiry_sweep_task() == 1
    request.refresh_from_db()
    assert request.status == "expired"
    assert not may_use(requester, role)
    revocation = SessionRevocation.objects.get(role_arn=role.arn)
    assert revocation.status == "applied"
    [statement] = deny_statements(role)
    assert statement["Effect"] == "Deny"
    assert "alice@example.com" in json.dumps(statement)


def test_a_grant_is_reminded_24_hours_before_its_end(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(asked(requester, role, duration=timedelta(hours=20)), reviewer)
    mail.outbox.clear()
    with TestCase.captureOnCommitCallbacks(execute=True):
        tasks.policy_requests_expiry_sweep_task()
    assert any("alice@example.com" in m.to for m in mail.outbox)
    request.refresh_from_db()
    assert request.expiry_reminded_at is not None


def test_access_starting_later_gives_nothing_before_its_start(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = timezone.now() + timedelta(hours=2)
    request = approve(asked(requester, role, starts_at=start), reviewer)
    assert request.status == "applied"
    assert request.expires_at == start + timedelta(hours=8)
    assert not may_use(requester, role)
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(hours=2, seconds=1))
    assert may_use(requester, role)


def test_an_approved_extension_leaves_no_gap(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = approve(asked(requester, role), reviewer)
    assert first.expires_at is not None
    later = first.expires_at + timedelta(days=1)
    with TestCase.captureOnCommitCallbacks(execute=True):
        extension = services.policy_request_extend(
            request_id=first.pk,
            requester=requester,
            expires_at=later,
            justification="Still on call.",
        )
    assert (extension.kind, extension.extends_id) == ("access", first.pk)
    assert may_use(requester, role)  # the old grant stands while the extension waits
    extension = approve(extension, reviewer)
    assert extension.status == "applied"
    old = AccessRule.objects.get(request=first)
    new = AccessRule.objects.get(request=extension)
    # The old grant ends exactly when the new one is in force.
    assert old.expires_at is not None
    assert new.starts_at is None or new.starts_at <= old.expires_at
    assert new.expires_at == later
    assert may_use(requester, role)
    first.refresh_from_db()
    assert first.status == "expired"
    assert not SessionRevocation.objects.exists()
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(hours=9))
    assert may_use(requester, role)


def test_the_duration_is_capped_per_account_and_permanent_only_where_allowed(
    requester: User, role: IamRole
) -> None:
    with pytest.raises(services.RequestInvalid) as too_long:
        asked(requester, role, duration=timedelta(days=8))
    assert "at most 7 days" in too_long.value.errors["duration"]
    with pytest.raises(services.RequestInvalid) as permanent:
        asked(requester, role, duration=None, permanent=True)
    assert "Permanent access" in permanent.value.errors["duration"]
    AwsAccount.objects.filter(pk=role.account_id).update(
        access_permanent_allowed=True, access_max_duration=timedelta(days=30)
    )
    role.account.refresh_from_db()
    assert asked(requester, role, duration=timedelta(days=20)).expires_at is not None


def test_a_permanent_grant_where_allowed_has_no_end(
    requester: User, reviewer: User, role: IamRole
) -> None:
    AwsAccount.objects.filter(pk=role.account_id).update(access_permanent_allowed=True)
    role.account.refresh_from_db()
    request = approve(asked(requester, role, duration=None, permanent=True), reviewer)
    assert request.expires_at is None
    assert AccessRule.objects.get(request=request).expires_at is None


def test_bad_input_is_refused_field_by_field(requester: User, role: IamRole) -> None:
    now = timezone.now()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"duration": None}, "duration"),
        ({"duration": timedelta(hours=1), "expires_at": now + timedelta(hours=2)}, "duration"),
        ({"duration": None, "expires_at": now - timedelta(hours=1)}, "expires_at"),
        ({"starts_at": now - timedelta(days=1)}, "starts_at"),
        ({"starts_at": now + timedelta(days=40)}, "starts_at"),
    ]
    for fields, key in cases:
        with pytest.raises(services.RequestInvalid) as refused:
            asked(requester, role, **fields)
        assert key in refused.value.errors, fields
    with pytest.raises(services.RequestInvalid) as no_reason:
        services.access_request_submit(
            requester=requester, role=role, justification=" ", duration=timedelta(hours=1)
        )
    assert "justification" in no_reason.value.errors


def test_a_second_request_for_the_same_role_is_refused_while_one_is_pending(
    requester: User, role: IamRole
) -> None:
    first = asked(requester, role)
    assert services.access_request_pending(user=requester, role=role) == first
    with pytest.raises(services.RequestInvalid) as refused:
        asked(requester, role)
    assert f"#{first.pk}" in refused.value.errors["role"]


def test_a_holder_of_a_grant_is_told_so_instead_of_asking_again(
    requester: User, reviewer: User, role: IamRole
) -> None:
    AwsAccount.objects.filter(pk=role.account_id).update(access_permanent_allowed=True)
    role.account.refresh_from_db()
    temporary = approve(asked(requester, role), reviewer)
    with pytest.raises(services.RequestInvalid) as refused:
        asked(requester, role, duration=None, permanent=True)
    assert f"through request #{temporary.pk}, until" in refused.value.errors["role"]
    assert "extend" in refused.value.errors["role"]

    services.access_grant_revoke(request_id=temporary.pk, actor=requester)
    permanent = approve(asked(requester, role, duration=None, permanent=True), reviewer)
    with pytest.raises(services.RequestInvalid) as again:
        asked(requester, role)
    assert again.value.errors["role"] == (
        f"You already hold access to this role through request #{permanent.pk}, with no end."
    )
    assert PolicyRequest.objects.filter(requester=requester, kind="access").count() == 2


def test_access_is_not_asked_for_as_a_change_of_another_request(
    requester: User, role: IamRole
) -> None:
    with pytest.raises(services.RequestInvalid) as refused:
        services.policy_request_changes_submit(
            requester=requester,
            role=role,
            changes=[{"type": "role_access_grant", "target_arn": role.arn, "payload": {}}],
            justification="Sneaky.",
        )
    assert "access request" in refused.value.errors["changes[0].type"]


def test_automatic_approval_only_where_a_policy_says_so_and_recorded(
    requester: User, admin_user: User, role: IamRole
) -> None:
    policy = ApprovalPolicy(
        name="short access",
        order=1,
        request_kind=ApprovalPolicy.Kind.ACCESS,
        max_duration=timedelta(hours=8),
        automatic=True,
    )
    services.approval_policy_save(policy=policy, actor=admin_user, reviewer_groups=[], accounts=[])
    short = asked(requester, role, duration=timedelta(hours=8))
    short.refresh_from_db()
    assert short.status == "applied"
    approval = short.approvals.get()
    assert (approval.automatic, approval.policy_name, approval.reviewer) == (
        True,
        "short access",
        None,
    )
    assert may_use(requester, role)
    services.access_grant_revoke(request_id=short.pk, actor=requester)
    longer = asked(requester, role, duration=timedelta(days=1))
    longer.refresh_from_db()
    assert longer.status == "pending"
    assert not longer.approvals.exists()


@pytest.mark.parametrize("who", ["holder", "reviewer", "admin"])
def test_a_grant_is_ended_by_its_holder_a_reviewer_or_an_admin(
    who: str, requester: User, reviewer: User, admin_user: User, role: IamRole
) -> None:
    request = approve(asked(requester, role), reviewer)
    actor = {"holder": requester, "reviewer": reviewer, "admin": admin_user}[who]
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.access_grant_revoke(request_id=request.pk, actor=actor, reason="Done.")
    request.refresh_from_db()
    assert request.status == "expired"
    assert request.events.filter(kind="revoked", actor=actor).exists()
    assert not may_use(requester, role)
    assert [s["Effect"] for s in deny_statements(role)] == ["Deny"]


def test_outsiders_cannot_end_a_grant(
    requester: User, reviewer: User, outsider: User, role: IamRole
) -> None:
    request = approve(asked(requester, role), reviewer)
    other = make_user("bob", "team-payments")
    for actor in (outsider, other):
        with pytest.raises(services.RequestActionForbidden):
            services.access_grant_revoke(request_id=request.pk, actor=actor)
    assert may_use(requester, role)


def test_an_approval_policys_duration_counts_from_the_start(
    requester: User, admin_user: User, role: IamRole
) -> None:
    services.approval_policy_save(
        policy=ApprovalPolicy(
            name="short access",
            order=1,
            request_kind=ApprovalPolicy.Kind.ACCESS,
            max_duration=timedelta(hours=8),
            automatic=True,
        ),
        actor=admin_user,
        reviewer_groups=[],
        accounts=[],
    )
    later = asked(requester, role, starts_at=timezone.now() + timedelta(days=2))
    later.refresh_from_db()
    assert later.approvals.get().automatic
    assert "at most 8:00:00" in later.approval_requirement["reason"]


def test_ending_a_grant_cancels_its_pending_extension(
    requester: User, reviewer: User, role: IamRole
) -> None:
    first = approve(asked(requester, role), reviewer)
    assert first.expires_at is not None
    extension = services.policy_request_extend(
        request_id=first.pk,
        requester=requester,
        expires_at=first.expires_at + timedelta(days=1),
        justification="Still on call.",
    )
    services.access_grant_revoke(request_id=first.pk, actor=reviewer)
    extension.refresh_from_db()
    assert extension.status == "cancelled"
    assert not may_use(requester, role)


def _extension(first: PolicyRequest, requester: User) -> PolicyRequest:
    assert first.expires_at is not None
    return services.policy_request_extend(
        request_id=first.pk,
        requester=requester,
        expires_at=first.expires_at + timedelta(days=1),
        justification="Still on call.",
    )


@pytest.mark.parametrize("state", ["approved", "failed"])
def test_ending_a_grant_cancels_an_extension_approved_but_not_applied(
    requester: User, reviewer: User, role: IamRole, state: str
) -> None:
    first = approve(asked(requester, role), reviewer)
    extension = _extension(first, requester)
    # Approved, its apply still queued (the on-commit task is not run).
    services.policy_request_approve(
        request_id=extension.pk, reviewer=reviewer, revision=revision_of_request(extension.pk)
    )
    if state == "failed":
        PolicyRequest.objects.filter(pk=extension.pk).update(status="failed")

    services.access_grant_revoke(request_id=first.pk, actor=reviewer, reason="Incident.")

    extension.refresh_from_db()
    assert extension.status == "cancelled"
    services.policy_request_apply(request_id=extension.pk)  # the queued task, or a retry
    extension.refresh_from_db()
    assert extension.status == "cancelled"
    assert not AccessRule.objects.filter(request=extension).exists()
    assert not may_use(requester, role)


def _extension_applying(
    requester: User, reviewer: User, role: IamRole
) -> tuple[PolicyRequest, PolicyRequest]:
    """A grant, and an extension of it that a worker has claimed and is applying."""
    first = approve(asked(requester, role), reviewer)
    extension = _extension(first, requester)
    PolicyRequest.objects.filter(pk=extension.pk).update(status="applying")
    return first, extension


def test_an_extension_applying_when_its_grant_is_revoked_grants_nothing(
    requester: User, reviewer: User, role: IamRole
) -> None:
    first, extension = _extension_applying(requester, reviewer, role)

    services.access_grant_revoke(request_id=first.pk, actor=reviewer)

    change = extension.changes.get()
    with pytest.raises(ChangeRefused, match="revoked"):
        change_apply(change=change, session=None)
    assert not AccessRule.objects.filter(request=extension).exists()
    assert not may_use(requester, role)


def test_an_extension_retried_after_its_grant_was_made_keeps_it(
    requester: User, reviewer: User, role: IamRole
) -> None:
    first, extension = _extension_applying(requester, reviewer, role)
    change = extension.changes.get()
    change_apply(change=change, session=None)  # the grant is made, then the worker dies
    PolicyRequest.objects.filter(pk=first.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_expire(request_id=first.pk)  # the old access ends meanwhile
    assert may_use(requester, role)

    change_apply(change=change, session=None)  # another worker takes over

    assert AccessRule.objects.get(request=extension).enabled
    assert may_use(requester, role)


def test_an_extension_granted_just_before_the_revocation_is_ended_with_it(
    requester: User, reviewer: User, role: IamRole
) -> None:
    first, extension = _extension_applying(requester, reviewer, role)
    change = extension.changes.get()
    change_apply(change=change, session=None)
    assert may_use(requester, role)

    services.access_grant_revoke(request_id=first.pk, actor=reviewer)

    assert not AccessRule.objects.get(request=extension).enabled
    assert not may_use(requester, role)
    assert extension.events.filter(kind="revoked").exists()


def test_an_extension_whose_access_is_revoked_while_it_applies_ends_expired(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = approve(asked(requester, role), reviewer)
    extension = _extension(first, requester)
    change_run = apply_service._change_run

    def revoked_meanwhile(*args: Any, **kwargs: Any) -> Any:
        done = change_run(*args, **kwargs)  # the extension's grant is made...
        services.access_grant_revoke(request_id=first.pk, actor=reviewer)  # ...then this
        return done

    monkeypatch.setattr(apply_service, "_change_run", revoked_meanwhile)

    extension = approve(extension, reviewer)

    # Not "applied" with nothing granted: the requester may ask for access again.
    assert extension.status == "expired"
    assert extension.changes.get().status == "reverted"
    assert not may_use(requester, role)
    monkeypatch.setattr(apply_service, "_change_run", change_run)
    assert asked(requester, role).status == "pending"


def test_an_extension_approved_after_its_access_expired_grants_nothing(
    requester: User, reviewer: User, role: IamRole
) -> None:
    first = approve(asked(requester, role), reviewer)
    extension = _extension(first, requester)
    PolicyRequest.objects.filter(pk=first.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_expire(request_id=first.pk)
    assert not may_use(requester, role)

    extension = approve(extension, reviewer)  # too late: it extends nothing now

    assert extension.status == "failed"
    assert not may_use(requester, role)


def test_a_grant_for_a_role_whose_path_holds_wildcards_is_for_that_role_only(
    requester: User, role: IamRole
) -> None:
    # IAM allows * ? [ in a path. Role names are unique in an account, so this pair
    # is only ever seen in an inventory that a sync has not caught up with yet.
    def synced(path: str) -> IamRole:
        return IamRole.objects.create(
            account=role.account,
            arn=f"arn:aws:iam::{role.account.account_id}:role/{path}/Admin",
            name="Admin",
            path=f"/{path}/",
            content_hash="x",
            synced_at=timezone.now(),
        )

    production, odd = synced("prod"), synced("*")
    access_grant_start(  # what applying the approved request does
        request_id=asked(requester, odd).pk,
        user=requester,
        role=odd,
        cli_only=False,
        starts_at=None,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    assert may_use(requester, odd)
    assert not may_use(requester, production)


def test_a_grant_that_has_ended_is_not_extended_before_the_sweep_comes(
    requester: User, reviewer: User, role: IamRole
) -> None:
    first = approve(asked(requester, role), reviewer)
    PolicyRequest.objects.filter(pk=first.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    with pytest.raises(services.RequestActionRefused, match="before it expires"):
        _extension(first, requester)


def test_one_extension_at_a_time_until_it_is_applied(
    requester: User, reviewer: User, role: IamRole
) -> None:
    first = approve(asked(requester, role), reviewer)
    extension = _extension(first, requester)
    services.policy_request_approve(  # approved, its apply not run yet
        request_id=extension.pk, reviewer=reviewer, revision=revision_of_request(extension.pk)
    )

    with pytest.raises(services.RequestActionRefused, match="being applied"):
        _extension(first, requester)


def test_access_granted_again_at_once_starts_when_the_last_deny_stops_applying(
    requester: User, reviewer: User, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = approve(asked(requester, role), reviewer)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.access_grant_revoke(request_id=first.pk, actor=requester)  # given up
    denied = SessionRevocation.objects.get()
    assert denied.issued_before > timezone.now()  # covers credentials still in flight

    again = approve(asked(requester, role), reviewer)

    # Credentials issued now would be denied for their whole life: none are.
    assert again.status == "applied"
    assert not may_use(requester, role)
    grant = AccessRule.objects.get(request=again)
    assert grant.starts_at is not None and grant.starts_at > denied.issued_before
    later = grant.starts_at + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert may_use(requester, role)


def test_reviewers_revoke_grants_in_the_admin_and_others_cannot(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(asked(requester, role), reviewer)
    admin_action(requester, "revoke_access", request)
    request.refresh_from_db()
    assert request.status == "applied"
    admin_action(reviewer, "revoke_access", request)
    request.refresh_from_db()
    assert request.status == "expired"
    assert request.events.filter(kind="revoked", actor=reviewer).exists()
    assert not may_use(requester, role)
