"""No session key, token or sign-in token in any log line.

The flows a user and Weep go through (password sign-in, the Weep challenge
login and its polling, credentials, console sign-in through the demo's
federation stand-in, an API token) run with LOG_LEVEL=DEBUG and DEBUG on, as
the demo runs; everything the configured handlers write (the root console
handler, and runserver's request lines through django.server, emulated per
request) goes to one buffer, which must contain none of the secrets seen."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.urls import reverse

from brokering import services
from iamportal.log_filters import REDACTED, redact
from tests.factories import PASSWORD, Org, Served

pytestmark = pytest.mark.django_db

LAPTOP = "192.0.2.10"


@pytest.fixture
def federation_stand_in(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """getSigninToken goes to the demo's stand-in, served by iamportal itself."""
    settings.IAMPORTAL_DEMO_FEDERATION = True
    settings.IAMPORTAL_FEDERATION_URL = "http://testserver/demo-federation/"
    server = Served()

    class Answer:
        def __init__(self, response: Any) -> None:
            self.response = response

        def raise_for_status(self) -> None:
            if self.response.status_code >= 400:
                raise requests.HTTPError(str(self.response.status_code))

        def json(self) -> Any:
            return self.response.json()

    def post(url: str, data: dict[str, str], timeout: float) -> Answer:
        assert "Session" not in url
        return Answer(server.post(urlsplit(url).path, data))

    monkeypatch.setattr(services.requests, "post", post)


def secrets_of_the_flows(requester: User, org: Org) -> dict[str, str]:
    found: dict[str, str] = {}

    # Password sign-in, with the CSRF token a browser sends.
    browser = Served(enforce_csrf_checks=True, REMOTE_ADDR=LAPTOP)
    login_page = browser.get(reverse("login"))
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)
    assert form_token is not None
    found["CSRF form token"] = form_token.group(1)
    found["CSRF cookie"] = browser.cookies["csrftoken"].value
    signed_in = browser.post(
        reverse("login"),
        {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": form_token.group(1)},
    )
    assert signed_in.status_code == 302
    found["session key"] = browser.cookies["sessionid"].value
    csrf = browser.cookies["csrftoken"].value
    found["CSRF cookie after sign-in"] = csrf

    # The Weep challenge login: generate, poll, approve in the browser, poll again.
    cli = Served(REMOTE_ADDR=LAPTOP)
    urls = cli.get(f"/noauth/v1/challenge_generator/{requester.username}").json()
    polling, challenge = urlsplit(urls["polling_url"]), urlsplit(urls["challenge_url"])
    found["challenge token"] = challenge.path.rstrip("/").rpartition("/")[2]
    assert cli.get(polling.path).json()["status"] == "pending"
    assert browser.get(challenge.path).status_code == 200
    approved = browser.post(challenge.path, {"action": "approve", "csrfmiddlewaretoken": csrf})
    assert approved.status_code == 302
    success = cli.get(polling.path).json()
    assert success["status"] == "success"
    found["CLI JWT"] = success["encoded_jwt"]
    # A used token, and an unknown one (a 404 that Django logs with its path).
    assert browser.get(challenge.path).status_code == 200
    assert browser.get(f"/challenge_validator/{found['challenge token']}x").status_code == 404

    # Weep's get_credentials with the CLI cookie.
    cli.cookies["iamportal_auth"] = success["encoded_jwt"]
    credentials = cli.post(
        "/api/v1/get_credentials",
        {"requested_role": org.arn("prod/payments-api")},
        content_type="application/json",
    ).json()["Credentials"]
    found["Weep secret key"] = credentials["SecretAccessKey"]
    found["Weep session token"] = credentials["SessionToken"]

    # Console sign-in through the federation stand-in, then the landing page.
    console = browser.post(
        reverse("role_console", args=[org.roles["prod/payments-api"].pk]),
        {"csrfmiddlewaretoken": csrf},
    )
    assert console.status_code == 302, console.content[:300]
    location = urlsplit(console["Location"])
    found["sign-in token"] = parse_qs(location.query)["SigninToken"][0]
    landing = browser.get(f"{location.path}?{location.query}")
    assert landing.status_code == 200
    forged = browser.get(
        location.path, {"Action": "login", "SigninToken": "x" + found["sign-in token"]}
    )
    assert forged.status_code == 400

    # An API token, created on the profile page and used by a script.
    created = browser.post(
        reverse("api_token_create"),
        {"name": "nightly", "expires_in_days": "30", "csrfmiddlewaretoken": csrf},
        follow=True,
    )
    raw = re.search(r"\b(iamp_[A-Za-z0-9_-]+)", created.text) or re.search(
        r"<code[^>]*>([^<]{30,})</code>", created.text
    )
    assert raw is not None, created.text[:2000]
    found["API token"] = raw.group(1)
    script = Served(HTTP_AUTHORIZATION=f"Bearer {raw.group(1)}")
    issued = script.post(
        "/api/v1/credentials",
        {"role": org.arn("prod/payments-api")},
        content_type="application/json",
    ).json()
    found["API secret key"] = issued["secret_access_key"]
    found["API session token"] = issued["session_token"]
    refused = Served(HTTP_AUTHORIZATION=f"Bearer {raw.group(1)}x").get("/api/v1/roles")
    assert refused.status_code == 401
    return found


@pytest.mark.parametrize(
    "log_output", [False, True], ids=["as-configured", "libraries-at-debug"], indirect=True
)
def test_no_secret_of_any_flow_reaches_the_log(
    log_output: StringIO, requester: User, org: Org, federation_stand_in: None
) -> None:
    found = secrets_of_the_flows(requester, org)

    output = log_output.getvalue()
    assert "/noauth/v1/challenge_poller/[redacted]" in output  # the request lines are there
    assert "SigninToken=[redacted]" in output
    leaked = {name for name, secret in found.items() if secret in output}
    assert leaked == set(), output


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        (
            '"GET /noauth/v1/challenge_poller/abc123 HTTP/1.1" 200 20',
            '"GET /noauth/v1/challenge_poller/[redacted] HTTP/1.1" 200 20',
        ),
        (
            "Not Found: /challenge_validator/abc123",
            "Not Found: /challenge_validator/[redacted]",
        ),
        (
            '"GET /demo-federation/?Action=login&SigninToken=s3cr3t&Destination=x HTTP/1.1"',
            '"GET /demo-federation/?Action=login&SigninToken=[redacted]&Destination=x HTTP/1.1"',
        ),
        (
            '"GET /oidc/callback/?code=c0de&state=st4te HTTP/1.1" 302 0',
            '"GET /oidc/callback/?code=[redacted]&state=[redacted] HTTP/1.1" 302 0',
        ),
        (
            "b'<Credentials><SecretAccessKey>wJalr</SecretAccessKey>"
            "<SessionToken>FwoG</SessionToken></Credentials>'",
            f"b'<Credentials><SecretAccessKey>{REDACTED}</SecretAccessKey>"
            f"<SessionToken>{REDACTED}</SessionToken></Credentials>'",
        ),
        ("x-amz-security-token:FwoGZX", f"x-amz-security-token:{REDACTED}"),
        ("{'X-Amz-Security-Token': b'FwoGZX'}", f"{{'X-Amz-Security-Token': b'{REDACTED}'}}"),
        ("Signature:\n" + "a1" * 32, f"Signature:\n{REDACTED}"),
        (
            "/?Action=connect&X-Amz-Signature=" + "b2" * 32,
            f"/?Action=connect&X-Amz-Signature={REDACTED}",
        ),
        (
            "sync of account 111111111111 failed: timeout",
            "sync of account 111111111111 failed: timeout",
        ),
    ],
)
def test_the_filter_redacts_only_secrets(line: str, kept: str) -> None:
    assert redact(line) == kept
