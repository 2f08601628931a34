"""Hostile input gets a clear 4xx, never a 500."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from brokering import services
from tests.factories import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/role/abc%00",
        "/noauth/v1/challenge_poller/abc%00",
        "/api/v2/get_resource_url?arn=arn:aws:s3:::b%00",
        "/api/v1/policies/typeahead?resource=iam_arn&search=x%00",
        "/roles/?q=pay%00",
        "/policies/?tag=team%3Dpay%00",
        "/policies/export.csv?q=pay%00",
        "/search/?q=pay%00",
    ],
)
def test_nul_characters_in_the_url_are_a_400(requester: User, path: str) -> None:
    response = client_for(requester).get(path)
    assert response.status_code == 400


def test_nul_characters_in_a_json_body_are_a_400(requester: User) -> None:
    response = client_for(requester).post(
        "/api/v1/get_credentials",
        json.dumps({"requested_role": "x\u0000"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "904"
    assert "NUL" in response.json()["message"]


def test_a_unicode_digit_limit_is_a_400_not_a_500(requester: User) -> None:
    response = client_for(requester).get(
        "/api/v1/policies/typeahead", {"resource": "account", "limit": "²"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "redirect",
    [
        "https://evil.example\\.console.aws.amazon.com/",
        "https://[::1",
        "https://console.aws.amazon.com:99999/",
        "https://console.aws.amazon.com/\t@evil.example",
        "https://eu-west-1.console.aws.amazon.com/ s3",
    ],
)
def test_tricky_console_redirects_are_refused(redirect: str) -> None:
    with pytest.raises(services.BadDestination):
        services.console_destination(redirect)


def test_the_destination_is_rebuilt_from_what_was_checked() -> None:
    assert services.console_destination("https://S3.Console.AWS.amazon.com/s3/home?region=x") == (
        "https://s3.console.aws.amazon.com/s3/home?region=x"
    )


def test_anonymous_nul_probe_is_a_400(anonymous: Client) -> None:
    assert anonymous.get("/noauth/v1/challenge_generator/a%00b").status_code == 400


def test_an_unknown_api_address_answers_json_and_an_unknown_page_html(client: Client) -> None:
    api = client.post("/api/v1/nothing-here", {"a": "b"})
    assert api.status_code == 404
    assert api.json() == {"detail": "Not found."}
    page = client.get("/nothing-here/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/api/v1/get_credentials", {"code", "message", "request_id", "requested_role"}),
        ("/api/v1/get_roles", {"code", "message", "request_id"}),
        ("/api/v2/get_roles", {"status", "status_code", "code", "message", "errors", "request_id"}),
    ],
)
def test_a_nul_character_in_a_weep_call_gets_weep_s_malformed_error(
    client: Client, path: str, shape: set[str]
) -> None:
    response = client.get(path, {"all": "true\x00"})
    assert response.status_code == 400
    assert set(response.json()) == shape
    assert response.json()["code"] == "904"
