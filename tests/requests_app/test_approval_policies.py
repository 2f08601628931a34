"""Approval policies: who approves which requests (first match wins, the
accounts' rule otherwise), automatic approval, the snapshot a pending request
keeps, and the audit of every change to a policy."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from requests_app import services
from requests_app.models import (
    Approval,
    ApprovalPolicy,
    ApprovalPolicyChange,
    PolicyRequest,
    RequestEvent,
)
from requests_app.revision import revision_of_request
from tests.factories import (
    OTHER_DOCUMENT,
    READ_INVOICES,
    account_create,
    api_client,
    approve,
    client_for,
    flashed,
    kinds,
    make_user,
    policy_in_aws,
    requiring_two,
    role_in,
    submitted,
)

pytestmark = pytest.mark.django_db

EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def policy(
    admin: User,
    name: str,
    *,
    order: int = 100,
    accounts: list[AwsAccount] | None = None,
    groups: list[str] | None = None,
    **fields: Any,
) -> ApprovalPolicy:
    return services.approval_policy_save(
        policy=ApprovalPolicy(name=name, order=order, **fields),
        actor=admin,
        accounts=accounts or [],
        reviewer_groups=[Group.objects.get_or_create(name=g)[0] for g in groups or []],
    )


def submitted_temporary(
    user: User, role: IamRole, *, hours: float | None, document: dict[str, Any] = READ_INVOICES
) -> PolicyRequest:
    preview = services.policy_request_preview(
        role=role,
        document=document,
        justification="Looking into an incident.",
        policy_name="incident-read",
        expires_at=timezone.now() + timedelta(hours=hours) if hours is not None else None,
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = services.policy_request_submit(requester=user, preview=preview)
    request.refresh_from_db()
    return request


@pytest.fixture
def lead() -> User:
    """A reviewer in the group an approval policy names."""
    return make_user("lee", "security-reviewers", "payments-leads")


@pytest.fixture
def second_lead() -> User:
    return make_user("lena", "security-reviewers", "payments-leads")


# --- who may approve -------------------------------------------------------------------


def test_a_reviewer_outside_the_policys_groups_is_refused_everywhere(
    requester: User, reviewer: User, lead: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "payments leads", groups=["payments-leads"])
    request = submitted(requester, role)
    refusal = "Approval policy 'payments leads' lets only members of payments-leads approve"

    with pytest.raises(services.RequestActionForbidden, match=refusal):
        approve(request, reviewer)
    api = api_client(reviewer).post(
        f"/api/v1/requests/{request.pk}/approve",
        json.dumps({"revision": revision_of_request(request.pk)}),
        content_type="application/json",
    )
    assert api.status_code == 403
    assert refusal in api.json()["detail"]
    page = html.unescape(
        client_for(reviewer).get(reverse("request_detail", args=[request.pk])).content.decode()
    )
    assert refusal in page
    assert reverse("request_approve", args=[request.pk]) not in page
    posted = client_for(reviewer).post(
        reverse("request_approve", args=[request.pk]),
        {"revision": revision_of_request(request.pk)},
    )
    assert any(refusal in m for m in flashed(posted))
    assert not request.approvals.exists()

    assert approve(request, lead).status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES


def test_the_requester_never_approves_their_own_even_in_the_allowed_group(
    lead: User, second_lead: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "payments leads", groups=["payments-leads"])
    request = submitted(lead, role)
    with pytest.raises(services.RequestActionForbidden, match="Nobody approves their own"):
        approve(request, lead)
    assert not request.approvals.exists()
    assert approve(request, second_lead).status == PolicyRequest.Status.APPLIED


def test_a_policy_asks_for_distinct_approvals_of_its_groups(
    requester: User, lead: User, second_lead: User, reviewer: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "two leads", groups=["payments-leads"], approvals_required=2)
    request = submitted(requester, role)
    assert request.approvals_required == 2
    request = approve(request, lead)
    assert request.status == PolicyRequest.Status.PENDING
    with pytest.raises(services.RequestActionRefused, match="already approved"):
        approve(request, lead)
    with pytest.raises(services.RequestActionForbidden):
        approve(request, reviewer)
    assert approve(request, second_lead).status == PolicyRequest.Status.APPLIED
    assert kinds(request).count("approved") == 2


def test_apply_counts_only_approvals_from_the_policys_groups(
    requester: User, reviewer: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "payments leads", groups=["payments-leads"])
    request = submitted(requester, role)
    # An approval that got past the review some other way never reaches AWS.
    Approval.objects.create(request=request, reviewer=reviewer, revision=request.revision)
    PolicyRequest.objects.filter(pk=request.pk).update(status=PolicyRequest.Status.APPROVED)

    done = services.policy_request_apply(request_id=request.pk)

    assert done.status == PolicyRequest.Status.PENDING
    message = done.events.get(kind=RequestEvent.Kind.WITHDRAWN).message
    assert "from members of payments-leads; it has 0" in message


# --- which policy ----------------------------------------------------------------------


def test_the_first_enabled_matching_policy_in_order_wins(
    requester: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "switched off", order=1, enabled=False, approvals_required=5)
    policy(admin_user, "other roles", order=10, role_arn_pattern="*:role/billing-*")
    chosen = policy(
        admin_user, "payments roles", order=20, role_arn_pattern="PAYMENTS-*", approvals_required=3
    )
    policy(admin_user, "everything", order=30, approvals_required=1)

    request = submitted(requester, role)

    assert request.approval_policy == chosen
    assert request.approvals_required == 3
    requirement = request.approval_requirement
    assert requirement["policy"] == "payments roles"
    assert "the role matches PAYMENTS-*" in requirement["reason"]


def test_a_request_no_policy_matches_needs_what_its_accounts_require(
    requester: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "tagged only", role_tag="iamportal-approvers=group:payments-leads")
    request = submitted(requester, requiring_two(role))
    assert request.approval_policy is None
    assert request.approvals_required == 2
    assert request.approval_requirement["reason"].startswith("No approval policy matched")


def test_role_tags_and_request_kinds_decide_a_match(
    requester: User, admin_user: User, role: IamRole
) -> None:
    IamRole.objects.filter(pk=role.pk).update(tags={"iamportal-approvers": "group:payments-leads"})
    role.refresh_from_db()
    policy(admin_user, "access only", order=1, request_kind=ApprovalPolicy.Kind.ACCESS)
    tagged = policy(
        admin_user,
        "tagged",
        order=2,
        role_tag="IAMPORTAL-approvers=group:payments-leads",
        request_kind=ApprovalPolicy.Kind.CHANGE_TYPES,
        change_types=["inline_policy_put"],
    )
    assert submitted(requester, role).approval_policy == tagged


def test_an_access_request_is_one_holding_a_role_access_grant() -> None:
    def facts(*types: str) -> services.RequestFacts:
        return services.RequestFacts(
            account_ids=frozenset({"111111111111"}),
            role_arn="arn:aws:iam::111111111111:role/ReadOnly",
            role_tags={},
            change_types=types,
            expires_at=None,
            risk="none",
        )

    access = ApprovalPolicy(name="access", request_kind=ApprovalPolicy.Kind.ACCESS)
    change = ApprovalPolicy(name="change", request_kind=ApprovalPolicy.Kind.PERMISSION)
    grant = facts(services.ACCESS_CHANGE_TYPE)
    put = facts("inline_policy_put")
    assert services.approval_policy_reasons(access, grant, accounts={}) is not None
    assert services.approval_policy_reasons(access, put, accounts={}) is None
    assert services.approval_policy_reasons(change, put, accounts={}) is not None
    assert services.approval_policy_reasons(change, grant, accounts={}) is None


# --- automatic approval ----------------------------------------------------------------


def test_read_only_access_to_non_production_for_up_to_8_hours_is_automatic(
    requester: User, reviewer: User, admin_user: User, account: AwsAccount
) -> None:
    staging = account_create("acme-staging", environment="staging")
    dev = account_create("acme-dev", environment="dev")
    readonly = role_in(staging, "readonly-support")
    policy(
        admin_user,
        "read-only non-prod",
        accounts=[staging, dev],
        role_arn_pattern="readonly-*",
        max_duration=timedelta(hours=8),
        max_severity=ApprovalPolicy.Severity.INFO,
        automatic=True,
    )

    request = submitted_temporary(requester, readonly, hours=4)

    assert request.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(readonly, "incident-read") == READ_INVOICES
    approval = request.approvals.get()
    assert approval.automatic and approval.reviewer is None
    assert approval.policy_name == "read-only non-prod"
    event = request.events.get(kind=RequestEvent.Kind.APPROVED)
    assert event.actor is None
    assert "read-only non-prod" in event.message
    assert kinds(request)[:3] == ["submitted", "approved", "applying"]
    told = [m.body for m in mail.outbox if requester.email in m.to]
    assert any(
        'Approval policy "read-only non-prod" approved your request' in body for body in told
    )
    page = client_for(requester).get(reverse("request_detail", args=[request.pk])).content
    assert "Approved automatically, without a reviewer." in page.decode()
    assert "read-only non-prod" in page.decode()

    # Longer than 8 hours, permanent, or in production: a reviewer decides.
    longer = submitted_temporary(requester, role_in(staging, "readonly-ops"), hours=12)
    permanent = submitted_temporary(requester, role_in(dev, "readonly-dev"), hours=None)
    prod = submitted_temporary(requester, role_in(account, "readonly-prod"), hours=4)
    for waiting in (longer, permanent, prod):
        assert waiting.status == PolicyRequest.Status.PENDING
        assert waiting.approval_policy is None
        assert not waiting.approvals.exists()


def test_automatic_approval_never_applies_to_error_findings(
    requester: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "anything goes", order=1, automatic=True)
    careful = policy(admin_user, "careful", order=2, approvals_required=2)
    preview = services.policy_request_preview(
        role=role, document=EVERYTHING, justification="Break glass.", policy_name="all"
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = services.policy_request_submit(
            requester=requester, preview=preview, findings_acknowledgement="Incident 42."
        )
    request.refresh_from_db()
    assert request.risk == PolicyRequest.Risk.ERROR
    assert request.status == PolicyRequest.Status.PENDING
    assert request.approval_policy == careful
    assert not request.approvals.exists()


def test_an_edit_chooses_the_policy_again(
    requester: User, reviewer: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "quiet", order=1, max_severity=ApprovalPolicy.Severity.NONE, automatic=True)
    request = submitted(requester, role, policy_name=None, document=OTHER_DOCUMENT)
    assert request.risk != PolicyRequest.Risk.NONE
    assert request.status == PolicyRequest.Status.PENDING
    assert request.approval_policy is None

    with TestCase.captureOnCommitCallbacks(execute=True):
        services.change_edit(
            change_id=request.changes.get().pk,
            editor=requester,
            payload={
                "policy_name": request.changes.get().payload["policy_name"],
                "document": READ_INVOICES,
            },
        )
    request.refresh_from_db()
    assert request.risk == PolicyRequest.Risk.NONE
    assert request.approval_policy is not None
    assert request.status == PolicyRequest.Status.APPLIED


# --- snapshots and the audit -----------------------------------------------------------


def test_a_pending_request_keeps_the_requirement_it_was_given(
    requester: User, lead: User, admin_user: User, role: IamRole
) -> None:
    leads = policy(admin_user, "payments leads", groups=["payments-leads"])
    request = submitted(requester, role)
    leads.approvals_required = 3
    services.approval_policy_save(
        policy=leads,
        actor=admin_user,
        accounts=[],
        reviewer_groups=[Group.objects.get_or_create(name="nobody")[0]],
    )
    request.refresh_from_db()
    assert request.approvals_required == 1
    assert request.approval_requirement["reviewer_groups"] == ["payments-leads"]
    assert approve(request, lead).status == PolicyRequest.Status.APPLIED


def test_the_request_api_says_which_policy_applies_and_why(
    requester: User, admin_user: User, role: IamRole
) -> None:
    policy(admin_user, "payments leads", groups=["payments-leads"], approvals_required=2)
    request = submitted(requester, role)
    body = api_client(requester).get(f"/api/v1/requests/{request.pk}").json()
    assert body["approval_policy"]["policy"] == "payments leads"
    assert body["approval_policy"]["reviewer_groups"] == ["payments-leads"]
    assert body["approval_policy"]["approvals_required"] == 2
    assert "first that matches" in body["approval_policy"]["reason"]


def test_policy_changes_in_the_admin_are_audited(
    admin_user: User, reviewer: User, account: AwsAccount
) -> None:
    leads = Group.objects.create(name="payments-leads")
    admin = client_for(admin_user)
    form = {
        "name": "prod leads",
        "order": "10",
        "enabled": "on",
        "accounts": [str(account.pk)],
        "role_arn_pattern": "",
        "role_tag": "",
        "request_kind": "",
        "change_types": "[]",
        "max_duration": "8:00:00",
        "max_severity": "warning",
        "reviewer_groups": [str(leads.pk)],
        "approvals_required": "2",
    }
    added = admin.post(reverse("admin:requests_app_approvalpolicy_add"), form)
    assert added.status_code == 302
    created = ApprovalPolicy.objects.get(name="prod leads")
    changed = admin.post(
        reverse("admin:requests_app_approvalpolicy_change", args=[created.pk]),
        {**form, "approvals_required": "3"},
    )
    assert changed.status_code == 302
    deleted = admin.post(
        reverse("admin:requests_app_approvalpolicy_delete", args=[created.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 302

    history = list(ApprovalPolicyChange.objects.order_by("id"))
    assert [(h.action, h.actor) for h in history] == [
        ("created", admin_user),
        ("changed", admin_user),
        ("deleted", admin_user),
    ]
    first: dict[str, Any] = history[0].after or {}
    before: dict[str, Any] = history[1].before or {}
    after: dict[str, Any] = history[1].after or {}
    assert history[0].before is None
    assert first["accounts"] == [account.account_id]
    assert first["reviewer_groups"] == ["payments-leads"]
    assert first["max_duration"] == "8:00:00"
    assert (before["approvals_required"], after["approvals_required"]) == (2, 3)
    assert history[2].after is None and history[2].policy_name == "prod leads"

    # Reviewers read the audit; nobody edits it, and only admins edit policies.
    audit = reverse("admin:requests_app_approvalpolicychange_change", args=[history[0].pk])
    assert client_for(reviewer).get(audit).status_code == 200
    assert client_for(reviewer).post(audit, {}).status_code == 403
    assert admin.get(reverse("admin:requests_app_approvalpolicychange_add")).status_code == 403
    policies = reverse("admin:requests_app_approvalpolicy_add")
    assert client_for(reviewer).get(policies).status_code == 403


def test_the_admin_refuses_unknown_change_types(admin_user: User) -> None:
    response = client_for(admin_user).post(
        reverse("admin:requests_app_approvalpolicy_add"),
        {
            "name": "typo",
            "order": "1",
            "request_kind": "change_types",
            "change_types": '["inline_policy_putt"]',
            "max_severity": "",
            "approvals_required": "1",
        },
    )
    assert response.status_code == 200
    assert "Unknown change types: inline_policy_putt" in response.content.decode()
    assert not ApprovalPolicy.objects.exists()


def test_the_admin_saves_a_policy_with_the_change_types_left_empty(admin_user: User) -> None:
    response = client_for(admin_user).post(
        reverse("admin:requests_app_approvalpolicy_add"),
        {"name": "anything", "order": "1", "request_kind": "", "approvals_required": "1"},
    )
    assert response.status_code == 302
    created = ApprovalPolicy.objects.get(name="anything")
    assert created.change_types == []
    assert ApprovalPolicyChange.objects.get().actor == admin_user


# --- who is told ------------------------------------------------------------------------


def test_a_new_request_is_told_only_to_the_reviewers_its_policy_lets_approve(
    requester: User, reviewer: User, lead: User, admin_user: User, role: IamRole, settings: Any
) -> None:
    settings.IAMPORTAL_NOTIFICATIONS = True
    policy(admin_user, "payments leads", groups=["payments-leads"])
    mail.outbox.clear()

    with TestCase.captureOnCommitCallbacks(execute=True):
        submitted(requester, role)

    assert sorted(a for m in mail.outbox for a in m.to) == ["lee@example.com"]


def test_a_policy_whose_groups_nobody_can_be_written_to_tells_every_reviewer(
    requester: User, reviewer: User, admin_user: User, role: IamRole, settings: Any
) -> None:
    settings.IAMPORTAL_NOTIFICATIONS = True
    policy(admin_user, "nobody yet", groups=["payments-leads"])
    mail.outbox.clear()

    with TestCase.captureOnCommitCallbacks(execute=True):
        submitted(requester, role)

    assert sorted(a for m in mail.outbox for a in m.to) == ["admin@example.com", "rita@example.com"]


def test_without_a_policy_every_reviewer_is_told(
    requester: User, reviewer: User, lead: User, admin_user: User, role: IamRole, settings: Any
) -> None:
    settings.IAMPORTAL_NOTIFICATIONS = True

    with TestCase.captureOnCommitCallbacks(execute=True):
        submitted(requester, role)

    assert sorted(a for m in mail.outbox for a in m.to) == [
        "admin@example.com",
        "lee@example.com",
        "rita@example.com",
    ]


# --- what deleting an account or a group would do to a policy --------------------------


def _deleted_in_the_admin(user: User, model: str, obj: Any, *, bulk: bool) -> Any:
    admin = client_for(user)
    if bulk:
        return admin.post(
            reverse(f"admin:{model}_changelist"),
            {"action": "delete_selected", "_selected_action": [str(obj.pk)], "post": "yes"},
        )
    return admin.post(reverse(f"admin:{model}_delete", args=[obj.pk]), {"post": "yes"})


@pytest.mark.parametrize("bulk", [False, True])
def test_the_only_account_of_a_policy_is_not_deleted_from_under_it(
    admin_user: User, bulk: bool
) -> None:
    sandbox = AwsAccount.objects.create(account_id="999999999999", name="sandbox")
    staging = AwsAccount.objects.create(account_id="888888888888", name="staging")
    policy(
        admin_user,
        "sandbox self-service",
        accounts=[sandbox],
        automatic=True,
        request_kind=ApprovalPolicy.Kind.ACCESS,
    )
    policy(admin_user, "non-production", accounts=[sandbox, staging], groups=["payments-leads"])

    refused = _deleted_in_the_admin(admin_user, "accounts_awsaccount", sandbox, bulk=bulk)

    # Without its one account, the automatic policy would match every account.
    assert refused.status_code == 200
    assert "names no other account" in html.unescape(refused.content.decode())
    assert AwsAccount.objects.filter(pk=sandbox.pk).exists()

    deleted = _deleted_in_the_admin(admin_user, "accounts_awsaccount", staging, bulk=bulk)

    assert deleted.status_code == 302
    assert not AwsAccount.objects.filter(pk=staging.pk).exists()
    wider = ApprovalPolicy.objects.get(name="non-production")
    assert [a.pk for a in wider.accounts.all()] == [sandbox.pk]


@pytest.mark.parametrize("bulk", [False, True])
def test_the_only_reviewer_group_of_a_policy_is_not_deleted_from_under_it(
    admin_user: User, superuser: User, bulk: bool
) -> None:
    policy(admin_user, "prod leads", groups=["payments-leads"])
    policy(admin_user, "either", groups=["payments-leads", "platform-leads"])
    leads = Group.objects.get(name="payments-leads")
    platform = Group.objects.get(name="platform-leads")

    refused = _deleted_in_the_admin(superuser, "auth_group", leads, bulk=bulk)

    # Without its one group, any reviewer could approve what the policy covers.
    assert refused.status_code == 200
    assert "names no other reviewer group" in html.unescape(refused.content.decode())
    assert Group.objects.filter(pk=leads.pk).exists()

    deleted = _deleted_in_the_admin(superuser, "auth_group", platform, bulk=bulk)

    assert deleted.status_code == 302
    assert not Group.objects.filter(pk=platform.pk).exists()
