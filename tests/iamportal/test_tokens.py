"""Personal API tokens: shown once, stored as a hash, revocable, never more than their user."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from iamportal.models import ApiToken
from tests.factories import client_for

pytestmark = pytest.mark.django_db


def create_token(user: User, name: str = "audit script", days: int = 30) -> str:
    response = client_for(user).post(
        "/profile/tokens/", {"name": name, "expires_in_days": str(days)}
    )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    match = re.search(r'<pre id="new-token">(iamp_[\w-]+)</pre>', response.content.decode())
    assert match, "the new token is shown once on the page"
    return match.group(1)


def api(token: str, scheme: str = "Token", path: str = "/api/v1/me") -> Any:
    return Client().get(path, HTTP_AUTHORIZATION=f"{scheme} {token}")


def test_a_token_acts_as_its_user(reviewer: User) -> None:
    raw = create_token(reviewer)
    for scheme in ("Token", "Bearer"):
        response = api(raw, scheme)
        assert response.status_code == 200
        assert response.json()["username"] == "rita"
        assert response.json()["permission_role"] == "reviewer"
    assert ApiToken.objects.get().last_used_at is not None


def test_the_raw_token_is_not_in_the_database(requester: User) -> None:
    raw = create_token(requester)
    token = ApiToken.objects.get()
    assert raw not in {token.digest, token.hint, token.name}
    assert raw.startswith(token.hint)
    assert len(token.hint) < len(raw) // 3
    for row in ApiToken.objects.values_list():
        assert all(raw not in str(value) for value in row)


def test_a_revoked_token_gets_401(requester: User) -> None:
    raw = create_token(requester)
    token = ApiToken.objects.get()
    response = client_for(requester).post(f"/profile/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    response = api(raw)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_an_expired_token_gets_401(requester: User) -> None:
    raw = create_token(requester)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api(raw).status_code == 401


def test_a_token_of_a_disabled_user_gets_401(requester: User) -> None:
    raw = create_token(requester)
    User.objects.filter(pk=requester.pk).update(is_active=False)
    assert api(raw).status_code == 401


@pytest.mark.parametrize("header", ["Token", "Token a b", "Bearer " + "x" * 300, "Token nope"])
def test_a_malformed_or_unknown_token_gets_401(header: str) -> None:
    response = Client().get("/api/v1/me", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_no_credentials_get_401_not_a_login_page(anonymous: Client) -> None:
    assert anonymous.get("/api/v1/me").status_code == 401


def test_a_token_cannot_reach_django_admin(superuser: User) -> None:
    raw = create_token(superuser)
    response = Client().get("/admin/", HTTP_AUTHORIZATION=f"Token {raw}")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_nobody_can_revoke_another_users_token(requester: User, outsider: User) -> None:
    raw = create_token(requester)
    token = ApiToken.objects.get()
    response = client_for(outsider).post(f"/profile/tokens/{token.pk}/revoke/")
    assert response.status_code == 404
    assert api(raw).status_code == 200
    assert "audit script" not in client_for(outsider).get("/profile/").content.decode()


def test_anonymous_users_cannot_create_or_revoke_tokens(anonymous: Client) -> None:
    assert (
        anonymous.post("/profile/tokens/", {"name": "x", "expires_in_days": "30"}).status_code
        == 302
    )
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "  ", "expires_in_days": "30"}, "This field is required"),
        ({"name": "x", "expires_in_days": "7"}, "Select a valid choice"),
        ({"name": "x" * 101, "expires_in_days": "30"}, "at most 100 characters"),
    ],
)
def test_bad_token_input_is_a_form_error(
    requester: User, data: dict[str, str], message: str
) -> None:
    response = client_for(requester).post("/profile/tokens/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_token_that_never_expires(requester: User) -> None:
    raw = create_token(requester, days=0)
    assert ApiToken.objects.get().expires_at is None
    assert api(raw).status_code == 200
