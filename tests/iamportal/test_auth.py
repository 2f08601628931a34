"""Local password sign-in modes and the trusted-proxy header authentication."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from iamportal import auth
from iamportal.models import ExternalIdentity, LoginFailure
from tests.factories import PASSWORD, client_for

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
    requester.set_unusable_password()
    requester.save(update_fields=["is_active", "password"])
    assert via_proxy(PROXY, "alice@example.com").status_code == 401


def test_a_proxy_identity_with_a_local_superusers_email_is_refused_and_told_why(
    header_auth: None, superuser: User
) -> None:
    response = via_proxy(PROXY, "ROOT@example.com", "iamportal-admins")
    assert response.status_code == 403
    assert "Ask an iamportal administrator to link your identity" in response.json()["detail"]
    page = Client().get("/profile/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_EMAIL="root@example.com")
    assert page.status_code == 403
    assert "Ask an iamportal administrator to link your identity" in page.content.decode()
    assert not ExternalIdentity.objects.exists()


def test_a_proxy_identity_links_an_account_without_password_or_rights(
    header_auth: None, requester: User
) -> None:
    requester.set_unusable_password()
    requester.save(update_fields=["password"])
    response = via_proxy(PROXY, "Alice@Example.com", "team-payments")
    assert response.json()["username"] == "alice"
    assert list(ExternalIdentity.objects.values_list("kind", "subject", "user")) == [
        ("proxy", "alice@example.com", requester.pk)
    ]


def test_the_link_setting_lets_a_proxy_identity_into_a_local_account_without_superuser(
    header_auth: None, settings: Any, superuser: User
) -> None:
    settings.IAMPORTAL_SSO_LINK_LOCAL_ACCOUNTS = True
    response = via_proxy(PROXY, "root@example.com", "team-web")
    assert response.json()["username"] == "root"
    assert response.json()["permission_role"] == "engineer"
    superuser.refresh_from_db()
    assert not superuser.is_superuser and not superuser.is_staff


def test_a_proxy_user_id_keeps_the_account_when_the_email_changes(
    header_auth: None, settings: Any
) -> None:
    settings.IAMPORTAL_HEADER_AUTH_USER = "X-Forwarded-User"
    settings.IAMPORTAL_HEADER_AUTH_EMAIL = "X-Forwarded-Email"

    def as_user(user_id: str, email: str) -> Any:
        return Client().get(
            "/api/v1/me",
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_USER=user_id,
            HTTP_X_FORWARDED_EMAIL=email,
        )

    first = as_user("u-1001", "nina@example.com").json()
    renamed = as_user("u-1001", "nina.new@example.com").json()
    assert renamed["username"] == first["username"]
    assert renamed["email"] == "nina.new@example.com"
    newcomer = as_user("u-2002", "nina@example.com").json()
    assert newcomer["username"] != first["username"]
    assert User.objects.count() == 2


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


ATTACKER = "203.0.113.66"
LAPTOP = "198.51.100.20"


def sign_in_from(address: str, username: str, password: str = PASSWORD) -> Any:
    client = Client(REMOTE_ADDR=address)
    return client.post("/login/", {"username": username, "password": password})


def failures(address: str, username: str, count: int, *, ago: timedelta = timedelta()) -> None:
    at = timezone.now() - ago
    LoginFailure.objects.bulk_create(
        LoginFailure(username=username, source_ip=address, at=at) for _ in range(count)
    )


def test_an_address_guessing_one_user_name_waits_longer_after_each_failure(
    requester: User,
) -> None:
    for _ in range(auth.LOGIN_FREE_FAILURES_PER_USERNAME):
        wrong = sign_in_from(ATTACKER, "alice", "guess")
        assert "did not match" in wrong.content.decode()
    failures(ATTACKER, "alice", 2)  # 5 failures: the next try waits 4 seconds
    throttled = sign_in_from(ATTACKER, "ALICE")  # even the right password waits now
    assert throttled.status_code == 200
    assert re.search(
        "Too many failed sign-ins for this user name from your address: wait [34] seconds",
        throttled.content.decode(),
    )
    failures(ATTACKER, "alice", 3)
    later = sign_in_from(ATTACKER, "alice").content.decode()
    assert re.search("wait 3[12] seconds", later)


def test_the_back_off_ends_when_its_time_has_passed(requester: User) -> None:
    failures(ATTACKER, "alice", 8, ago=timedelta(minutes=5))  # the wait was 32 seconds
    assert sign_in_from(ATTACKER, "alice").status_code == 302


def test_guessing_from_other_addresses_never_locks_the_user_out(requester: User) -> None:
    failures(ATTACKER, "alice", 100)
    for n in range(20):
        failures(f"192.0.2.{n}", "alice", 10)

    assert "Too many" in sign_in_from(ATTACKER, "alice").content.decode()
    response = sign_in_from(LAPTOP, "alice")
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_an_address_that_fails_for_many_user_names_waits_for_all_of_them(
    requester: User, reviewer: User
) -> None:
    for n in range(auth.LOGIN_FAILURES_PER_ADDRESS):
        failures(ATTACKER, f"user{n}", 1)
    throttled = sign_in_from(ATTACKER, "rita").content.decode()
    assert "Too many failed sign-ins from your address: wait 15 minutes" in throttled
    assert sign_in_from(LAPTOP, "rita").status_code == 302


def test_a_success_forgets_only_that_addresss_failures(requester: User) -> None:
    failures(ATTACKER, "alice", 2)
    failures(LAPTOP, "alice", 2)
    assert sign_in_from(LAPTOP, "alice").status_code == 302
    assert list(LoginFailure.objects.values_list("source_ip", flat=True).distinct()) == [ATTACKER]


def test_a_password_session_ends_when_password_sign_in_is_turned_off(
    settings: Any, requester: User
) -> None:
    client = Client()
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert client.get("/profile/").status_code == 200
    settings.IAMPORTAL_LOCAL_LOGIN = "false"
    assert client.get("/profile/").status_code == 302
