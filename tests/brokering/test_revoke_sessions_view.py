"""The role page's "Revoke sessions": reviewers and admins only, CSRF, clear
form errors, and iamportal's own roles refused."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from brokering.models import SessionRevocation
from brokering.services import REVOKED_SESSIONS_POLICY
from tests.factories import client_for, flashed, inline_names

pytestmark = pytest.mark.django_db


def url_of(role: IamRole) -> str:
    return reverse(
        "role_sessions_revoke",
        kwargs={"account_id": role.account.account_id, "role_name": role.name},
    )


def role_page(role: IamRole) -> str:
    return reverse(
        "role_detail", kwargs={"account_id": role.account.account_id, "role_name": role.name}
    )


FORM = {"user": "alice@example.com", "reason": "laptop stolen"}


@pytest.mark.parametrize("who", ["reviewer", "admin_user"])
def test_reviewers_and_admins_end_a_users_sessions(
    who: str, role: IamRole, requester: User, request: pytest.FixtureRequest
) -> None:
    actor = request.getfixturevalue(who)
    client = client_for(actor)
    assert b"Revoke sessions" in client.get(role_page(role)).content
    assert client.get(url_of(role)).status_code == 200

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url_of(role), FORM, follow=True)

    assert response.status_code == 200
    assert "The sessions of alice@example.com on payments-api are being ended." in flashed(response)
    revocation = SessionRevocation.objects.get()
    assert (revocation.user, revocation.actor, revocation.reason) == (
        requester,
        actor,
        "laptop stolen",
    )
    assert revocation.status == SessionRevocation.Status.APPLIED
    assert inline_names(role) == [REVOKED_SESSIONS_POLICY]
    assert b"laptop stolen" in response.content  # listed on the page


@pytest.mark.parametrize("who", ["requester", "outsider"])
def test_anyone_else_finds_no_such_page(
    who: str, role: IamRole, requester: User, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(who))
    assert b"Revoke sessions" not in client.get(role_page(role)).content

    assert client.get(url_of(role)).status_code == 404
    assert client.post(url_of(role), FORM).status_code == 404
    assert not SessionRevocation.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(
    anonymous: Client, role: IamRole, requester: User
) -> None:
    response = anonymous.post(url_of(role), FORM)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not SessionRevocation.objects.exists()


def test_it_needs_the_csrf_token(role: IamRole, requester: User, reviewer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)

    assert client.post(url_of(role), FORM).status_code == 403
    assert not SessionRevocation.objects.exists()


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"user": "nobody@example.com", "reason": "x"}, "No single iamportal user"),
        ({"user": "alice", "reason": ""}, "Say why"),
        ({"user": "", "reason": "x"}, "Name the user"),
        ({"user": "alice", "reason": "x" * 501}, "at most 500 characters"),
    ],
)
def test_bad_input_gets_a_form_error(
    form: dict[str, str], error: str, role: IamRole, requester: User, reviewer: User
) -> None:
    response = client_for(reviewer).post(url_of(role), form)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert not SessionRevocation.objects.exists()


def test_it_refuses_iamportals_own_roles(
    account: AwsAccount, requester: User, admin_user: User
) -> None:
    spoke = IamRole.objects.create(
        account=account,
        arn=account.spoke_role_arn,
        name=account.spoke_role_arn.rsplit("/", 1)[-1],
        content_hash="x",
        synced_at=timezone.now(),
    )

    response = client_for(admin_user).post(url_of(spoke), FORM)

    assert response.status_code == 400
    assert "its sessions cannot be revoked" in response.content.decode()
    assert not SessionRevocation.objects.exists()
