"""No 500 anywhere: an unknown address renders iamportal's own 404 page (with the
navigation, for a signed-in user) when DEBUG is off, and JSON nested 10,000
levels deep is a clear 400 on every endpoint that takes a JSON body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from requests_app.models import PolicyRequest
from tests.factories import client_for, inventory, submitted

pytestmark = pytest.mark.django_db

DEEP = "[" * 10_000 + "]" * 10_000
DEEP_OBJECT = '{"requested_role": ' + DEEP + "}"


def no_raise(client: Client) -> Client:
    """A client that gets the 500 page a browser would, instead of the exception."""
    client.raise_request_exception = False
    return client


# --- unknown addresses with DEBUG off -------------------------------------------------


@pytest.mark.parametrize("path", ["/nothing-here/", "/accounts/1/roles/x/nope/", "/requests/x/"])
def test_an_unknown_page_is_iamportal_s_404_for_a_signed_in_user(
    requester: User, settings: Any, path: str
) -> None:
    settings.DEBUG = False
    response = no_raise(client_for(requester)).get(path)

    assert response.status_code == 404
    page = response.content.decode()
    assert "There is nothing here, or it is not yours to see." in page
    assert 'aria-label="Main"' in page  # the navigation, with no section marked current
    assert 'aria-current="page"' not in page
    assert "alice" in page


def test_an_unknown_page_is_iamportal_s_404_for_an_anonymous_visitor(
    anonymous: Client, settings: Any
) -> None:
    settings.DEBUG = False
    response = no_raise(anonymous).get("/nothing-here/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "There is nothing here, or it is not yours to see." in page
    assert 'aria-label="Main"' not in page


def test_a_page_that_names_its_section_still_marks_it(requester: User) -> None:
    page = client_for(requester).get(reverse("role_list")).content.decode()
    assert '<a href="/roles/" class="active" aria-current="page">Roles</a>' in page


# --- deeply nested JSON -----------------------------------------------------------


def _patterns(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def json_endpoints() -> list[str]:
    """Every named REST or Weep endpoint that takes a request body."""
    names = []
    for _, pattern in _patterns(get_resolver()):
        view = getattr(pattern.callback, "cls", None)
        if view is None or not pattern.name:
            continue
        if any(hasattr(view, method) for method in ("post", "put", "patch")):
            names.append(pattern.name)
    return sorted(set(names))


def test_the_list_of_json_endpoints_is_complete() -> None:
    assert json_endpoints() == [
        "api_console_url",
        "api_credentials",
        "api_database_token",
        "api_policy_generate",
        "api_policy_lint",
        "api_request_access_create",
        "api_request_approve",
        "api_request_cancel",
        "api_request_changes_create",
        "api_request_comment",
        "api_request_create",
        "api_request_reject",
        "api_request_retry",
        "weep_get_credentials",
    ]


# These act on the request named in the address and never read the body.
TAKE_NO_BODY = {"api_request_cancel", "api_request_retry"}


@pytest.fixture
def pending(requester: User) -> PolicyRequest:
    return submitted(requester, inventory().api)


@pytest.mark.parametrize("name", json_endpoints())
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_deeply_nested_json_is_a_400_on_every_endpoint(
    name: str, body: str, pending: PolicyRequest, requester: User, reviewer: User
) -> None:
    url = reverse(name, kwargs={"pk": pending.pk} if "<int:pk>" in _route(name) else {})
    # The reviewer may act on alice's request; alice may comment and cancel.
    user = reviewer if name in ("api_request_approve", "api_request_reject") else requester

    response = no_raise(client_for(user)).post(url, body, content_type="application/json")

    if name in TAKE_NO_BODY:
        assert response.status_code < 500
        return
    assert response.status_code == 400, response.content[:300]
    answer = response.json()
    if name.startswith("weep_"):
        assert answer["code"] == "904"
        assert "nested more than 32 levels" in answer["message"]
    else:
        assert "nested more than 32 levels" in answer["detail"]


def _route(name: str) -> str:
    for route, pattern in _patterns(get_resolver()):
        if pattern.name == name:
            return route
    raise LookupError(name)


@pytest.mark.parametrize(
    ("page", "field"),
    [
        ("admin:accounts_awsaccount_add", "aliases"),
        ("admin:accounts_awsaccount_add", "regions"),
        ("admin:requests_app_policytemplate_add", "parameters"),
    ],
)
def test_deeply_nested_json_in_an_admin_form_is_a_form_error(
    superuser: User, page: str, field: str
) -> None:
    response = no_raise(client_for(superuser)).post(reverse(page), {field: DEEP})

    assert response.status_code == 200
    assert "nested more than 32 levels" in response.content.decode()
