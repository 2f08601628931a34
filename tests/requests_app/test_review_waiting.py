"""Requests waiting for a reviewer: where the reviewer lands after signing in,
the count in the navigation, and where the Approve button sits."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import IamRole
from requests_app.models import PolicyRequest
from tests.factories import PASSWORD, approve, client_for, requiring_two, submitted

pytestmark = pytest.mark.django_db


def sign_in(username: str, **extra: str) -> Any:
    return Client().post(reverse("login"), {"username": username, "password": PASSWORD, **extra})


def waiting_badge(user: User) -> str:
    """The count next to Review in the navigation, or "" when there is none."""
    page = client_for(user).get(reverse("request_list")).content.decode()
    if 'id="review-waiting"' not in page:
        return ""
    return page.split('id="review-waiting"', 1)[1].split(">", 1)[1].split("<", 1)[0]


# --- landing ------------------------------------------------------------------------


def test_a_reviewer_with_requests_waiting_lands_on_the_review_queue(
    requester: User, reviewer: User, role: IamRole
) -> None:
    submitted(requester, role)
    assert sign_in("rita")["Location"] == reverse("request_queue")
    # Coming back to the landing page counts as no particular page.
    assert sign_in("rita", next="/")["Location"] == reverse("request_queue")
    # A page asked for wins.
    assert sign_in("rita", next="/roles/")["Location"] == "/roles/"


def test_a_reviewer_with_nothing_waiting_lands_on_my_roles(
    requester: User, reviewer: User, role: IamRole
) -> None:
    assert sign_in("rita")["Location"] == "/"
    # Their own request, and one they already approved, are not waiting for them.
    submitted(reviewer, role)
    approve(submitted(requester, requiring_two(role)), reviewer)
    assert sign_in("rita")["Location"] == "/"


@pytest.mark.parametrize("who", ["requester", "outsider"])
def test_engineers_land_on_my_roles_whatever_is_pending(
    who: str, request: pytest.FixtureRequest, requester: User, role: IamRole
) -> None:
    user = request.getfixturevalue(who)
    submitted(requester, role)
    assert sign_in(user.username)["Location"] == "/"


# --- the count in the navigation -------------------------------------------------------


def test_the_navigation_counts_the_requests_waiting_for_the_reviewer(
    requester: User, reviewer: User, admin_user: User, role: IamRole
) -> None:
    assert waiting_badge(reviewer) == ""
    submitted(requester, role)
    submitted(requester, role, policy_name="second")
    submitted(reviewer, role, policy_name="rita-own")
    assert waiting_badge(reviewer) == "2"  # not her own
    assert waiting_badge(admin_user) == "3"


def test_the_count_leaves_out_requests_the_reviewer_already_approved(
    requester: User, reviewer: User, second_reviewer: User, role: IamRole
) -> None:
    approve(submitted(requester, requiring_two(role)), reviewer)
    assert PolicyRequest.objects.get().status == PolicyRequest.Status.PENDING
    assert waiting_badge(reviewer) == ""
    assert waiting_badge(second_reviewer) == "1"


@pytest.mark.parametrize("who", ["requester", "outsider"])
def test_engineers_see_no_review_count_and_cost_no_query_for_it(
    who: str, request: pytest.FixtureRequest, requester: User, role: IamRole
) -> None:
    user = request.getfixturevalue(who)
    submitted(requester, role)
    client = client_for(user)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("request_list")).content.decode()
    assert 'id="review-waiting"' not in page
    assert not [q for q in queries if "COUNT(" in q["sql"] and "approval" in q["sql"]]


def test_the_count_is_one_query_and_none_for_htmx_regions(
    requester: User, reviewer: User, role: IamRole
) -> None:
    submitted(requester, role)
    client = client_for(reviewer)

    def counts(**headers: str) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            client.get(reverse("role_list"), {"q": "x"}, headers=headers)
        return [q["sql"] for q in queries if "COUNT(" in q["sql"] and "approval" in q["sql"]]

    assert len(counts()) == 1
    assert counts(**{"HX-Request": "true"}) == []


# --- the review page -------------------------------------------------------------------


def test_the_approve_button_sits_below_the_diff_and_the_findings(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    page = client_for(reviewer).get(reverse("request_detail", args=[request.pk])).content.decode()
    approve_at = page.index('value="approve"')
    assert page.index('<pre class="diff"') < approve_at
    assert page.index("<h4>Findings</h4>") < approve_at
    assert page.index('name="reason"') > page.index("<h4>Findings</h4>")
    assert "the changes shown above" in page
    # The requester's own page has no decision to make.
    own = client_for(requester).get(reverse("request_detail", args=[request.pk])).content.decode()
    assert 'value="approve"' not in own and 'id="decision"' not in own
