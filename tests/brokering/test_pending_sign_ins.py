"""Pending CLI sign-ins on My roles: who sees which, approving and refusing
from there, for every member of the cast."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from brokering import cli_auth
from brokering.models import CliChallenge
from tests.factories import client_for

pytestmark = pytest.mark.django_db

TERMINAL = "198.51.100.20"
BROWSER = "203.0.113.7"


def ask(requested_user: str, address: str = TERMINAL) -> CliChallenge:
    return cli_auth.cli_challenge_create(requested_user=requested_user, requesting_ip=address)


def my_roles(user: User) -> str:
    response = client_for(user).get(reverse("my_roles"), REMOTE_ADDR=BROWSER)
    assert response.status_code == 200
    return response.content.decode()


def answer(user: User, challenge: CliChallenge, action: str) -> Any:
    return client_for(user).post(
        reverse("my_cli_sign_in", args=[challenge.pk]),
        {"action": action, "code": challenge.token[-6:]},
        REMOTE_ADDR=BROWSER,
    )


def test_my_roles_lists_my_pending_sign_ins_by_user_name_or_email(requester: User) -> None:
    by_name = ask("alice", "198.51.100.21")
    by_email = ask("ALICE@example.com", "198.51.100.22")

    html = my_roles(requester)

    assert "Pending CLI sign-ins" in html
    assert by_name.requesting_ip in html
    assert by_email.requesting_ip in html
    assert reverse("my_cli_sign_in", args=[by_name.pk]) in html
    assert reverse("my_cli_sign_in", args=[by_email.pk]) in html
    assert "not this browser's address" in html
    assert by_name.token not in html  # the polling link's secret stays with the terminal


def test_it_never_shows_someone_elses_sign_ins(
    requester: User, reviewer: User, outsider: User
) -> None:
    ask("rita", "198.51.100.31")
    ask("oscar@example.com", "198.51.100.32")

    html = my_roles(requester)

    assert "Pending CLI sign-ins" not in html
    assert "198.51.100.31" not in html
    assert "198.51.100.32" not in html
    assert "198.51.100.31" in my_roles(reviewer)
    assert "198.51.100.31" not in my_roles(outsider)


def test_answered_and_expired_sign_ins_are_not_listed(requester: User) -> None:
    expired = ask("alice", "198.51.100.41")
    CliChallenge.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(1))
    refused = ask("alice", "198.51.100.42")
    cli_auth.cli_challenge_refuse(challenge=refused)
    approved = ask("alice", "198.51.100.43")
    cli_auth.cli_challenge_approve(challenge=approved, user=requester)

    html = my_roles(requester)

    assert "Pending CLI sign-ins" not in html
    for address in ("198.51.100.41", "198.51.100.42", "198.51.100.43"):
        assert address not in html


def test_approving_from_my_roles_lets_the_terminal_collect_its_token(requester: User) -> None:
    challenge = ask("alice")
    client = client_for(requester)

    response = client.post(
        reverse("my_cli_sign_in", args=[challenge.pk]),
        {"action": "approve", "code": challenge.token[-6:]},
        follow=True,
    )

    assert response.redirect_chain == [(reverse("my_roles"), 302)]
    html = response.content.decode()
    assert "Approved the sign-in from 198.51.100.20" in html
    assert "Pending CLI sign-ins" not in html
    challenge.refresh_from_db()
    assert (challenge.status, challenge.user) == (CliChallenge.Status.APPROVED, requester)
    poll = cli_auth.cli_challenge_claim(token=challenge.token, polling_ip=TERMINAL)
    assert (poll.status, poll.user) == ("success", requester)


@pytest.mark.parametrize("code", ["", "abcdef", "{start}"], ids=["none", "wrong", "link start"])
def test_approving_from_my_roles_needs_the_end_of_the_terminals_link(
    requester: User, code: str
) -> None:
    challenge = ask("alice")

    response = client_for(requester).post(
        reverse("my_cli_sign_in", args=[challenge.pk]),
        {"action": "approve", "code": code.format(start=challenge.token[:6])},
        follow=True,
    )

    assert "Nothing was approved: type the last 6 characters" in response.content.decode()
    challenge.refresh_from_db()
    assert (challenge.status, challenge.user) == (CliChallenge.Status.PENDING, None)
    poll = cli_auth.cli_challenge_claim(token=challenge.token, polling_ip=TERMINAL)
    assert poll.status == "pending"


def test_refusing_from_my_roles_leaves_the_terminal_with_nothing(requester: User) -> None:
    challenge = ask("alice")

    response = answer(requester, challenge, "refuse")

    assert response.status_code == 302
    challenge.refresh_from_db()
    assert challenge.status == CliChallenge.Status.UNAUTHORIZED
    poll = cli_auth.cli_challenge_claim(token=challenge.token, polling_ip=TERMINAL)
    assert (poll.status, poll.token) == ("unauthorized", None)


def test_a_sign_in_that_expired_meanwhile_is_not_approved(requester: User) -> None:
    challenge = ask("alice")
    CliChallenge.objects.filter(pk=challenge.pk).update(expires_at=timezone.now())

    client = client_for(requester)
    response = client.post(
        reverse("my_cli_sign_in", args=[challenge.pk]),
        {"action": "approve", "code": challenge.token[-6:]},
        follow=True,
    )

    assert "has expired or was already answered" in response.content.decode()
    challenge.refresh_from_db()
    assert challenge.status == CliChallenge.Status.PENDING
    assert challenge.user is None


@pytest.mark.parametrize("member", ["reviewer", "admin_user", "outsider"])
@pytest.mark.parametrize("action", ["approve", "refuse"])
def test_nobody_else_can_answer_my_sign_in(
    requester: User, member: str, action: str, request: pytest.FixtureRequest
) -> None:
    challenge = ask("alice")

    response = answer(request.getfixturevalue(member), challenge, action)

    assert response.status_code == 404
    challenge.refresh_from_db()
    assert (challenge.status, challenge.user) == (CliChallenge.Status.PENDING, None)


def test_anonymous_visitors_are_sent_to_sign_in(requester: User, anonymous: Client) -> None:
    challenge = ask("alice")

    response = anonymous.post(reverse("my_cli_sign_in", args=[challenge.pk]), {"action": "approve"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    challenge.refresh_from_db()
    assert challenge.status == CliChallenge.Status.PENDING


def test_answering_takes_a_post_with_a_csrf_token(requester: User) -> None:
    challenge = ask("alice")
    url = reverse("my_cli_sign_in", args=[challenge.pk])
    assert client_for(requester).get(url).status_code == 405

    forged = Client(enforce_csrf_checks=True)
    forged.force_login(requester)
    assert forged.post(url, {"action": "approve"}).status_code == 403

    challenge.refresh_from_db()
    assert challenge.status == CliChallenge.Status.PENDING


@pytest.mark.parametrize("data", [{}, {"action": "maybe"}], ids=["none", "unknown"])
def test_an_answer_that_is_neither_approve_nor_refuse_is_400(
    requester: User, data: dict[str, str]
) -> None:
    challenge = ask("alice")

    response = client_for(requester).post(reverse("my_cli_sign_in", args=[challenge.pk]), data)

    assert response.status_code == 400
    challenge.refresh_from_db()
    assert challenge.status == CliChallenge.Status.PENDING
