"""Single sign-on against a real OpenID provider listening on loopback.

The browser's part is played by Django's test client (iamportal's pages) and
an HTTP client (the provider's sign-in form): start at /oidc/authenticate/, sign in at the
provider as a subject, come back to /oidc/callback/ with the code.
"""

from __future__ import annotations

import socket
from hashlib import sha256
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest
import requests
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.http.response import HttpResponseBase
from django.test import Client
from django.urls import reverse
from mozilla_django_oidc.utils import base64_url_encode

from iamportal.models import ExternalIdentity
from iamportal.oidc import OidcBackend, claims_merge, forget_provider_metadata, id_token_check
from tests.factories import (
    OIDC_CLIENT_ID as CLIENT_ID,
)
from tests.factories import (
    PASSWORD,
    at_provider,
    back_at_iamportal,
    client_for,
    dana_at_provider,
    make_user,
    sign_in_at_provider,
    start_sign_in,
)

pytestmark = pytest.mark.usefixtures("sso")
FAILURE_URL = "/login/failed/"


def sign_in(client: Client, sub: str = "dana") -> HttpResponseBase:
    return back_at_iamportal(client, sign_in_at_provider(start_sign_in(client), sub=sub))


def signed_in_user(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.filter(pk=user_id).first() if user_id else None


def group_names(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def assert_refused(client: Client, response: HttpResponseBase, explanation: str) -> None:
    assert response.status_code == 302
    assert response["Location"] == FAILURE_URL
    assert signed_in_user(client) is None
    page = client.get(FAILURE_URL)
    assert page.status_code == 403
    assert explanation in page.content.decode()


def unreachable_discovery_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/.well-known/openid-configuration"


def make_session_due_for_renewal(client: Client) -> None:
    session = client.session
    session["oidc_id_token_expiration"] = 0
    session.save()


# --- signing in ---------------------------------------------------------------------------


def test_it_signs_in_with_the_code_flow_and_takes_the_groups_from_the_provider(
    provider: str,
) -> None:
    dana_at_provider(provider, "team-payments", "security-reviewers")
    client = Client()

    response = sign_in(client)

    assert response.status_code == 302
    assert response["Location"] == reverse("my_roles")
    user = signed_in_user(client)
    assert user is not None
    assert user.email.lower() == "dana@example.com"
    assert user.username == "dana@example.com"
    assert (user.first_name, user.last_name) == ("Dana", "Scully")
    assert group_names(user) == {"team-payments", "security-reviewers"}
    assert user.is_staff, "reviewers use the admin"
    assert client.get(reverse("dashboard")).status_code == 200


def test_it_removes_a_group_the_provider_no_longer_sends(provider: str) -> None:
    dana_at_provider(provider, "team-payments", "security-reviewers")
    sign_in(Client())

    dana_at_provider(provider, "team-payments")
    client = Client()
    sign_in(client)

    user = signed_in_user(client)
    assert user is not None
    assert group_names(user) == {"team-payments"}
    assert not user.is_staff
    assert User.objects.count() == 1


def sso_account(username: str, *groups: str, **extra: Any) -> User:
    """An account as single sign-on creates them: no usable password."""
    user = make_user(username, *groups)
    user.set_unusable_password()
    for name, value in extra.items():
        setattr(user, name, value)
    user.save()
    return user


def identity_of(user: User) -> list[tuple[str, str, str]]:
    return list(ExternalIdentity.objects.filter(user=user).values_list("kind", "issuer", "subject"))


def test_it_links_an_account_without_password_or_rights_by_email_in_any_case(
    provider: str,
) -> None:
    alice = sso_account("alice", "team-payments")
    at_provider(provider, "alice", email="ALICE@example.com", email_verified=True, groups=[])
    client = Client()

    sign_in(client, "alice")

    assert signed_in_user(client) == alice
    assert group_names(alice) == set()
    assert User.objects.count() == 1
    assert identity_of(alice) == [("oidc", provider, "alice")]


@pytest.mark.parametrize(
    "local",
    [
        pytest.param({"is_staff": True, "is_superuser": True}, id="superuser-with-password"),
        pytest.param({}, id="password"),
    ],
)
def test_a_provider_account_with_a_local_accounts_email_is_refused_and_told_why(
    provider: str, local: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    root = make_user("root", **local)
    at_provider(provider, "mallory", email="Root@Example.com", email_verified=True, groups=["x"])
    client = Client()

    response = sign_in(client, "mallory")

    assert_refused(client, response, "Ask an iamportal administrator to link your identity")
    assert not ExternalIdentity.objects.exists()
    assert User.objects.count() == 1
    root.refresh_from_db()
    assert root.is_superuser == local.get("is_superuser", False)
    assert f"has the email of user {root.pk}, which has a usable password" in caplog.text
    assert "client-secret-for-tests" not in caplog.text


@pytest.mark.parametrize(
    "rights",
    [
        pytest.param({"is_superuser": True}, id="superuser"),
        pytest.param({"is_staff": True}, id="staff"),
    ],
)
def test_an_account_with_rights_is_not_linked_by_email_even_without_a_password(
    provider: str, rights: dict[str, bool]
) -> None:
    account = sso_account("root", **rights)
    at_provider(provider, "mallory", email=account.email, email_verified=True, groups=[])
    client = Client()

    response = sign_in(client, "mallory")

    assert_refused(client, response, "has administrator or reviewer rights")
    assert not ExternalIdentity.objects.exists()


def test_the_link_setting_links_a_local_account_but_never_keeps_it_superuser(
    settings: Any, provider: str, superuser: User
) -> None:
    settings.IAMPORTAL_SSO_LINK_LOCAL_ACCOUNTS = True
    at_provider(
        provider, "root", email=superuser.email, email_verified=True, groups=["team-payments"]
    )
    client = Client()

    sign_in(client, "root")

    assert signed_in_user(client) == superuser
    superuser.refresh_from_db()
    assert not superuser.is_superuser
    assert not superuser.is_staff
    assert client.get("/api/v1/me").json()["permission_role"] == "engineer"
    assert identity_of(superuser) == [("oidc", provider, "root")]


def test_a_linked_superuser_gets_only_the_role_their_groups_give(
    provider: str, superuser: User
) -> None:
    ExternalIdentity.objects.create(kind="oidc", issuer=provider, subject="root", user=superuser)
    at_provider(
        provider, "root", email=superuser.email, email_verified=True, groups=["security-reviewers"]
    )
    client = Client()

    sign_in(client, "root")

    superuser.refresh_from_db()
    assert signed_in_user(client) == superuser
    assert (superuser.is_superuser, superuser.is_staff) == (False, True)
    assert client.get("/api/v1/me").json()["permission_role"] == "reviewer"


def test_later_sign_ins_find_the_account_by_subject_whatever_its_email(provider: str) -> None:
    dana_at_provider(provider, "team-payments")
    sign_in(Client())
    dana = User.objects.get()

    dana_at_provider(provider, "team-payments", email="dana.scully@example.com")
    client = Client()
    sign_in(client)

    assert signed_in_user(client) == dana
    dana.refresh_from_db()
    assert dana.email == "dana.scully@example.com"
    # The old address, now someone else's at the provider, is a new person here.
    at_provider(provider, "eve", email="Dana@Example.com", email_verified=True, groups=[])
    other = Client()
    sign_in(other, "eve")
    eve = signed_in_user(other)
    assert eve is not None and eve != dana
    assert User.objects.count() == 2


def test_an_email_another_subject_still_holds_here_does_not_get_in(provider: str) -> None:
    dana_at_provider(provider, "team-payments")
    sign_in(Client())
    dana = User.objects.get()
    at_provider(provider, "eve", email="dana@example.com", email_verified=True, groups=[])
    client = Client()

    response = sign_in(client, "eve")

    assert_refused(client, response, "signs in with another identity")
    assert identity_of(dana) == [("oidc", provider, "dana")]


def test_it_takes_the_next_page_through_the_provider(provider: str) -> None:
    dana_at_provider(provider)
    client = Client()

    start = client.get(reverse("oidc_authentication_init"), {"next": "/roles/"})
    response = back_at_iamportal(client, sign_in_at_provider(start["Location"], sub="dana"))

    assert response["Location"] == "/roles/"


def test_it_uses_pkce(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dana_at_provider(provider)
    redeemed: list[dict[str, str]] = []
    get_token = OidcBackend.get_token

    def spy(self: OidcBackend, payload: dict[str, str]) -> Any:
        redeemed.append(dict(payload))
        return get_token(self, payload)

    monkeypatch.setattr(OidcBackend, "get_token", spy)
    client = Client()

    authorization_url = start_sign_in(client)
    back_at_iamportal(client, sign_in_at_provider(authorization_url, sub="dana"))

    query = parse_qs(urlsplit(authorization_url).query)
    assert query["code_challenge_method"] == ["S256"]
    verifier = redeemed[0]["code_verifier"]
    assert query["code_challenge"] == [base64_url_encode(sha256(verifier.encode()).digest())]
    assert signed_in_user(client) is not None


def test_it_prefers_the_userinfo_to_the_id_token(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dana_at_provider(provider, "security-reviewers")
    get_token = OidcBackend.get_token

    def then_changed_at_the_provider(self: OidcBackend, payload: dict[str, str]) -> Any:
        tokens = get_token(self, payload)
        dana_at_provider(provider, "team-payments")
        return tokens

    monkeypatch.setattr(OidcBackend, "get_token", then_changed_at_the_provider)
    client = Client()

    sign_in(client)

    user = signed_in_user(client)
    assert user is not None
    assert group_names(user) == {"team-payments"}


def test_it_signs_in_with_explicit_endpoints(settings: Any, provider: str) -> None:
    settings.OIDC_OP_DISCOVERY_URL = ""
    settings.OIDC_OP_ISSUER = provider
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{provider}/oauth2/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{provider}/oauth2/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{provider}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{provider}/jwks"
    dana_at_provider(provider, "team-payments")
    client = Client()

    authorization_url = start_sign_in(client)
    back_at_iamportal(client, sign_in_at_provider(authorization_url, sub="dana"))

    assert authorization_url.startswith(f"{provider}/oauth2/authorize?")
    user = signed_in_user(client)
    assert user is not None
    assert group_names(user) == {"team-payments"}


def test_it_keeps_groups_managed_in_iamportal_when_no_groups_claim_is_configured(
    settings: Any, provider: str, reviewer: User
) -> None:
    settings.OIDC_GROUPS_CLAIM = ""
    ExternalIdentity.objects.create(kind="oidc", issuer=provider, subject="rita", user=reviewer)
    at_provider(provider, "rita", email=reviewer.email, email_verified=True, groups=["other"])
    client = Client()

    sign_in(client, "rita")

    assert signed_in_user(client) == reviewer
    assert group_names(reviewer) == {"security-reviewers"}


def test_it_reads_the_discovery_document_on_first_use_and_then_keeps_it(
    settings: Any, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dana_at_provider(provider)
    fetched: list[str] = []
    get = requests.get

    def counting_get(url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if url == settings.OIDC_OP_DISCOVERY_URL:
            fetched.append(url)
            assert kwargs["timeout"] == settings.OIDC_TIMEOUT
        return get(url, *args, **kwargs)

    monkeypatch.setattr(requests, "get", counting_get)

    sign_in(Client())
    sign_in(Client())

    assert len(fetched) == 1


# --- refusals -----------------------------------------------------------------------------


def test_it_rejects_an_id_token_for_another_audience(
    settings: Any, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The provider issues codes and tokens to the client that asks. A provider (or
    # anyone in between) answering with another application's ID token is played by
    # running the flow as that application and redeeming its code under its name.
    dana_at_provider(provider)
    client = Client()
    settings.OIDC_RP_CLIENT_ID = "another-application"
    callback = sign_in_at_provider(start_sign_in(client), sub="dana")
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    get_token = OidcBackend.get_token

    def as_the_other_application(self: OidcBackend, payload: dict[str, str]) -> Any:
        return get_token(self, {**payload, "client_id": "another-application"})

    monkeypatch.setattr(OidcBackend, "get_token", as_the_other_application)

    response = back_at_iamportal(client, callback)

    assert_refused(client, response, "The sign-in was rejected")
    assert not User.objects.exists()


def test_it_rejects_an_id_token_from_another_issuer(settings: Any, provider: str) -> None:
    settings.OIDC_OP_DISCOVERY_URL = ""
    settings.OIDC_OP_ISSUER = "https://login.example.com"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{provider}/oauth2/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{provider}/oauth2/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{provider}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{provider}/jwks"
    dana_at_provider(provider)
    client = Client()

    response = sign_in(client)

    assert_refused(client, response, "The sign-in was rejected")
    assert not User.objects.exists()


def test_it_refuses_an_unverified_email_and_says_why(provider: str) -> None:
    dana_at_provider(provider, "security-reviewers", email_verified=False)
    client = Client()

    response = sign_in(client)

    assert_refused(client, response, "did not confirm your email address")
    assert not User.objects.exists()
    # The reason is shown once.
    assert "did not confirm" not in client.get(FAILURE_URL).content.decode()


def test_it_accepts_an_unverified_email_when_configured_to(settings: Any, provider: str) -> None:
    settings.OIDC_REQUIRE_VERIFIED_EMAIL = False
    dana_at_provider(provider, email_verified=False)
    client = Client()

    sign_in(client)

    assert signed_in_user(client) is not None


def test_it_refuses_a_subject_without_an_email(provider: str) -> None:
    at_provider(provider, "no-email", email_verified=True, groups=["security-reviewers"])
    client = Client()

    response = sign_in(client, "no-email")

    assert_refused(client, response, "did not send an email address")


def test_it_refuses_an_inactive_user(provider: str) -> None:
    user = sso_account("dana", "team-payments", is_active=False)
    dana_at_provider(provider, "security-reviewers", email=user.email)
    client = Client()

    response = sign_in(client)

    assert_refused(client, response, "Your iamportal account is disabled")
    assert group_names(user) == {"team-payments"}


def test_it_explains_a_provider_it_cannot_reach(settings: Any) -> None:
    settings.OIDC_OP_DISCOVERY_URL = unreachable_discovery_url()
    settings.OIDC_TIMEOUT = 2
    client = Client()

    response = client.get(reverse("oidc_authentication_init"))

    assert_refused(client, response, "could not complete the sign-in")


def test_the_failure_page_explains_even_without_a_reason(anonymous: Client) -> None:
    page = anonymous.get(FAILURE_URL)

    assert page.status_code == 403
    assert "Single sign-on did not complete" in page.content.decode()
    assert f'href="{reverse("login")}"' in page.content.decode()


def test_it_is_not_found_when_single_sign_on_is_not_configured(
    settings: Any, anonymous: Client
) -> None:
    settings.OIDC_RP_CLIENT_ID = ""

    assert anonymous.get(reverse("oidc_authentication_init")).status_code == 404
    assert anonymous.get(reverse("oidc_authentication_callback")).status_code == 404


# --- session refresh ---------------------------------------------------------------------


@pytest.fixture
def refreshing(settings: Any) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "iamportal.oidc.OidcSessionRefresh"]


def renewed_silently(renewal_url: str, sub: str) -> str:
    """The test provider keeps no browser session, so it answers every prompt=none
    with login_required. A provider that still knows the user answers as if they had
    signed in again: played by signing in without the prompt."""
    parts = urlsplit(renewal_url)
    query = [(name, value) for name, value in parse_qsl(parts.query) if name != "prompt"]
    return sign_in_at_provider(parts._replace(query=urlencode(query)).geturl(), sub=sub)


@pytest.mark.usefixtures("refreshing")
def test_it_renews_the_session_at_the_provider_and_syncs_the_groups_again(
    provider: str,
) -> None:
    dana_at_provider(provider, "team-payments", "security-reviewers")
    client = Client()
    sign_in(client)
    assert client.get("/roles/").status_code == 200
    dana_at_provider(provider, "team-payments")
    make_session_due_for_renewal(client)

    renewal = client.get("/roles/")

    assert renewal.status_code == 302
    assert parse_qs(urlsplit(renewal["Location"]).query)["prompt"] == ["none"]
    response = back_at_iamportal(client, renewed_silently(renewal["Location"], "dana"))
    assert response["Location"] == "/roles/"
    user = signed_in_user(client)
    assert user is not None
    assert group_names(user) == {"team-payments"}
    assert client.get("/roles/").status_code == 200


@pytest.mark.usefixtures("refreshing")
def test_it_signs_out_a_user_the_provider_no_longer_signs_in(provider: str) -> None:
    dana_at_provider(provider, "security-reviewers")
    client = Client()
    sign_in(client)
    make_session_due_for_renewal(client)

    renewal = client.get(reverse("dashboard"))
    answer = httpx.get(renewal["Location"], follow_redirects=False)
    response = back_at_iamportal(client, answer.headers["location"])

    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["login_required"]
    assert_refused(client, response, "Your session with your identity provider has ended")


@pytest.mark.usefixtures("refreshing")
def test_it_signs_out_a_user_whose_renewal_it_refuses(provider: str) -> None:
    dana_at_provider(provider, "security-reviewers")
    client = Client()
    sign_in(client)
    dana_at_provider(provider, "security-reviewers", email_verified=False)
    make_session_due_for_renewal(client)

    renewal = client.get(reverse("dashboard"))
    response = back_at_iamportal(client, renewed_silently(renewal["Location"], "dana"))

    assert_refused(client, response, "did not confirm your email address")


def test_it_explains_that_the_provider_turned_the_user_away(provider: str) -> None:
    client = Client()

    response = back_at_iamportal(client, sign_in_at_provider(start_sign_in(client), action="deny"))

    assert_refused(client, response, "did not let you into iamportal")


@pytest.mark.usefixtures("refreshing")
def test_it_renews_an_htmx_request_with_a_full_page_visit(provider: str) -> None:
    dana_at_provider(provider)
    client = Client()
    sign_in(client)
    make_session_due_for_renewal(client)

    response = client.get(
        "/roles/?q=pay",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/roles/?q=pa"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(f"{provider}/oauth2/authorize?")
    assert client.session["oidc_login_next"] == "/roles/?q=pa"


@pytest.mark.usefixtures("refreshing")
def test_it_does_not_send_password_sessions_to_the_provider(requester: User) -> None:
    client = Client()
    assert client.login(username=requester.username, password=PASSWORD)
    make_session_due_for_renewal(client)

    assert client.get(reverse("dashboard")).status_code == 200


# --- the checks themselves ----------------------------------------------------------------

ISSUER = "https://login.example.com"
NOW = 1_800_000_000.0


def id_token(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "dana", "exp": NOW + 300, "iat": NOW}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


@pytest.mark.parametrize(
    "claims",
    [
        id_token(),
        id_token(aud=[CLIENT_ID]),
        id_token(aud=[CLIENT_ID, "another-application"], azp=CLIENT_ID),
        id_token(exp=NOW - 30),
        id_token(iat=NOW + 30),
    ],
)
def test_it_accepts_an_id_token_for_this_client_within_the_clock_leeway(
    claims: dict[str, Any],
) -> None:
    id_token_check(claims, issuer=ISSUER, client_id=CLIENT_ID, now=NOW)


@pytest.mark.parametrize(
    "claims",
    [
        id_token(iss="https://login.example.net"),
        id_token(iss=None),
        id_token(aud="another-application"),
        id_token(aud=["another-application"]),
        id_token(aud=None),
        id_token(aud=[CLIENT_ID, "another-application"]),
        id_token(aud=[CLIENT_ID, "another-application"], azp="another-application"),
        id_token(azp="another-application"),
        id_token(exp=NOW - 120),
        id_token(exp=None),
        id_token(exp="tomorrow"),
        id_token(iat=NOW + 120),
        id_token(iat=None),
        id_token(sub=""),
        id_token(sub=None),
    ],
)
def test_it_rejects_an_id_token_not_for_this_client_or_out_of_date(
    claims: dict[str, Any],
) -> None:
    with pytest.raises(SuspiciousOperation):
        id_token_check(claims, issuer=ISSUER, client_id=CLIENT_ID, now=NOW)


def test_userinfo_wins_but_groups_only_in_the_id_token_are_kept() -> None:
    merged = claims_merge(
        id_token={"sub": "dana", "email": "old@example.com", "groups": ["team-payments"]},
        userinfo={"sub": "dana", "email": "dana@example.com", "email_verified": True},
    )

    assert merged["email"] == "dana@example.com"
    assert merged["email_verified"] is True
    assert merged["groups"] == ["team-payments"]


def test_it_refuses_userinfo_about_another_subject() -> None:
    with pytest.raises(SuspiciousOperation):
        claims_merge(id_token={"sub": "dana"}, userinfo={"sub": "mallory", "email": "x@y.z"})


@pytest.mark.usefixtures("refreshing")
def test_the_metadata_is_not_read_before_a_sign_in_needs_it(settings: Any, requester: User) -> None:
    settings.OIDC_OP_DISCOVERY_URL = unreachable_discovery_url()
    client = Client()

    OidcBackend()
    assert client.get(reverse("login")).status_code == 200
    assert client.login(username=requester.username, password=PASSWORD)
    assert client.get(reverse("dashboard")).status_code == 200


@pytest.mark.usefixtures("refreshing")
def test_a_session_due_for_renewal_cannot_post_or_call_the_api(provider: str) -> None:
    dana_at_provider(provider, "team-payments")
    client = Client(enforce_csrf_checks=False)
    sign_in(client)
    make_session_due_for_renewal(client)

    api = client.get("/api/v1/roles")
    assert api.status_code == 401
    assert api.json()["code"] == "session_expired"
    post = client.post(reverse("api_token_create"), {"name": "x", "expires_in_days": "30"})
    assert post.status_code == 403
    assert "needs renewing" in post.content.decode()
    # A page load still renews the session at the provider, as before.
    assert client.get(reverse("dashboard")).status_code == 302


# --- logging out ------------------------------------------------------------------------------


def test_logging_out_ends_the_session_at_the_provider_too(provider: str) -> None:
    dana_at_provider(provider)
    client = Client()
    sign_in(client)

    response = client.post("/logout/")

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{provider}/oauth2/end_session"
    )
    assert dict(parse_qsl(location.query)) == {
        "client_id": CLIENT_ID,
        "post_logout_redirect_uri": "http://testserver/login/",
    }
    assert signed_in_user(client) is None
    assert httpx.get(response["Location"]).status_code == 200  # the provider's sign-out page


def test_provider_logout_can_be_turned_off(settings: Any, provider: str) -> None:
    settings.IAMPORTAL_OIDC_PROVIDER_LOGOUT = False
    dana_at_provider(provider)
    client = Client()
    sign_in(client)

    response = client.post("/logout/")

    assert response["Location"] == "/login/"
    assert signed_in_user(client) is None


def test_a_provider_without_end_session_endpoint_gets_a_local_logout(
    settings: Any, provider: str
) -> None:
    settings.OIDC_OP_DISCOVERY_URL = ""
    settings.OIDC_OP_ISSUER = provider
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{provider}/oauth2/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{provider}/oauth2/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{provider}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{provider}/jwks"
    dana_at_provider(provider)
    client = Client()
    sign_in(client)

    assert client.post("/logout/")["Location"] == "/login/"

    settings.OIDC_OP_END_SESSION_ENDPOINT = f"{provider}/oauth2/end_session?ui=1"
    sign_in(client)
    location = client.post("/logout/")["Location"]
    assert location.startswith(f"{provider}/oauth2/end_session?ui=1&client_id={CLIENT_ID}&")


def test_password_sessions_and_an_unreachable_provider_log_out_locally(
    settings: Any, provider: str, requester: User
) -> None:
    client = client_for(requester)
    assert client.post("/logout/")["Location"] == "/login/"

    dana_at_provider(provider)
    sso = Client()
    sign_in(sso)
    settings.OIDC_OP_DISCOVERY_URL = unreachable_discovery_url()
    forget_provider_metadata()
    assert sso.post("/logout/")["Location"] == "/login/"
    assert signed_in_user(sso) is None
