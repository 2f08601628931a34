"""Review and apply: who may approve, reject, cancel, comment and retry, and what
an approved request does in AWS."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from iamportal.models import JobStatus
from requests_app import services, tasks
from requests_app.models import Change, Comment, PolicyRequest, RequestEvent
from tests.factories import (
    ECS_TRUST,
    OTHER_DOCUMENT,
    READ_INVOICES,
    admin_action,
    admin_iam,
    approve,
    client_for,
    flashed,
    kinds,
    policy_in_aws,
    role_in,
    submitted,
)

pytestmark = pytest.mark.django_db


def post(client: Client, name: str, request: PolicyRequest, **data: str) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(reverse(name, args=[request.pk]), data)


# --- approve and apply ----------------------------------------------------------------


def test_an_approved_request_is_applied_in_aws_and_the_role_refreshed(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(submitted(requester, role), reviewer)
    assert request.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    change = request.changes.get()
    assert change.status == Change.Status.APPLIED
    assert change.applied_at is not None
    assert change.error == ""
    role.refresh_from_db()
    assert role.inline_policies["invoices-read"] == READ_INVOICES
    assert kinds(request) == ["submitted", "approved", "applying", "applied"]
    approved = request.events.get(kind=RequestEvent.Kind.APPROVED)
    assert approved.actor == reviewer
    assert approved.data == {
        "self_approval": False,
        "approvals": 1,
        "required": 1,
        "revision": request.revision,
    }
    assert request.approvals.get().revision == request.revision
    assert JobStatus.objects.get(name="requests_app.apply").last_success_at is not None


def test_a_reviewer_approves_on_the_request_page(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    client = client_for(reviewer)
    opened = client.get(reverse("request_detail", args=[request.pk]))
    page = opened.content.decode()
    assert reverse("request_approve", args=[request.pk]) in page
    assert reverse("request_reject", args=[request.pk]) in page
    revision = opened.context["revision"]
    assert f'name="revision" value="{revision}"' in page
    response = post(client, "request_approve", request, revision=revision)
    assert response.status_code == 302
    assert response["Location"] == reverse("request_detail", args=[request.pk])
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "Applied" in page
    assert reverse("request_approve", args=[request.pk]) not in page


def test_a_delete_change_removes_the_inline_policy(
    requester: User, reviewer: User, role: IamRole
) -> None:
    admin_iam(role.account.account_id).put_role_policy(
        RoleName=role.name, PolicyName="old", PolicyDocument=json.dumps(OTHER_DOCUMENT)
    )
    request = submitted(requester, role)
    request.changes.update(type=Change.Type.INLINE_POLICY_DELETE, payload={"policy_name": "old"})
    assert approve(request, reviewer).status == PolicyRequest.Status.APPLIED
    iam = admin_iam(role.account.account_id)
    assert iam.list_role_policies(RoleName=role.name)["PolicyNames"] == []


def test_a_second_approval_is_refused_and_nothing_is_applied_twice(
    requester: User, reviewer: User, admin_user: User, role: IamRole
) -> None:
    request = approve(submitted(requester, role), reviewer)
    with pytest.raises(services.RequestActionRefused, match="only pending requests"):
        approve(request, admin_user)
    assert kinds(request).count("approved") == 1
    assert kinds(request).count("applied") == 1


def test_the_apply_task_run_twice_applies_once(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    with TestCase.captureOnCommitCallbacks(execute=False):
        services.policy_request_approve(
            request_id=request.pk, reviewer=reviewer, revision=request.revision
        )
    tasks.policy_request_apply_task(request.pk)
    # Someone edits the policy in AWS; a second delivery of the task must not undo it.
    admin_iam(role.account.account_id).put_role_policy(
        RoleName=role.name, PolicyName="invoices-read", PolicyDocument=json.dumps(OTHER_DOCUMENT)
    )
    tasks.policy_request_apply_task(request.pk)
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == OTHER_DOCUMENT
    assert kinds(request).count("applying") == 1
    assert kinds(request).count("applied") == 1


def test_a_pending_request_is_never_applied(requester: User, role: IamRole) -> None:
    request = submitted(requester, role)
    assert services.policy_request_apply(request_id=request.pk).status == "pending"
    assert (
        admin_iam(role.account.account_id).list_role_policies(RoleName=role.name)["PolicyNames"]
        == []
    )


# --- separation of duties ---------------------------------------------------------------


def test_it_rejects_self_approval_in_the_service(reviewer: User, role: IamRole) -> None:
    request = submitted(reviewer, role)
    with pytest.raises(services.RequestActionRefused, match="own request"):
        approve(request, reviewer)
    assert request.status == PolicyRequest.Status.PENDING
    assert kinds(request) == ["submitted"]


def test_it_rejects_self_approval_on_the_page(reviewer: User, role: IamRole) -> None:
    request = submitted(reviewer, role)
    response = post(client_for(reviewer), "request_approve", request, revision=request.revision)
    assert response.status_code == 302
    assert any("own request" in m for m in flashed(response))
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert kinds(request) == ["submitted"]


def admin_approve(user: User, *requests: PolicyRequest) -> Any:
    """The admin's approve action: the confirmation page, then its form posted as is."""
    confirmation = admin_action(user, "approve", *requests)
    assert confirmation.status_code == 200
    revisions = {
        f"revision_{item['request'].pk}": item["revision"] for item in confirmation.context["shown"]
    }
    return admin_action(user, "approve", *requests, post="yes", **revisions)


def test_it_rejects_self_approval_in_the_admin(
    admin_user: User, requester: User, role: IamRole
) -> None:
    own = submitted(admin_user, role)
    theirs = submitted(requester, role, policy_name="theirs")
    response = admin_approve(admin_user, own, theirs)
    assert response.status_code == 302
    assert any(f"#{own.pk}: Nobody approves their own request" in m for m in flashed(response))
    own.refresh_from_db()
    theirs.refresh_from_db()
    assert own.status == PolicyRequest.Status.PENDING
    assert theirs.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "theirs") == READ_INVOICES


def test_admins_reject_in_the_admin_with_a_recorded_reason(
    reviewer: User, requester: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    assert admin_action(reviewer, "reject", request).status_code == 302
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.REJECTED
    event = request.events.get(kind=RequestEvent.Kind.REJECTED)
    assert (event.actor, event.message) == (reviewer, "Rejected in the admin.")


def test_status_is_read_only_in_the_admin(reviewer: User, requester: User, role: IamRole) -> None:
    request = submitted(requester, role)
    client = client_for(reviewer)
    url = reverse("admin:requests_app_policyrequest_change", args=[request.pk])
    client.post(url, {"status": "applied"})
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING


def test_an_admin_self_approves_only_when_the_setting_allows_it_and_it_is_recorded(
    admin_user: User, reviewer: User, role: IamRole, settings: Any
) -> None:
    request = submitted(admin_user, role)
    with pytest.raises(services.RequestActionRefused):
        approve(request, admin_user)
    settings.IAMPORTAL_ALLOW_ADMIN_SELF_APPROVAL = True
    own_by_reviewer = submitted(reviewer, role, policy_name="reviewers-own")
    with pytest.raises(services.RequestActionRefused):
        approve(own_by_reviewer, reviewer)  # the setting is for admins only
    request = approve(request, admin_user)
    assert request.status == PolicyRequest.Status.APPLIED
    event = request.events.get(kind=RequestEvent.Kind.APPROVED)
    assert event.actor == admin_user
    assert event.data == {
        "self_approval": True,
        "approvals": 1,
        "required": 1,
        "revision": request.revision,
    }
    page = client_for(admin_user).get(reverse("request_detail", args=[request.pk]))
    assert "Self-approval" in page.content.decode()


@pytest.mark.parametrize("member", ["requester", "outsider"])
def test_a_non_reviewer_cannot_approve_reject_or_retry_anywhere(
    member: str, requester: User, role: IamRole, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(member)
    pending = submitted(requester, role)
    client = client_for(user)
    for name in ("request_approve", "request_reject", "request_retry"):
        data = {"reason": "fine", "revision": pending.revision}
        assert post(client, name, pending, **data).status_code == 404
    assert client.get(reverse("request_queue")).status_code == 404
    with pytest.raises(services.RequestActionRefused, match="Only reviewers"):
        services.policy_request_approve(
            request_id=pending.pk, reviewer=user, revision=pending.revision
        )
    with pytest.raises(services.RequestActionRefused, match="Only reviewers"):
        services.policy_request_reject(request_id=pending.pk, reviewer=user, reason="no")
    with pytest.raises(services.RequestActionRefused, match="Only reviewers"):
        services.policy_request_retry(request_id=pending.pk, reviewer=user)
    user.is_staff = True  # even with access to the admin site
    user.save(update_fields=["is_staff"])
    admin_action(user, "approve", pending)
    admin_action(
        user, "approve", pending, post="yes", **{f"revision_{pending.pk}": pending.revision}
    )
    pending.refresh_from_db()
    assert pending.status == PolicyRequest.Status.PENDING
    assert kinds(pending) == ["submitted"]


def test_an_outsider_cannot_see_or_touch_a_request(
    outsider: User, requester: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    client = client_for(outsider)
    response = client.get(reverse("request_detail", args=[request.pk]))
    assert response.status_code == 404
    assert "Monthly invoice export" not in response.content.decode()
    for name in ("request_comment", "request_cancel"):
        assert post(client, name, request, body="hello").status_code == 404
    with pytest.raises(services.RequestActionRefused):
        services.policy_request_comment(request_id=request.pk, author=outsider, body="hello")
    assert not Comment.objects.exists()
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING


def test_the_anonymous_are_sent_to_sign_in(
    anonymous: Client, requester: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    change = request.changes.get()
    urls = [
        reverse(name, args=[request.pk])
        for name in (
            "request_approve",
            "request_reject",
            "request_retry",
            "request_cancel",
            "request_comment",
            "request_extend",
        )
    ]
    urls.append(reverse("change_edit", args=[request.pk, change.pk]))
    for url in urls:
        response = anonymous.post(url, {"payload": "{}", "extend_by": "7d"})
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login"))
    for url in (reverse("request_queue"), reverse("request_detail", args=[request.pk])):
        assert anonymous.get(url).status_code == 302
    change.refresh_from_db()
    assert change.payload["policy_name"] == "invoices-read"
    assert not PolicyRequest.objects.filter(extends=request).exists()
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING


# --- reject, cancel, comment ---------------------------------------------------------------


def test_a_rejection_needs_a_reason(requester: User, reviewer: User, role: IamRole) -> None:
    request = submitted(requester, role)
    with pytest.raises(services.RequestActionRefused, match="reason"):
        services.policy_request_reject(request_id=request.pk, reviewer=reviewer, reason="  ")
    client = client_for(reviewer)
    response = post(client, "request_reject", request, reason="")
    assert any("reason" in m for m in flashed(response))
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    post(client, "request_reject", request, reason="Too broad: scope it to one prefix.")
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.REJECTED
    assert request.changes.get().status == Change.Status.CANCELLED
    page = client_for(requester).get(reverse("request_detail", args=[request.pk]))
    assert "Too broad: scope it to one prefix." in page.content.decode()
    assert services.policy_request_apply(request_id=request.pk).status == "rejected"


def test_only_the_requester_cancels_and_only_while_pending(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    response = post(client_for(reviewer), "request_cancel", request)
    assert any("Only the requester" in m for m in flashed(response))
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    client = client_for(requester)
    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert reverse("request_cancel", args=[request.pk]) in page
    assert reverse("request_approve", args=[request.pk]) not in page
    post(client, "request_cancel", request)
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.CANCELLED
    assert request.changes.get().status == Change.Status.CANCELLED
    assert request.events.get(kind=RequestEvent.Kind.CANCELLED).actor == requester
    with pytest.raises(services.RequestActionRefused, match="only pending requests"):
        approve(request, reviewer)
    with pytest.raises(services.RequestActionRefused, match="only pending requests"):
        services.policy_request_cancel(request_id=request.pk, requester=requester)


def test_the_requester_and_reviewers_comment_on_the_timeline(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    post(client_for(requester), "request_comment", request, body="Needed by Friday.")
    post(client_for(reviewer), "request_comment", request, body="Which prefix?")
    response = post(client_for(reviewer), "request_comment", request, body="   ")
    assert any("comment is required" in m for m in flashed(response))
    assert list(Comment.objects.values_list("body", flat=True)) == [
        "Needed by Friday.",
        "Which prefix?",
    ]
    page = client_for(requester).get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "Needed by Friday." in page
    assert "Which prefix?" in page
    assert kinds(request) == ["submitted", "commented", "commented"]


# --- failure and retry ----------------------------------------------------------------------


def test_a_change_aws_rejects_fails_the_request_with_the_error_shown(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    ghost = role_in(account, "reports-job", in_aws=False)
    request = approve(submitted(requester, ghost), reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    change = request.changes.get()
    assert change.status == Change.Status.FAILED
    assert change.error.startswith("NoSuchEntity")
    assert change.applied_at is None
    failed = request.events.get(kind=RequestEvent.Kind.FAILED)
    assert failed.message == change.error
    page = client_for(requester).get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "NoSuchEntity" in page
    assert "Failed" in page
    reviewer_page = client_for(reviewer).get(reverse("request_detail", args=[request.pk]))
    assert reverse("request_retry", args=[request.pk]) in reviewer_page.content.decode()


def test_a_retry_after_the_fix_applies_only_what_was_not_applied(
    requester: User, reviewer: User, role: IamRole
) -> None:
    ghost = role_in(role.account, "reports-job", in_aws=False)
    request = submitted(requester, role)
    Change.objects.create(
        request=request,
        position=1,
        type=Change.Type.INLINE_POLICY_PUT,
        target_arn=ghost.arn,
        account_id=role.account.account_id,
        payload={"policy_name": "reports", "document": OTHER_DOCUMENT},
    )
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    first, second = request.changes.all()
    assert (first.status, second.status) == (Change.Status.APPLIED, Change.Status.FAILED)
    applied_at = first.applied_at

    # The fix: the role now exists. Meanwhile the first policy was edited in AWS,
    # which a retry must leave alone.
    iam = admin_iam(role.account.account_id)
    iam.create_role(RoleName="reports-job", AssumeRolePolicyDocument=ECS_TRUST)
    iam.put_role_policy(
        RoleName=role.name, PolicyName="invoices-read", PolicyDocument=json.dumps(OTHER_DOCUMENT)
    )
    with pytest.raises(services.RequestActionRefused, match="Only reviewers"):
        services.policy_request_retry(request_id=request.pk, reviewer=requester)
    post(client_for(reviewer), "request_retry", request)
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    first, second = request.changes.all()
    assert (first.status, second.status) == (Change.Status.APPLIED, Change.Status.APPLIED)
    assert first.applied_at == applied_at
    assert second.error == ""
    assert policy_in_aws(ghost, "reports") == OTHER_DOCUMENT
    assert policy_in_aws(role, "invoices-read") == OTHER_DOCUMENT
    assert kinds(request) == [
        "submitted",
        "approved",
        "applying",
        "failed",
        "retried",
        "applying",
        "applied",
    ]
    with pytest.raises(services.RequestActionRefused, match="only failed requests"):
        services.policy_request_retry(request_id=request.pk, reviewer=reviewer)


# --- the review queue -------------------------------------------------------------------------


def test_the_review_queue_lists_pending_requests_for_reviewers_with_filters(
    requester: User, reviewer: User, admin_user: User, role: IamRole
) -> None:
    old = submitted(requester, role)
    PolicyRequest.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=4))
    new = submitted(admin_user, role, policy_name="admins")
    done = submitted(requester, role, policy_name="done")
    services.policy_request_cancel(request_id=done.pk, requester=requester)
    client = client_for(reviewer)

    def listed(**filters: str) -> list[int]:
        response = client.get(reverse("request_queue"), filters)
        assert response.status_code == 200
        return [item.pk for item in response.context["page"].object_list]

    assert listed() == [old.pk, new.pk]
    assert listed(requester="ALI") == [old.pk]
    assert listed(age="3") == [old.pk]
    assert listed(age="7") == []
    assert listed(account=role.account.account_id) == [old.pk, new.pk]
    assert listed(account="999999999999") == []
    assert listed(age="bogus", page="x") == [old.pk, new.pk]
    assert client_for(admin_user).get(reverse("request_queue")).status_code == 200


# --- error findings: acknowledged at submit and at approval -----------------------------

PASS_ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}],
}
RUN_INSTANCES = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*"}],
}


@pytest.fixture
def passer(role: IamRole) -> IamRole:
    """A role that may already pass roles: running instances would escalate."""
    role.inline_policies = {"deploy": PASS_ROLE}
    role.save(update_fields=["inline_policies"])
    return role


def api_post(user: User, path: str, body: Any) -> Any:
    from iamportal.services import api_token_create

    _, raw = api_token_create(user=user, name="script", expires_in_days=1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(path, json.dumps(body), content_type="application/json")


def run_instances_body(role: IamRole, **extra: Any) -> dict[str, Any]:
    return {
        "role": role.arn,
        "changes": [
            {
                "type": "inline_policy_put",
                "payload": {"policy_name": "ci", "document": RUN_INSTANCES},
            }
        ],
        "justification": "CI agents.",
        **extra,
    }


def escalating(requester: User, role: IamRole) -> PolicyRequest:
    preview = services.policy_request_preview(
        role=role, document=RUN_INSTANCES, justification="CI agents.", policy_name="ci"
    )
    return services.policy_request_submit(
        requester=requester, preview=preview, findings_acknowledgement="CI needs it."
    )


def test_the_api_refuses_error_findings_without_an_acknowledgement(
    requester: User, passer: IamRole
) -> None:
    path = reverse("api_request_changes_create")
    dry = api_post(requester, path, run_instances_body(passer, dry_run=True))
    assert dry.status_code == 200
    assert dry.json()["acknowledgement_required"] is True
    assert "escalation-together" in [f["code"] for f in dry.json()["findings"]]

    refused = api_post(requester, path, run_instances_body(passer))

    assert refused.status_code == 400
    assert "error-level finding" in refused.json()["errors"]["findings_acknowledgement"][0]
    assert not PolicyRequest.objects.exists()

    created = api_post(
        requester, path, run_instances_body(passer, findings_acknowledgement="CI agents only.")
    )

    assert created.status_code == 201
    assert created.json()["risk"] == "error"
    request = PolicyRequest.objects.get()
    submitted_event = request.events.get(kind="submitted")
    assert submitted_event.data["acknowledgement"]["reason"] == "CI agents only."
    assert submitted_event.data["acknowledgement"]["findings"][0]["code"] == "escalation-together"


def test_the_document_api_refuses_error_findings_without_an_acknowledgement(
    requester: User, passer: IamRole
) -> None:
    body = {
        "role": passer.arn,
        "document": RUN_INSTANCES,
        "justification": "CI agents.",
        "policy_name": "ci",
    }
    refused = api_post(requester, reverse("api_request_create"), body)
    assert refused.status_code == 400
    assert "findings_acknowledgement" in refused.json()["errors"]

    body["findings_acknowledgement"] = "CI agents only."
    assert api_post(requester, reverse("api_request_create"), body).status_code == 201


def test_the_wizard_refuses_error_findings_without_an_acknowledgement(
    requester: User, passer: IamRole
) -> None:
    client = client_for(requester)
    client.post(
        reverse("request_editor", args=[passer.pk]), {"document": json.dumps(RUN_INSTANCES)}
    )
    url = reverse("request_review", args=[passer.pk])
    fields = {"justification": "CI agents.", "expiry": "", "policy_name": "ci", "action": "submit"}

    page = client.get(url).content.decode()
    assert "Together with what the role already has" in page
    assert 'name="acknowledge"' in page
    refused = client.post(url, fields)
    assert refused.status_code == 400
    assert "error-level finding" in refused.context["form"].errors["acknowledge"][0]
    no_reason = client.post(url, {**fields, "acknowledge": "on"})
    assert no_reason.status_code == 400
    assert not PolicyRequest.objects.exists()

    accepted = client.post(
        url, {**fields, "acknowledge": "on", "acknowledgement_reason": "CI agents only."}
    )

    assert accepted.status_code == 302
    request = PolicyRequest.objects.get()
    assert request.risk == "error"
    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "Error findings acknowledged" in page
    assert "CI agents only." in page


def test_approving_error_findings_needs_an_acknowledgement_on_the_page(
    requester: User, reviewer: User, passer: IamRole
) -> None:
    request = escalating(requester, passer)
    client = client_for(reviewer)
    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert 'name="findings_acknowledged"' in page
    assert "Risk: error" in page

    refused = post(client, "request_approve", request, revision=request.revision)

    assert refused.status_code == 400
    assert "Tick the box" in refused.content.decode()
    assert not request.approvals.exists()

    accepted = post(
        client, "request_approve", request, revision=request.revision, findings_acknowledged="on"
    )

    assert accepted.status_code == 302
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    approved = request.events.get(kind="approved")
    assert approved.data["findings_acknowledged"][0]["code"] == "escalation-together"


def test_approving_error_findings_needs_an_acknowledgement_in_the_api(
    requester: User, reviewer: User, passer: IamRole
) -> None:
    request = escalating(requester, passer)
    path = reverse("api_request_approve", args=[request.pk])

    refused = api_post(reviewer, path, {"revision": request.revision})

    assert refused.status_code == 400
    assert "error-level finding" in refused.json()["errors"]["findings_acknowledged"][0]
    assert not request.approvals.exists()
    accepted = api_post(
        reviewer, path, {"revision": request.revision, "findings_acknowledged": True}
    )
    assert accepted.status_code == 200
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED


def test_the_admin_action_does_not_approve_error_findings(
    requester: User, admin_user: User, passer: IamRole
) -> None:
    request = escalating(requester, passer)
    clean = submitted(requester, passer)

    response = admin_approve(admin_user, request, clean)

    request.refresh_from_db()
    clean.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert clean.status == PolicyRequest.Status.APPLIED
    shown = " ".join(flashed(response))
    assert "review page" in shown
    assert reverse("request_detail", args=[request.pk]) in shown


def test_the_review_queue_shows_each_requests_risk(
    requester: User, reviewer: User, passer: IamRole
) -> None:
    risky = escalating(requester, passer)
    clean = submitted(requester, passer)

    response = client_for(reviewer).get(reverse("request_queue"))

    page = response.content.decode()
    rows = {item.pk: item.risk for item in response.context["page"].object_list}
    assert rows == {risky.pk: "error", clean.pk: "none"}
    assert "Risk: error" in page
    assert "Risk: none" in page


# --- lint, generate and dry run are rate limited per user --------------------------------


def test_lint_generate_and_dry_run_answer_429_beyond_the_limit(
    requester: User, reviewer: User, role: IamRole, settings: Any
) -> None:
    settings.IAMPORTAL_POLICY_TOOLS_RATE_LIMIT = 3
    lint = reverse("api_policy_lint")
    generate = reverse("api_policy_generate")
    intents = {
        "intents": [
            {"service": "s3", "resource": "arn:aws:s3:::acme-invoices", "access": ["list", "read"]}
        ]
    }

    answers = [
        api_post(requester, lint, {"document": READ_INVOICES}).status_code,
        api_post(requester, generate, intents).status_code,
        api_post(
            requester,
            reverse("api_request_changes_create"),
            {**run_instances_body(role), "dry_run": True},
        ).status_code,
    ]
    limited = api_post(requester, lint, {"document": READ_INVOICES})
    others = api_post(reviewer, lint, {"document": READ_INVOICES})

    assert answers == [200, 200, 200]
    assert limited.status_code == 429
    assert "Too many policy checks this minute" in limited.json()["detail"]
    assert int(limited["Retry-After"]) <= 60
    assert api_post(requester, generate, intents).status_code == 429
    assert others.status_code == 200  # per user
    # Submitting for real is not a check: it is not limited.
    created = api_post(
        requester,
        reverse("api_request_changes_create"),
        run_instances_body(role),
    )
    assert created.status_code == 201


def test_the_wizard_says_so_when_checks_are_rate_limited(
    requester: User, role: IamRole, settings: Any
) -> None:
    settings.IAMPORTAL_POLICY_TOOLS_RATE_LIMIT = 1
    client = client_for(requester)
    lint = reverse("request_editor_lint", args=[role.pk])
    document = json.dumps(READ_INVOICES)

    first = client.post(lint, {"document": document}, HTTP_HX_REQUEST="true")
    second = client.post(lint, {"document": document}, HTTP_HX_REQUEST="true")
    add = client.post(
        reverse("request_permission_add", args=[role.pk]),
        {"service": "s3", "resource": "arn:aws:s3:::acme-invoices", "access": ["list", "read"]},
    )

    assert "Too many policy checks" not in first.content.decode()
    assert second.status_code == 200
    assert "Too many policy checks this minute" in second.content.decode()
    assert "Too many policy checks this minute" in add.content.decode()
