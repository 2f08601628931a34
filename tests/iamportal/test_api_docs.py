"""Interactive API documentation at /api/docs/: iamportal's own files, under its CSP."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.factories import client_for

pytestmark = pytest.mark.django_db


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_the_api_docs_load_only_same_origin_files(requester: User) -> None:
    response = client_for(requester).get(reverse("api_docs"))

    html = response.content.decode()
    assert response.status_code == 200
    assets = _assets(html)
    assert any("swagger-ui-bundle.js" in asset for asset in assets)
    assert all(asset.startswith("/") and not asset.startswith("//") for asset in assets), assets
    assert "<script>" not in html and "<style" not in html  # nothing inline for the CSP to block
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a static file"


def test_the_api_docs_csp_allows_no_inline_script(anonymous: Any) -> None:
    response = anonymous.get(reverse("api_docs"))

    header = response["Content-Security-Policy"]
    policy = {part.split()[0]: part.split()[1:] for part in header.split("; ")}
    assert response.status_code == 200
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in header


def test_the_api_docs_initializer_is_a_script_file_pointing_at_the_schema(
    requester: User,
) -> None:
    client = client_for(requester)
    page = client.get(reverse("api_docs")).content.decode()
    initializer = next(src for src in _assets(page) if "script" in src.split("?")[-1])

    response = client.get(initializer)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert reverse("api_schema") in response.content.decode()
    assert client.get(reverse("api_schema")).status_code == 200


def test_the_profile_links_to_the_api_docs_beside_token_creation(requester: User) -> None:
    html = client_for(requester).get(reverse("profile")).content.decode()
    assert f'href="{reverse("api_docs")}"' in html
