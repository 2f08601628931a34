"""Console sign-in: the Console button, the page `weep console` opens, and the
demo's stand-in for the AWS federation endpoint.

A small HTTP server on loopback plays the AWS federation endpoint: it receives
getSigninToken and answers with a token from the demo stand-in, which checks the
session credentials against the embedded AWS."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import IamRole
from brokering.eligibility import access_changed
from brokering.models import CredentialIssuance
from tests.factories import Federation, Org
from tests.factories import client_for as signed_in


def client_for(user: User) -> Client:
    """A browser signed in as `user` that opened iamportal's address directly, as
    it does when Weep opens it (Sec-Fetch-Site: none)."""
    client = signed_in(user)
    client.defaults["HTTP_SEC_FETCH_SITE"] = "none"
    return client


# The per-response CSRF token (header for htmx, hidden field for the logout form).
CSRF_TOKEN = re.compile(r'("X-CSRFToken": "|name="csrfmiddlewaretoken" value=")[^"]*"')
HOME = "https://us-east-1.console.aws.amazon.com/console/home?region=us-east-1"


def login_query(response: Any, federation: Federation) -> dict[str, str]:
    """The query of the console login URL the browser was sent to."""
    assert response.status_code == 302, response.content.decode()[:500]
    location = response["Location"]
    assert location.startswith(federation.url + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def console(org: Org, key: str) -> str:
    return reverse("role_console", args=[org.roles[key].pk])


def weep_console(requested: str) -> str:
    return reverse("role_console_login", args=[requested])


def audit(user: User) -> list[tuple[str, str, str, str]]:
    rows = CredentialIssuance.objects.filter(user=user).order_by("id")
    return [(row.kind, row.outcome, row.role_arn, row.error) for row in rows]


# --- signing in ------------------------------------------------------------------


def test_the_console_button_signs_in_through_the_federation_endpoint(
    requester: User, org: Org, federation: Federation
) -> None:
    client = client_for(requester)

    response = client.post(console(org, "prod/payments-api"))

    query = login_query(response, federation)
    assert query["Action"] == "login"
    assert query["Issuer"] == "http://testserver/"
    assert query["Destination"] == HOME
    assert query["SigninToken"]
    assert "no-store" in response["Cache-Control"]
    [session] = federation.sessions
    assert set(session) == {"sessionId", "sessionKey", "sessionToken"}
    # The credentials travelled in the POST body, not in the URL.
    assert federation.requests == [("POST", "/federation")]
    assert audit(requester) == [
        ("console", "issued", org.arn("prod/payments-api"), ""),
    ]

    landing = client.get(
        reverse("demo_federation"),
        {"Action": "login", "SigninToken": query["SigninToken"], "Destination": HOME},
    )
    assert landing.status_code == 200
    text = " ".join(landing.content.decode().split())
    assert (
        'You are signed in to AWS account <span class="mono">111111111111</span> (acme-prod)'
        in text
    )
    assert 'as role <strong class="mono">payments-api</strong>' in text
    assert HOME.replace("&", "&amp;") in text
    assert "alice@example.com" in text


def test_weep_console_resolves_the_role_and_signs_in_on_get(
    requester: User, org: Org, federation: Federation
) -> None:
    deep_link = "https://s3.console.aws.amazon.com/s3/buckets/invoices?region=us-east-1"

    response = client_for(requester).get(
        weep_console("web-front"), {"redirect": deep_link}, headers={"user-agent": "weep/0.3"}
    )

    query = login_query(response, federation)
    assert query["Destination"] == deep_link
    issuance = CredentialIssuance.objects.get(user=requester)
    assert issuance.kind == "console"
    assert issuance.outcome == "issued"
    assert issuance.role_arn == org.arn("prod/web-frontend")
    assert issuance.user_agent == "weep/0.3"
    assert issuance.source_ip == "127.0.0.1"


def test_weep_console_takes_a_whole_arn_even_when_it_is_part_of_another(
    requester: User, org: Org, federation: Federation
) -> None:
    IamRole.objects.create(
        account=org.prod,
        arn=org.arn("prod/payments-api") + "-v2",
        name="payments-api-v2",
        path="/service/",
        tags={"iamportal-authorized": "team-payments"},
        content_hash="test",
        synced_at=timezone.now(),
    )
    access_changed()

    response = client_for(requester).get(weep_console(org.arn("prod/payments-api").upper()))

    login_query(response, federation)
    assert audit(requester)[0][2] == org.arn("prod/payments-api")


def test_weep_console_sends_anonymous_visitors_to_the_login_page_and_back(
    anonymous: Client, org: Org
) -> None:
    url = weep_console(org.arn("prod/payments-api")) + "?redirect=https://console.aws.amazon.com/"

    response = anonymous.get(url)

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == reverse("login")
    assert parse_qs(location.query)["next"] == [url]
    assert not CredentialIssuance.objects.exists()


def test_the_console_button_only_takes_a_post(requester: User, org: Org) -> None:
    response = client_for(requester).get(console(org, "prod/payments-api"))
    assert response.status_code == 405
    assert not CredentialIssuance.objects.exists()


# --- refusals --------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect",
    [
        "http://evil.example/",
        "https://console.aws.amazon.com.evil.example/",
        "//evil.example/",
        "javascript:alert(document.cookie)",
        "http://console.aws.amazon.com/",
        "https://user:pass@console.aws.amazon.com/",
        "https://console.aws.amazon.com:8443/",
        "https://console.aws.amazon.com/" + "x" * 2100,
    ],
)
def test_it_refuses_a_redirect_off_the_aws_console(
    requester: User, org: Org, federation: Federation, redirect: str
) -> None:
    client = client_for(requester)

    by_weep = client.get(weep_console(org.arn("prod/payments-api")), {"redirect": redirect})
    by_button = client.post(console(org, "prod/payments-api"), {"redirect": redirect})

    for response in (by_weep, by_button):
        assert response.status_code == 400
        assert "That console link is not allowed" in response.content.decode()
        assert "Location" not in response
    assert federation.sessions == []
    assert [(kind, outcome) for kind, outcome, _, _ in audit(requester)] == [
        ("console", "denied"),
        ("console", "denied"),
    ]
    assert all(error.startswith("bad redirect") for *_, error in audit(requester))


def test_it_refuses_the_console_for_a_cli_only_role(
    requester: User, org: Org, federation: Federation
) -> None:
    client = client_for(requester)

    by_weep = client.get(weep_console(org.arn("prod/payments-batch")))
    by_button = client.post(console(org, "prod/payments-batch"))

    for response in (by_weep, by_button):
        assert response.status_code == 403
        assert "This role is for the command line only" in response.content.decode()
    assert federation.sessions == []
    assert audit(requester) == [
        ("console", "denied", org.arn("prod/payments-batch"), "CLI-only role"),
        ("console", "denied", org.arn("prod/payments-batch"), "CLI-only role"),
    ]


def test_it_offers_a_choice_when_several_roles_match(
    requester: User, org: Org, federation: Federation
) -> None:
    redirect = "https://console.aws.amazon.com/iam/home"

    response = client_for(requester).get(weep_console("payments"), {"redirect": redirect})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose a role" in html
    for key in ("prod/payments-api", "dev/payments-api"):
        assert org.arn(key) in html
        assert f'action="{console(org, key)}"' in html
    assert org.arn("prod/payments-batch") in html
    assert f'action="{console(org, "prod/payments-batch")}"' not in html
    assert f'name="redirect" value="{redirect}"' in html
    assert federation.sessions == []
    assert audit(requester) == [("console", "denied", "payments", "ambiguous")]


def test_a_role_chosen_from_the_choice_keeps_the_redirect(
    requester: User, org: Org, federation: Federation
) -> None:
    redirect = "https://console.aws.amazon.com/iam/home"

    response = client_for(requester).post(console(org, "dev/payments-api"), {"redirect": redirect})

    assert login_query(response, federation)["Destination"] == redirect


@pytest.mark.parametrize(
    "requested", ["break-glass", "no-such-role", "arn:aws:iam::111111111111:role/break-glass"]
)
def test_it_answers_404_for_a_role_the_user_may_not_use_without_saying_more(
    requester: User, org: Org, federation: Federation, requested: str
) -> None:
    response = client_for(requester).get(weep_console(requested))

    assert response.status_code == 404
    html = response.content.decode()
    assert "None of the roles you may use matches" in html
    assert "iamportal-admins" not in html
    # What was asked for is echoed in the message and in the request link, no more.
    assert html.count("break-glass") == 2 * requested.count("break-glass")
    assert federation.sessions == []
    assert audit(requester) == [("console", "denied", requested, "no eligible role matches")]


def test_the_404_for_a_role_that_exists_reads_like_one_that_does_not(
    requester: User, org: Org
) -> None:
    client = client_for(requester)

    def page(requested: str) -> str:
        html = client.get(weep_console(requested)).content.decode()
        return CSRF_TOKEN.sub("", html).replace(requested, "X")

    assert page("break-glass") == page("broken-glass")


def test_the_console_button_answers_404_for_a_role_the_user_may_not_use(
    requester: User, outsider: User, org: Org, federation: Federation
) -> None:
    assert client_for(requester).post(console(org, "prod/break-glass")).status_code == 404
    assert client_for(outsider).post(console(org, "prod/payments-api")).status_code == 404
    assert federation.sessions == []
    assert audit(requester)[0][1:] == (
        "denied",
        f"role #{org.roles['prod/break-glass'].pk}",
        "no eligible role matches",
    )
    assert audit(outsider)[0][1] == "denied"


@pytest.mark.usefixtures("rate_clock_stopped")
def test_it_answers_429_with_retry_after_when_the_user_asks_too_often(
    requester: User, org: Org, federation: Federation, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 1
    client = client_for(requester)

    first = client.post(console(org, "prod/payments-api"))
    second = client.post(console(org, "prod/payments-api"))

    assert first.status_code == 302
    assert second.status_code == 429
    assert second["Retry-After"] == "60"
    assert "Too many sign-ins" in second.content.decode()
    assert [outcome for _, outcome, _, _ in audit(requester)] == ["issued", "rate_limited"]


def test_it_answers_502_when_aws_gives_no_sign_in_token(
    requester: User, org: Org, federation: Federation
) -> None:
    federation.fail = True

    response = client_for(requester).post(console(org, "prod/payments-api"))

    assert response.status_code == 502
    html = response.content.decode()
    assert "AWS did not sign you in" in html
    assert "sign-in token" in html


def test_every_console_attempt_is_audited(
    requester: User, org: Org, federation: Federation
) -> None:
    client = client_for(requester)
    client.get(weep_console("payments-api"))  # several
    client.get(weep_console("nothing-like-it"))  # none
    client.get(weep_console(org.arn("prod/payments-batch")))  # CLI only
    client.get(weep_console("web-frontend"), {"redirect": "http://evil.example/"})
    client.get(weep_console("web-frontend"))
    client.post(console(org, "prod/payments-api"))

    rows = audit(requester)
    assert len(rows) == 6
    assert {kind for kind, *_ in rows} == {"console"}
    assert [outcome for _, outcome, _, _ in rows] == [
        "denied",
        "denied",
        "denied",
        "denied",
        "issued",
        "issued",
    ]


# --- the demo's stand-in federation endpoint -----------------------------------


def test_the_demo_federation_endpoint_is_off_unless_configured(
    requester: User, settings: Any
) -> None:
    settings.IAMPORTAL_DEMO_FEDERATION = False
    response = client_for(requester).get(reverse("demo_federation"), {"Action": "login"})
    assert response.status_code == 404


def test_the_demo_federation_endpoint_checks_the_credentials_with_sts(
    anonymous: Client, settings: Any
) -> None:
    settings.IAMPORTAL_DEMO_FEDERATION = True
    url = reverse("demo_federation")

    malformed = anonymous.post(url, {"Action": "getSigninToken", "Session": "{not json"})
    missing = anonymous.post(url, {"Action": "getSigninToken", "Session": '{"sessionId": "a"}'})
    nested = anonymous.post(url, {"Action": "getSigninToken", "Session": "[" * 10_000})
    unknown = anonymous.get(url, {"Action": "delete"})

    assert malformed.status_code == missing.status_code == nested.status_code == 400
    assert unknown.status_code == 400
    assert "sessionKey" in malformed.json()["error"]
    assert "sessionKey" in nested.json()["error"]


def test_the_demo_federation_endpoint_takes_credentials_only_in_a_post_body(
    anonymous: Client, settings: Any
) -> None:
    settings.IAMPORTAL_DEMO_FEDERATION = True
    url = reverse("demo_federation")
    session = json.dumps({"sessionId": "a", "sessionKey": "b", "sessionToken": "c"})

    in_query = anonymous.get(url, {"Action": "getSigninToken", "Session": session})
    in_query_of_post = anonymous.post(
        f"{url}?Session=x", {"Action": "getSigninToken", "Session": session}
    )
    without_session = anonymous.get(url, {"Action": "getSigninToken"})

    assert in_query.status_code == in_query_of_post.status_code == 400
    assert in_query.json() == {"error": "The Session must not be sent in the URL."}
    assert without_session.status_code == 405
    assert without_session["Allow"] == "POST"


def test_the_demo_federation_endpoint_refuses_a_forged_token(
    anonymous: Client, settings: Any
) -> None:
    settings.IAMPORTAL_DEMO_FEDERATION = True
    response = anonymous.get(
        reverse("demo_federation"), {"Action": "login", "SigninToken": "forged:token"}
    )

    assert response.status_code == 400
    assert "invalid or has expired" in response.content.decode()


def test_a_console_link_from_another_site_asks_before_signing_in(requester: Any, org: Any) -> None:
    from brokering.models import CredentialIssuance
    from tests.factories import client_for

    response = client_for(requester).get(
        f"/role/{org.arn('prod/payments-api')}", HTTP_SEC_FETCH_SITE="cross-site"
    )
    assert response.status_code == 200
    assert "A page on another site sent you here" in response.content.decode()
    assert not CredentialIssuance.objects.filter(outcome="issued").exists()


def test_a_browser_that_does_not_say_where_it_came_from_confirms_first(
    requester: User, org: Org
) -> None:
    response = signed_in(requester).get(weep_console(org.arn("prod/payments-api")))
    assert response.status_code == 200
    assert "Sign in to the AWS console?" in response.content.decode()
    assert not CredentialIssuance.objects.filter(outcome="issued").exists()
