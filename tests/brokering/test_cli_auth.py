"""Authentication on the Weep endpoints: the CLI token cookie, the client
certificate header from a trusted proxy, API tokens and the browser session."""

from __future__ import annotations

import time
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import jwt
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from brokering.cli_auth import (
    JWT_AUDIENCE,
    cli_token_issue,
    cli_token_user,
    signing_key,
)
from iamportal.models import ExternalIdentity
from iamportal.services import api_token_create
from tests.factories import Org, client_for

pytestmark = pytest.mark.django_db

PROXY = "10.9.0.5"


def with_cookie(value: str, name: str = "iamportal_auth", **extra: Any) -> Client:
    client = Client(**extra)
    client.cookies[name] = value
    return client


def roles(client: Client, **extra: Any) -> Any:
    return client.get("/api/v1/get_roles?all=true", **extra)


def assert_invalid_jwt(response: Any) -> None:
    assert response.status_code == 403
    body = response.json()
    assert set(body) == {"code", "message", "request_id"}
    assert body["code"] == "invalid_jwt"


def signed(claims: dict[str, Any], *, key: bytes | str | None = None, alg: str = "HS256") -> str:
    from django.conf import settings

    return jwt.encode(claims, key or signing_key(settings.SECRET_KEY), algorithm=alg)


def claims_for(user: User, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "iamportal",
        "aud": JWT_AUDIENCE,
        "sub": str(user.pk),
        "email": user.email,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


# --- the CLI token -----------------------------------------------------------------------------


def test_the_token_carries_the_claims_and_lifetime(requester: User, settings: Any) -> None:
    settings.IAMPORTAL_CLI_TOKEN_HOURS = 6
    token = cli_token_issue(user=requester)
    assert jwt.get_unverified_header(token.encoded)["alg"] == "HS256"
    claims = jwt.decode(
        token.encoded,
        signing_key(settings.SECRET_KEY),
        algorithms=["HS256"],
        audience=JWT_AUDIENCE,
    )
    assert claims["sub"] == str(requester.pk)
    assert claims["email"] == "alice@example.com"
    assert claims["iss"] == "iamportal"
    assert claims["exp"] - claims["iat"] == 6 * 3600
    assert token.expiration_epoch == claims["exp"]
    assert token.encoded not in repr(token)
    assert cli_token_user(token.encoded) == requester


def test_the_signing_key_is_derived_not_the_secret_key_itself(
    requester: User, settings: Any
) -> None:
    assert signing_key(settings.SECRET_KEY) != settings.SECRET_KEY.encode()
    forged = signed(claims_for(requester), key=settings.SECRET_KEY)
    assert cli_token_user(forged) is None
    assert_invalid_jwt(roles(with_cookie(forged)))


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": None},
        {"iat": None},
        {"sub": None},
        {"aud": None},
        {"iss": None},
        {"aud": "iamportal-something-else"},
        {"iss": "consoleme"},
        {"sub": "not-a-number"},
        {"exp": int(time.time()) - 3600},
        {"iat": int(time.time()) + 3600},
    ],
)
def test_tokens_with_wrong_or_missing_claims_are_refused(
    requester: User, changes: dict[str, Any]
) -> None:
    token = signed(claims_for(requester, **changes))
    assert cli_token_user(token) is None
    assert_invalid_jwt(roles(with_cookie(token)))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_unsigned_and_other_algorithm_tokens_are_refused(requester: User, settings: Any) -> None:
    unsigned = jwt.encode(claims_for(requester), "", algorithm="none")
    hs512 = signed(claims_for(requester), alg="HS512")
    for token in (unsigned, hs512, "garbage", "a.b.c", "x" * 5000):
        assert cli_token_user(token) is None
        assert_invalid_jwt(roles(with_cookie(token)))


def test_a_tampered_token_is_refused(requester: User, admin_user: User) -> None:
    header, _, signature = cli_token_issue(user=requester).encoded.split(".")
    other = cli_token_issue(user=admin_user).encoded.split(".")[1]
    assert_invalid_jwt(roles(with_cookie(f"{header}.{other}.{signature}")))


def test_an_expired_token_gets_invalid_jwt(requester: User, org: Org, settings: Any) -> None:
    long_ago = timezone.now() - timedelta(hours=settings.IAMPORTAL_CLI_TOKEN_HOURS, minutes=5)
    expired = cli_token_issue(user=requester, issued_at=long_ago).encoded
    response = with_cookie(expired).post(
        "/api/v1/get_credentials",
        {"requested_role": "payments-batch"},
        content_type="application/json",
    )
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "invalid_jwt"
    assert body["requested_role"] == ""
    assert len(body["request_id"]) == 36


def test_a_disabled_or_deleted_users_token_is_refused(requester: User, outsider: User) -> None:
    token = cli_token_issue(user=requester).encoded
    assert roles(with_cookie(token)).status_code == 200
    User.objects.filter(pk=requester.pk).update(is_active=False)
    assert_invalid_jwt(roles(with_cookie(token)))
    gone = cli_token_issue(user=outsider).encoded
    outsider.delete()
    assert_invalid_jwt(roles(with_cookie(gone)))


def test_tokens_survive_a_key_rotation_while_the_old_key_is_a_fallback(
    requester: User, settings: Any
) -> None:
    token = cli_token_issue(user=requester).encoded
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-for-this-test-only"
    assert cli_token_user(token) is None
    settings.SECRET_KEY_FALLBACKS = [old]
    assert cli_token_user(token) == requester


def test_the_cookie_name_comes_from_the_settings(requester: User, settings: Any) -> None:
    token = cli_token_issue(user=requester).encoded
    settings.IAMPORTAL_CLI_COOKIE_NAME = "consoleme_auth"
    assert roles(with_cookie(token, name="consoleme_auth")).status_code == 200
    assert roles(with_cookie(token, name="iamportal_auth")).status_code == 401


def test_a_bad_cookie_is_refused_even_with_a_valid_session(requester: User) -> None:
    browser = client_for(requester)
    assert roles(browser).status_code == 200
    browser.cookies["iamportal_auth"] = "expired-or-forged"
    assert_invalid_jwt(roles(browser))


def test_no_credentials_at_all_is_401_with_invalid_jwt(db: None) -> None:
    response = roles(Client())
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Token realm="iamportal"'
    body = response.json()
    assert set(body) == {"code", "message", "request_id"}
    assert body["code"] == "invalid_jwt"


# --- mTLS through a trusted proxy -----------------------------------------------------------------


@pytest.fixture
def mtls(settings: Any) -> None:
    settings.IAMPORTAL_MTLS_HEADER = "X-Client-Cert-Email"
    settings.IAMPORTAL_MTLS_TRUSTED_PROXIES = [ip_network("10.9.0.0/24")]


def without_password(user: User) -> User:
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return user


def test_the_certificate_identity_from_a_trusted_proxy_is_believed(
    mtls: None, requester: User, org: Org
) -> None:
    without_password(requester)
    response = roles(Client(), REMOTE_ADDR=PROXY, HTTP_X_CLIENT_CERT_EMAIL="Alice@Example.com")
    assert response.status_code == 200
    assert org.arn("prod/payments-batch") in response.json()


def test_a_new_certificate_identity_becomes_a_user(mtls: None, org: Org) -> None:
    response = roles(Client(), REMOTE_ADDR=PROXY, HTTP_X_CLIENT_CERT_EMAIL="new.person@example.com")
    assert response.status_code == 200
    assert response.json() == []
    assert User.objects.filter(email="new.person@example.com").exists()


def test_the_certificate_header_from_anyone_else_is_ignored(
    mtls: None, requester: User, caplog: pytest.LogCaptureFixture
) -> None:
    response = roles(Client(), REMOTE_ADDR="10.9.1.5", HTTP_X_CLIENT_CERT_EMAIL="alice@example.com")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_jwt"
    assert "untrusted address 10.9.1.5" in caplog.text


def test_the_certificate_header_is_ignored_when_mtls_is_off(requester: User) -> None:
    response = roles(Client(), REMOTE_ADDR=PROXY, HTTP_X_CLIENT_CERT_EMAIL="alice@example.com")
    assert response.status_code == 401


@pytest.mark.parametrize("value", ["alice", "not an email@example.com", "a@" + "b" * 300 + ".com"])
def test_a_certificate_identity_that_is_not_an_email_is_refused(
    mtls: None, requester: User, value: str
) -> None:
    response = roles(Client(), REMOTE_ADDR=PROXY, HTTP_X_CLIENT_CERT_EMAIL=value)
    assert response.status_code == 403
    assert response.json()["code"] == "403"


def test_a_certificate_with_a_local_accounts_email_is_refused_and_told_why(
    mtls: None, superuser: User
) -> None:
    response = roles(Client(), REMOTE_ADDR=PROXY, HTTP_X_CLIENT_CERT_EMAIL="Root@Example.com")
    assert response.status_code == 403
    assert "Ask an iamportal administrator to link your identity" in response.json()["message"]
    assert not ExternalIdentity.objects.exists()


def test_a_certificate_linked_to_an_account_signs_in_to_it(
    mtls: None, requester: User, org: Org
) -> None:
    ExternalIdentity.objects.create(
        kind="certificate", issuer="", subject="alice@example.com", user=requester
    )
    response = roles(Client(), REMOTE_ADDR=PROXY, HTTP_X_CLIENT_CERT_EMAIL="Alice@Example.com")
    assert response.status_code == 200
    assert org.arn("prod/payments-batch") in response.json()


def test_a_disabled_certificate_holder_is_refused(mtls: None, requester: User) -> None:
    without_password(requester)
    User.objects.filter(pk=requester.pk).update(is_active=False)
    response = roles(Client(), REMOTE_ADDR=PROXY, HTTP_X_CLIENT_CERT_EMAIL="alice@example.com")
    assert response.status_code == 403


def test_the_cli_cookie_is_checked_before_the_certificate(mtls: None, requester: User) -> None:
    client = with_cookie("forged")
    assert_invalid_jwt(
        roles(client, REMOTE_ADDR=PROXY, HTTP_X_CLIENT_CERT_EMAIL="alice@example.com")
    )


# --- API tokens and the browser session ---------------------------------------------------------


def test_api_tokens_work_on_the_weep_endpoints(requester: User, org: Org) -> None:
    _, raw = api_token_create(user=requester, name="weep", expires_in_days=1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert len(roles(client).json()) == 4
    response = client.post(
        "/api/v1/get_credentials",
        {"requested_role": "payments-batch"},
        content_type="application/json",
    )
    assert response.status_code == 200
    refused = roles(Client(HTTP_AUTHORIZATION="Bearer iamp_revoked-or-made-up"))
    assert refused.status_code == 401
    assert refused.json()["code"] == "401"


def test_the_browser_session_works_and_needs_csrf_to_post(requester: User, org: Org) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(requester)
    assert len(roles(browser).json()) == 4
    response = browser.post(
        "/api/v1/get_credentials",
        {"requested_role": "payments-batch"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "403"
    assert "CSRF" in response.json()["message"]


def test_a_certificate_is_not_enough_for_a_request_another_site_made(
    settings: Any, requester: User
) -> None:
    from ipaddress import ip_network

    settings.IAMPORTAL_MTLS_HEADER = "X-Client-Cert-Email"
    settings.IAMPORTAL_MTLS_TRUSTED_PROXIES = [ip_network("10.9.0.0/24")]
    without_password(requester)
    client = Client(REMOTE_ADDR="10.9.0.2", HTTP_X_CLIENT_CERT_EMAIL="alice@example.com")
    assert client.get("/api/v1/get_roles").status_code == 200
    forged = client.get("/api/v1/get_roles", HTTP_SEC_FETCH_SITE="cross-site")
    assert forged.status_code in (401, 403)
