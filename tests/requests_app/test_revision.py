"""An approval is bound to the revision the reviewer saw: a requester who edits
a change after the reviewer opened the request never gets the edited version
applied by the reviewer's click, on the page, through the API or in the admin;
edits tell the reviewers involved; apply checks the approvals against the
content."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import IamRole
from requests_app import services
from requests_app.models import Approval, Change, PolicyRequest, RequestEvent
from requests_app.revision import revision_compute, revision_of_request
from tests.factories import (
    READ_INVOICES,
    admin_action,
    api_client,
    approve,
    client_for,
    flashed,
    html_of,
    inline_names,
    kinds,
    policy_in_aws,
    requiring_two,
    submitted,
)

pytestmark = pytest.mark.django_db

EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "All", "Effect": "Allow", "Action": "iam:*", "Resource": "*"}],
}
STALE = "The request changed since you opened it: review the new version."
INTERFACES = ["page", "api", "admin"]


def nothing_in_aws(role: IamRole) -> bool:
    return inline_names(role) == []


def edit_to_everything(requester: User, request: PolicyRequest) -> None:
    """The requester rewrites the change to `iam:*` on `*`, on the request page."""
    change = request.changes.get(automatic=False)
    body = {
        "payload": json.dumps({"policy_name": "invoices-read", "document": EVERYTHING}),
        # iam:* on * is an error finding: the requester acknowledges it, as they can.
        "acknowledge": "on",
        "acknowledgement_reason": "Need it.",
    }
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client_for(requester).post(
            reverse("change_edit", args=[request.pk, change.pk]), body
        )
    assert response.status_code == 302


def api_approve(user: User, request: PolicyRequest, body: dict[str, Any]) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return api_client(user).post(
            f"/api/v1/requests/{request.pk}/approve",
            json.dumps(body),
            content_type="application/json",
        )


class Reviewer:
    """A reviewer who opens a request in one interface and later approves what
    they saw there."""

    def __init__(self, user: User, interface: str) -> None:
        self.user = user
        self.interface = interface
        self.seen = ""

    def open(self, request: PolicyRequest) -> str:
        if self.interface == "page":
            page = client_for(self.user).get(reverse("request_detail", args=[request.pk]))
            self.seen = page.context["revision"]
            assert f'name="revision" value="{self.seen}"' in page.content.decode()
        elif self.interface == "api":
            self.seen = (
                api_client(self.user).get(f"/api/v1/requests/{request.pk}").json()["revision"]
            )
        else:
            confirmation = admin_action(self.user, "approve", request)
            assert confirmation.status_code == 200
            assert "Approve these revisions" in confirmation.content.decode()
            [item] = confirmation.context["shown"]
            self.seen = item["revision"]
        assert len(self.seen) == 64
        return self.seen

    def approve(self, request: PolicyRequest) -> list[str]:
        """Approve the revision seen; returns what the reviewer is told."""
        if self.interface == "page":
            with TestCase.captureOnCommitCallbacks(execute=True):
                response = client_for(self.user).post(
                    reverse("request_approve", args=[request.pk]),
                    {"revision": self.seen, "findings_acknowledged": "on"},
                )
            assert response.status_code == 302
            return flashed(response)
        if self.interface == "api":
            response = api_approve(
                self.user, request, {"revision": self.seen, "findings_acknowledged": True}
            )
            if response.status_code == 409:
                return [response.json()["detail"]]
            assert response.status_code == 200, response.json()
            return ["approved"]
        response = admin_action(
            self.user,
            "approve",
            request,
            post="yes",
            **{f"revision_{request.pk}": self.seen},
        )
        assert response.status_code == 302
        return flashed(response)


# --- the revision ---------------------------------------------------------------------


def test_the_revision_covers_changes_in_order_the_cross_account_flag_and_the_expiry(
    requester: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    assert request.revision == revision_of_request(request.pk)
    assert request.revision == revision_compute(request.changes.all(), None)
    change = request.changes.get()
    Change.objects.filter(pk=change.pk).update(automatic=True)
    assert revision_of_request(request.pk) != request.revision
    Change.objects.filter(pk=change.pk).update(automatic=False)
    assert revision_of_request(request.pk) == request.revision
    PolicyRequest.objects.filter(pk=request.pk).update(
        expires_at=timezone.now() + timedelta(hours=8)
    )
    assert revision_of_request(request.pk) != request.revision
    PolicyRequest.objects.filter(pk=request.pk).update(expires_at=None)
    Change.objects.create(
        request=request,
        position=1,
        type=Change.Type.TAGS_PUT,
        target_arn=role.arn,
        account_id=role.account.account_id,
        payload={"tags": {"team": "payments"}},
    )
    two = revision_of_request(request.pk)
    assert two != request.revision
    Change.objects.filter(request=request, position=1).update(position=0)
    Change.objects.filter(pk=change.pk).update(position=1)
    assert revision_of_request(request.pk) not in (two, request.revision)


def test_the_page_the_api_and_the_admin_show_the_revision(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    short = request.revision[:12]
    page = client_for(requester).get(reverse("request_detail", args=[request.pk]))
    assert short in page.content.decode()
    detail = api_client(requester).get(f"/api/v1/requests/{request.pk}").json()
    assert detail["revision"] == request.revision
    listed = api_client(requester).get("/api/v1/requests").json()
    assert listed[0]["revision"] == request.revision
    admin = client_for(reviewer)
    changelist = admin.get(reverse("admin:requests_app_policyrequest_changelist"))
    assert short in changelist.content.decode()
    change_page = admin.get(reverse("admin:requests_app_policyrequest_change", args=[request.pk]))
    assert short in change_page.content.decode()


def test_an_edit_gives_a_new_revision_and_the_approval_records_its_own(
    requester: User, reviewer: User, second_reviewer: User, role: IamRole
) -> None:
    request = approve(submitted(requester, requiring_two(role)), reviewer)
    before = request.revision
    assert request.approvals.get().revision == before
    edit_to_everything(requester, request)
    request.refresh_from_db()
    assert request.revision != before
    assert request.revision == revision_of_request(request.pk)
    edited = request.events.get(kind=RequestEvent.Kind.EDITED)
    assert edited.data["revision"] == request.revision
    assert request.revision[:12] in edited.message


# --- the exact sequence: opened, edited, approved --------------------------------------


@pytest.mark.parametrize("interface", INTERFACES)
def test_approving_what_was_seen_before_an_edit_applies_nothing(
    interface: str, requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    rita = Reviewer(reviewer, interface)
    seen = rita.open(request)
    edit_to_everything(requester, request)

    told = rita.approve(request)

    assert any(STALE in message for message in told), told
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert not request.approvals.exists()
    assert "approved" not in kinds(request)
    assert nothing_in_aws(role)
    assert request.revision != seen
    # What she sees now is the new version, with its own revision to approve.
    page = client_for(reviewer).get(reverse("request_detail", args=[request.pk]))
    assert page.context["revision"] == request.revision
    assert "&quot;iam:*&quot;" in page.content.decode()


@pytest.mark.parametrize("interface", INTERFACES)
def test_with_two_approvals_one_given_before_the_edit_no_longer_counts(
    interface: str, requester: User, reviewer: User, second_reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, requiring_two(role))
    sam = Reviewer(second_reviewer, interface)
    sam.open(request)
    approve(request, reviewer)  # before the edit
    edit_to_everything(requester, request)
    request.refresh_from_db()
    assert not request.approvals.exists()

    told = sam.approve(request)

    assert any(STALE in message for message in told), told
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert not request.approvals.exists()
    assert nothing_in_aws(role)
    # Approving the new version now is one approval of two: rita's was for the old one.
    # (The admin action leaves requests with error findings, as this one now has, to
    # the review page.)
    sam = Reviewer(second_reviewer, "page" if interface == "admin" else interface)
    sam.open(request)
    assert sam.approve(request)
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert list(request.approvals.values_list("reviewer__username", "revision")) == [
        ("sam", request.revision)
    ]
    assert nothing_in_aws(role)


def test_a_stale_post_on_the_page_shows_the_message_and_the_new_diff(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    client = client_for(reviewer)
    old = client.get(reverse("request_detail", args=[request.pk])).context["revision"]
    edit_to_everything(requester, request)
    response = client.post(
        reverse("request_approve", args=[request.pk]), {"revision": old}, follow=True
    )
    page = response.content.decode()
    assert STALE in page
    assert '<span class="line add">+      &quot;Action&quot;: &quot;iam:*&quot;,</span>' in page
    request.refresh_from_db()
    assert f'name="revision" value="{request.revision}"' in page
    assert old not in page


def test_the_api_says_which_revision_is_current_and_needs_one(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    old = request.revision
    edit_to_everything(requester, request)
    request.refresh_from_db()
    response = api_approve(reviewer, request, {"revision": old})
    assert response.status_code == 409
    assert response.json() == {"detail": STALE, "revision": request.revision}
    for body in ({}, {"revision": None}, {"revision": 42}, {"revision": "x" * 65}):
        response = api_approve(reviewer, request, body)
        assert response.status_code == 400, body
        assert "revision" in response.json()["errors"], body
    response = api_approve(reviewer, request, {"revision": ""})
    assert response.status_code == 400
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert nothing_in_aws(role)
    ok = api_approve(
        reviewer, request, {"revision": request.revision, "findings_acknowledged": True}
    )
    assert ok.status_code == 200
    assert ok.json()["approvals"][0]["revision"] == request.revision
    assert PolicyRequest.objects.get(pk=request.pk).status == PolicyRequest.Status.APPLIED
    assert inline_names(role) == ["invoices-read"]


def test_the_service_refuses_a_missing_or_stale_revision(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    for given in ("", "0" * 64, request.revision[:12]):
        with pytest.raises(services.RequestRevisionStale) as refused:
            services.policy_request_approve(
                request_id=request.pk, reviewer=reviewer, revision=given
            )
        assert isinstance(refused.value, services.RequestActionRefused)
        assert refused.value.current == request.revision
    assert not request.approvals.exists()


def test_the_admin_confirmation_shows_the_changes_and_names_the_stale_ones(
    requester: User, reviewer: User, role: IamRole
) -> None:
    stays = submitted(requester, role, policy_name="stays")
    edited = submitted(requester, role)
    confirmation = admin_action(reviewer, "approve", stays, edited)
    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert "acme-invoices" in page
    assert stays.revision[:12] in page
    assert PolicyRequest.objects.filter(status=PolicyRequest.Status.PENDING).count() == 2
    revisions = {
        f"revision_{i['request'].pk}": i["revision"] for i in confirmation.context["shown"]
    }
    edit_to_everything(requester, edited)

    response = admin_action(reviewer, "approve", stays, edited, post="yes", **revisions)

    messages = flashed(response)
    assert f"#{edited.pk}: {STALE}" in messages
    assert "Approved 1 request(s)." in messages
    stays.refresh_from_db()
    edited.refresh_from_db()
    assert stays.status == PolicyRequest.Status.APPLIED
    assert edited.status == PolicyRequest.Status.PENDING
    assert inline_names(role) == ["stays"]


def test_the_admin_action_without_its_confirmation_approves_nothing(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    response = admin_action(reviewer, "approve", request, post="yes")
    assert any(STALE in m or "names the revision" in m for m in flashed(response))
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert nothing_in_aws(role)


# --- the edit email ----------------------------------------------------------------------


def test_an_edit_emails_the_reviewers_who_approved_or_commented_with_the_new_diff(
    requester: User, reviewer: User, second_reviewer: User, admin_user: User, role: IamRole
) -> None:
    request = submitted(requester, requiring_two(role))
    approve(request, reviewer)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_comment(
            request_id=request.pk, author=second_reviewer, body="Which prefix?"
        )
    mail.outbox.clear()

    edit_to_everything(requester, request)

    edited = [m for m in mail.outbox if "edited" in m.subject]
    assert sorted(address for m in edited for address in m.to) == [
        "rita@example.com",
        "sam@example.com",
    ]
    message = edited[0]
    assert message.subject.startswith(f"[iamportal] #{request.pk} edited by alice")
    assert '+      "Action": "iam:*",' in message.body
    assert "1 approval given before the edit was withdrawn" in message.body
    request.refresh_from_db()
    assert request.revision[:12] in message.body
    assert "iam:*" in html_of(message)
    assert not [m for m in mail.outbox if admin_user.email in m.to]


# --- apply checks the approvals ------------------------------------------------------------


def approved_directly(request: PolicyRequest, reviewer: User, revision: str) -> None:
    Approval.objects.create(request=request, reviewer=reviewer, revision=revision)
    PolicyRequest.objects.filter(pk=request.pk).update(status=PolicyRequest.Status.APPROVED)


def test_apply_refuses_an_approval_of_another_revision(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    approved_directly(request, reviewer, "0" * 64)

    done = services.policy_request_apply(request_id=request.pk)

    assert done.status == PolicyRequest.Status.PENDING
    assert not done.approvals.exists()
    assert nothing_in_aws(role)
    assert done.changes.get().status == Change.Status.PENDING
    event = done.events.get(kind=RequestEvent.Kind.WITHDRAWN)
    assert event.message.startswith("Not applied: Approval(s) by rita withdrawn")
    assert "applying" not in kinds(done)


def test_apply_refuses_content_changed_behind_the_approvals(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    approved_directly(request, reviewer, request.revision)
    request.changes.update(payload={"policy_name": "invoices-read", "document": EVERYTHING})

    done = services.policy_request_apply(request_id=request.pk)

    assert done.status == PolicyRequest.Status.PENDING
    assert done.revision == revision_of_request(request.pk) != request.revision
    assert nothing_in_aws(role)


def test_apply_refuses_too_few_approvals_of_the_current_revision(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, requiring_two(role))
    approved_directly(request, reviewer, request.revision)

    done = services.policy_request_apply(request_id=request.pk)

    assert done.status == PolicyRequest.Status.PENDING
    assert done.approvals.count() == 1  # still valid: one more reviewer is needed
    assert "needs 2 approval(s)" in done.events.get(kind=RequestEvent.Kind.WITHDRAWN).message
    assert nothing_in_aws(role)


def test_apply_goes_ahead_when_every_approval_is_for_the_current_revision(
    requester: User, reviewer: User, second_reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, requiring_two(role))
    approved_directly(request, reviewer, request.revision)
    Approval.objects.create(request=request, reviewer=second_reviewer, revision=request.revision)

    done = services.policy_request_apply(request_id=request.pk)

    assert done.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES


def test_an_approval_of_another_revision_found_at_approve_time_is_withdrawn(
    requester: User, reviewer: User, second_reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, requiring_two(role))
    Approval.objects.create(request=request, reviewer=reviewer, revision="0" * 64)

    request = approve(request, second_reviewer)

    assert request.status == PolicyRequest.Status.PENDING
    assert list(request.approvals.values_list("reviewer__username", flat=True)) == ["sam"]
    event = request.events.get(kind=RequestEvent.Kind.WITHDRAWN)
    assert event.message.startswith("Approval(s) by rita withdrawn")
    assert nothing_in_aws(role)
