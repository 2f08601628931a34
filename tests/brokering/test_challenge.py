"""The Weep challenge login: generate, approve in the browser, poll once for a
token, and every way it must fail: expired, reused, someone else's, another
address's."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from brokering import cli_auth
from brokering.models import CliChallenge
from tests.factories import Org, client_for

pytestmark = pytest.mark.django_db

LAPTOP = "198.51.100.20"
ELSEWHERE = "192.0.2.99"


def generate(user_name: str = "alice", address: str = LAPTOP) -> tuple[str, str]:
    response = Client(REMOTE_ADDR=address).get(f"/noauth/v1/challenge_generator/{user_name}")
    assert response.status_code == 200
    body = response.json()
    return body["challenge_url"], body["polling_url"]


def poll(polling_url: str, address: str = LAPTOP) -> dict[str, Any]:
    response = Client(REMOTE_ADDR=address).get(urlsplit(polling_url).path)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def page(user: User, challenge_url: str, address: str = LAPTOP) -> Any:
    client = client_for(user)
    return client.get(urlsplit(challenge_url).path, REMOTE_ADDR=address)


def approve(user: User, challenge_url: str, action: str = "approve") -> Any:
    client = client_for(user)
    return client.post(urlsplit(challenge_url).path, {"action": action}, REMOTE_ADDR=LAPTOP)


def challenge_for(url: str) -> CliChallenge:
    return CliChallenge.objects.get(token=url.rstrip("/").rsplit("/", 1)[1])


@pytest.fixture
def jwt_clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Move the clock PyJWT checks expiry against."""

    class Clock(datetime):
        offset = timedelta(0)

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + cls.offset

    monkeypatch.setattr(jwt.api_jwt, "datetime", Clock)
    return Clock


# --- generating ----------------------------------------------------------------------------------


def test_the_generator_needs_no_login_and_answers_two_absolute_urls(db: None) -> None:
    response = Client(REMOTE_ADDR=LAPTOP).get("/noauth/v1/challenge_generator/alice")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"challenge_url", "polling_url"}
    challenge = CliChallenge.objects.get()
    assert body["challenge_url"] == f"http://testserver/challenge_validator/{challenge.token}"
    assert body["polling_url"] == f"http://testserver/noauth/v1/challenge_poller/{challenge.token}"
    assert challenge.requested_user == "alice"
    assert challenge.requesting_ip == LAPTOP
    assert challenge.status == CliChallenge.Status.PENDING
    lifetime = challenge.expires_at - timezone.now()
    assert timedelta(seconds=100) < lifetime <= timedelta(minutes=2)
    assert len(challenge.token) >= 40


def test_an_email_works_as_the_user_name(db: None) -> None:
    generate("alice@example.com")
    assert CliChallenge.objects.get().requested_user == "alice@example.com"


@pytest.mark.parametrize("name", ["a" * 255, "ali%20ce", "ali%09ce"])
def test_unusable_user_names_are_400(db: None, name: str) -> None:
    response = Client().get(f"/noauth/v1/challenge_generator/{name}")
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["errors"]
    assert not CliChallenge.objects.exists()


def test_one_address_gets_only_a_few_open_challenges(db: None) -> None:
    for n in range(cli_auth.MAX_PENDING_CHALLENGES_PER_ADDRESS):
        generate(user_name=f"user{n}", address=LAPTOP)
    refused = Client(REMOTE_ADDR=LAPTOP).get("/noauth/v1/challenge_generator/alice")
    assert refused.status_code == 429
    assert 100 < int(refused["Retry-After"]) <= 120
    assert (
        Client(REMOTE_ADDR=ELSEWHERE).get("/noauth/v1/challenge_generator/alice").status_code == 200
    )


# --- the whole login -----------------------------------------------------------------------------


def test_an_approved_challenge_gives_a_token_once_that_weep_can_use(
    requester: User, org: Org, settings: Any
) -> None:
    challenge_url, polling_url = generate()
    assert poll(polling_url) == {"status": "pending"}

    shown = page(requester, challenge_url)
    assert shown.status_code == 200
    html = shown.content.decode()
    assert "alice" in html and LAPTOP in html
    assert re.search(r'<button class="button" type="submit">Approve</button>', html)
    assert "csrfmiddlewaretoken" in html
    assert approve(requester, challenge_url).status_code == 302

    before = int(time.time())
    success = poll(polling_url)
    assert set(success) == {
        "status",
        "cookie_name",
        "encoded_jwt",
        "expiration",
        "user",
        "secure",
        "http_only",
    }
    assert success["status"] == "success"
    assert success["cookie_name"] == settings.IAMPORTAL_CLI_COOKIE_NAME == "iamportal_auth"
    assert isinstance(success["encoded_jwt"], str)
    assert type(success["expiration"]) is int
    hours = settings.IAMPORTAL_CLI_TOKEN_HOURS
    assert before + hours * 3600 - 5 <= success["expiration"] <= before + hours * 3600 + 5
    assert success["user"] == "alice@example.com"
    assert (success["secure"], success["http_only"]) == (False, True)

    assert poll(polling_url) == {"status": "unknown"}, "a second poll never gets a token"
    assert challenge_for(challenge_url).status == CliChallenge.Status.USED

    weep = Client(REMOTE_ADDR=LAPTOP)
    weep.cookies[success["cookie_name"]] = success["encoded_jwt"]
    assert weep.get("/api/v1/get_roles?all=true").json() == sorted(
        [
            org.arn("prod/payments-api"),
            org.arn("prod/payments-batch"),
            org.arn("prod/web-frontend"),
            org.arn("dev/payments-api"),
        ]
    )
    credentials = weep.post(
        "/api/v1/get_credentials",
        {"requested_role": "payments-batch", "no_ip_restrictions": False},
        content_type="application/json",
    )
    assert credentials.status_code == 200


def test_the_token_stops_working_when_it_expires(
    requester: User, org: Org, settings: Any, jwt_clock: Any
) -> None:
    challenge_url, polling_url = generate()
    approve(requester, challenge_url)
    weep = Client()
    weep.cookies["iamportal_auth"] = poll(polling_url)["encoded_jwt"]
    assert weep.get("/api/v1/get_roles").status_code == 200

    jwt_clock.offset = timedelta(hours=settings.IAMPORTAL_CLI_TOKEN_HOURS, minutes=5)
    for response in (
        weep.get("/api/v1/get_roles"),
        weep.post(
            "/api/v1/get_credentials",
            {"requested_role": "payments-batch"},
            content_type="application/json",
        ),
    ):
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == "invalid_jwt"
        assert "expired" in body["message"]


def test_the_approval_form_needs_a_csrf_token(requester: User) -> None:
    challenge_url, polling_url = generate()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(requester)
    response = browser.post(urlsplit(challenge_url).path, {"action": "approve"})
    assert response.status_code == 403
    assert poll(polling_url) == {"status": "pending"}


def test_the_page_needs_a_signed_in_user(db: None) -> None:
    challenge_url, polling_url = generate()
    response = Client().get(urlsplit(challenge_url).path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert Client().post(urlsplit(challenge_url).path, {"action": "approve"}).status_code == 302
    assert poll(polling_url) == {"status": "pending"}


def test_an_email_in_any_case_matches_its_user(requester: User) -> None:
    challenge_url, polling_url = generate("ALICE@Example.COM")
    approve(requester, challenge_url)
    assert poll(polling_url)["status"] == "success"


# --- and how it fails ----------------------------------------------------------------------------


def test_an_expired_challenge_cannot_be_approved_or_collected(requester: User) -> None:
    challenge_url, polling_url = generate()
    CliChallenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert poll(polling_url) == {"status": "expired"}
    shown = page(requester, challenge_url)
    assert shown.status_code == 410
    assert "expired" in shown.content.decode()
    approve(requester, challenge_url)
    assert challenge_for(challenge_url).status == CliChallenge.Status.PENDING
    assert poll(polling_url) == {"status": "expired"}


def test_an_approval_not_collected_in_time_expires(requester: User) -> None:
    challenge_url, polling_url = generate()
    approve(requester, challenge_url)
    CliChallenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert poll(polling_url) == {"status": "expired"}


def test_someone_elses_challenge_is_refused_and_never_yields_a_token(
    requester: User, reviewer: User
) -> None:
    challenge_url, polling_url = generate("alice")
    shown = page(reviewer, challenge_url)
    assert shown.status_code == 200
    html = shown.content.decode()
    assert "requested for another user" in html
    assert "Approve</button>" not in html
    assert challenge_for(challenge_url).status == CliChallenge.Status.UNAUTHORIZED
    assert poll(polling_url) == {"status": "unauthorized"}

    approve(requester, challenge_url)  # too late, even for the right user
    assert poll(polling_url) == {"status": "unauthorized"}
    assert "was refused" in page(requester, challenge_url).content.decode()


def test_approving_someone_elses_challenge_by_post_is_refused(
    requester: User, outsider: User
) -> None:
    challenge_url, polling_url = generate("alice")
    approve(outsider, challenge_url)
    challenge = challenge_for(challenge_url)
    assert challenge.status == CliChallenge.Status.UNAUTHORIZED
    assert challenge.user is None
    assert poll(polling_url) == {"status": "unauthorized"}


def test_the_user_can_refuse_a_sign_in_they_did_not_start(requester: User) -> None:
    challenge_url, polling_url = generate()
    approve(requester, challenge_url, action="refuse")
    assert poll(polling_url) == {"status": "unauthorized"}


def test_another_address_never_gets_the_token(requester: User) -> None:
    challenge_url, polling_url = generate(address=LAPTOP)
    approve(requester, challenge_url)
    stolen = poll(polling_url, address=ELSEWHERE)
    assert stolen == {"status": "unauthorized"}
    assert poll(polling_url, address=LAPTOP)["status"] == "success"


def test_the_page_warns_when_the_browser_is_elsewhere(requester: User) -> None:
    challenge_url, _ = generate(address=LAPTOP)
    html = page(requester, challenge_url, address=ELSEWHERE).content.decode()
    assert f"This request came from {LAPTOP}" in html
    assert LAPTOP in page(requester, challenge_url, address=LAPTOP).content.decode()
    assert "This request came from" not in page(requester, challenge_url).content.decode()


@pytest.mark.parametrize("token", ["no-such-token", "x" * 500])
def test_unknown_tokens_are_unknown(requester: User, token: str) -> None:
    assert poll(f"/noauth/v1/challenge_poller/{token}") == {"status": "unknown"}
    shown = page(requester, f"/challenge_validator/{token}")
    assert shown.status_code == 404
    assert "no such sign-in request" in shown.content.decode()


def test_approving_twice_still_yields_one_token(requester: User) -> None:
    challenge_url, polling_url = generate()
    approve(requester, challenge_url)
    approve(requester, challenge_url)
    assert poll(polling_url)["status"] == "success"
    assert poll(polling_url) == {"status": "unknown"}
    assert "complete" in page(requester, challenge_url).content.decode()


def test_a_user_disabled_after_approving_gets_no_token(requester: User) -> None:
    challenge_url, polling_url = generate()
    approve(requester, challenge_url)
    User.objects.filter(pk=requester.pk).update(is_active=False)
    assert poll(polling_url) == {"status": "unauthorized"}


def test_challenges_other_addresses_ask_for_a_user_never_stop_their_own(db: None) -> None:
    for n in range(30):
        for _ in range(3):
            cli_auth.cli_challenge_create(requested_user="alice", requesting_ip=f"192.0.2.{n}")

    challenge_url, _ = generate("ALICE", address=LAPTOP)

    assert challenge_for(challenge_url).requesting_ip == LAPTOP


def recent_challenges(address: str, user_name: str, count: int, **fields: Any) -> None:
    CliChallenge.objects.bulk_create(
        CliChallenge(
            requested_user=user_name,
            requesting_ip=address,
            expires_at=timezone.now() + CliChallenge.LIFETIME,
            **fields,
        )
        for _ in range(count)
    )


def test_one_address_asking_again_and_again_for_a_user_backs_off_with_429(db: None) -> None:
    recent_challenges(LAPTOP, "alice", 8, status=CliChallenge.Status.USED)

    refused = Client(REMOTE_ADDR=LAPTOP).get("/noauth/v1/challenge_generator/Alice")

    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    assert 0 < wait <= 8  # 5 free, then 1, 2, 4, 8 seconds
    (message,) = refused.json()["errors"]
    assert message.startswith("Too many sign-in requests for this user from this address: wait")
    assert generate("bob", address=LAPTOP)
    assert generate("alice", address=ELSEWHERE)


def test_the_back_off_ends_when_its_time_has_passed(db: None) -> None:
    recent_challenges(LAPTOP, "alice", 8, status=CliChallenge.Status.USED)
    CliChallenge.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    assert generate("alice", address=LAPTOP)


def test_one_address_gets_only_so_many_challenges_a_quarter_hour(db: None) -> None:
    for n in range(cli_auth.MAX_CHALLENGES_PER_ADDRESS):
        recent_challenges(LAPTOP, f"user{n}", 1, status=CliChallenge.Status.USED)

    refused = Client(REMOTE_ADDR=LAPTOP).get("/noauth/v1/challenge_generator/alice")

    assert refused.status_code == 429
    assert 850 < int(refused["Retry-After"]) <= 900
    assert "Too many sign-in requests from this address" in refused.json()["message"]
    assert generate("alice", address=ELSEWHERE)
