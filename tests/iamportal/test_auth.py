"""Local password sign-in modes and the trusted-proxy header authentication."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db

PROXY = "10.1.2.3"


def sign_in(username: str) -> Any:
    return Client().post("/login/", {"username": username, "password": PASSWORD})


def test_everyone_with_a_password_signs_in_by_default(requester: User) -> None:
    response = sign_in("alice")
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_a_wrong_password_is_a_form_error(requester: User) -> None:
    response = Client().post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_break_glass_mode_lets_only_superusers_in(
    settings: Any, requester: User, superuser: User
) -> None:
    settings.IAMPORTAL_LOCAL_LOGIN = "superusers"
    refused = sign_in("alice")
    assert refused.status_code == 200
    assert "break-glass" in refused.content.decode()
    assert sign_in("root").status_code == 302


def test_password_sign_in_can_be_turned_off(settings: Any, superuser: User) -> None:
    settings.IAMPORTAL_LOCAL_LOGIN = "false"
    page = Client().get("/login/")
    assert '<form method="post" action="/login/">' not in page.content.decode()
    refused = sign_in("root")
    assert refused.status_code == 200
    assert "Password sign-in is turned off" in refused.content.decode()


@pytest.fixture
def header_auth(settings: Any) -> None:
    from ipaddress import ip_network

    settings.IAMPORTAL_HEADER_AUTH_USER = "X-Forwarded-Email"
    settings.IAMPORTAL_HEADER_AUTH_GROUPS = "X-Forwarded-Groups"
    settings.IAMPORTAL_HEADER_AUTH_TRUSTED_PROXIES = [ip_network("10.1.0.0/16")]
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "iamportal.auth.TrustedHeaderBackend",
    ]
    middleware = list(settings.MIDDLEWARE)
    position = middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
    middleware.insert(position, "iamportal.auth.TrustedHeaderMiddleware")
    settings.MIDDLEWARE = middleware


def via_proxy(address: str, email: str, groups: str = "") -> Any:
    return Client().get(
        "/api/v1/me",
        REMOTE_ADDR=address,
        HTTP_X_FORWARDED_EMAIL=email,
        HTTP_X_FORWARDED_GROUPS=groups,
    )


def test_headers_from_a_trusted_proxy_sign_the_user_in_with_their_groups(
    header_auth: None,
) -> None:
    response = via_proxy(PROXY, "Nina@Example.com", "team-web, security-reviewers")
    assert response.status_code == 200
    assert response.json() == {
        "username": "nina@example.com",
        "email": "Nina@example.com",
        "groups": ["security-reviewers", "team-web"],
        "permission_role": "reviewer",
    }
    again = via_proxy(PROXY, "nina@example.com", "team-web")
    assert again.json()["groups"] == ["team-web"]
    assert User.objects.filter(email__iexact="nina@example.com").count() == 1


def test_the_same_headers_from_any_other_address_are_ignored(header_auth: None) -> None:
    response = via_proxy("192.0.2.50", "admin@example.com", "iamportal-admins")
    assert response.status_code == 401
    assert not User.objects.filter(email="admin@example.com").exists()


def test_header_auth_is_off_unless_configured(requester: User) -> None:
    response = via_proxy(PROXY, "alice@example.com")
    assert response.status_code == 401


def test_header_auth_refuses_a_disabled_user(header_auth: None, requester: User) -> None:
    requester.is_active = False
    requester.save(update_fields=["is_active"])
    assert via_proxy(PROXY, "alice@example.com").status_code == 401


def test_the_profile_page_shows_who_i_am(reviewer: User) -> None:
    page = client_for(reviewer).get("/profile/").content.decode()
    assert "rita@example.com" in page
    assert "security-reviewers" in page
    assert "reviews and approves permission requests" in page


def test_the_profile_page_needs_a_login(anonymous: Client) -> None:
    response = anonymous.get("/profile/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_new_identity_never_takes_over_a_local_account_with_that_name(
    header_auth: None,
) -> None:
    local = User.objects.create_user(username="nina@example.com", email="nina@corp.example")
    response = via_proxy(PROXY, "nina@example.com")
    assert response.status_code == 200
    assert response.json()["username"] != "nina@example.com"
    assert response.json()["email"] == "nina@example.com"
    local.refresh_from_db()
    assert local.email == "nina@corp.example"


def test_repeated_wrong_passwords_lock_the_user_name_for_a_while(requester: User) -> None:
    from iamportal.auth import LOGIN_FAILURES_PER_USERNAME

    for _ in range(LOGIN_FAILURES_PER_USERNAME):
        Client().post("/login/", {"username": "alice", "password": "guess"})
    locked = sign_in("alice")  # even the right password waits now
    assert locked.status_code == 200
    assert "Too many failed sign-ins" in locked.content.decode()


def test_a_password_session_ends_when_password_sign_in_is_turned_off(
    settings: Any, requester: User
) -> None:
    client = Client()
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert client.get("/profile/").status_code == 200
    settings.IAMPORTAL_LOCAL_LOGIN = "false"
    assert client.get("/profile/").status_code == 302
