"""The navigation marks the section of the page it is on, for every page, from
one context processor."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.factories import client_for

pytestmark = pytest.mark.django_db


def current(page: str) -> list[str]:
    """The labels of the navigation links marked as the current page."""
    marked = 'class="active" aria-current="page">'
    return [part.split("<", 1)[0] for part in page.split(marked)[1:]]


@pytest.mark.parametrize(
    ("url_name", "section"),
    [
        ("my_roles", "My roles"),
        ("dashboard", "Dashboard"),
        ("account_list", "Accounts"),
        ("role_list", "Roles"),
        ("resource_list", "Resources"),
        ("database_list", "Databases"),
        ("request_list", "Requests"),
        ("request_new", "Requests"),
        ("request_queue", "Review"),
        ("status", "Status"),
        ("profile", None),
    ],
)
def test_each_page_marks_its_section_and_no_other(
    admin_user: User, url_name: str, section: str | None
) -> None:
    page = client_for(admin_user).get(reverse(url_name)).content.decode()
    assert current(page) == ([section] if section else [])


@pytest.mark.parametrize("member", ["requester", "reviewer", "admin_user", "outsider"])
def test_a_request_that_does_not_exist_is_a_404_in_the_requests_section(
    request: pytest.FixtureRequest, member: str, settings: Any
) -> None:
    settings.DEBUG = False
    user = request.getfixturevalue(member)
    client = client_for(user)
    client.raise_request_exception = False
    response = client.get(reverse("request_detail", args=[999_999]))
    assert response.status_code == 404
    assert current(response.content.decode()) == ["Requests"]
