"""The request page as its readers notice it: the status that updates by itself
while the request is applied, the order of the review, and the limits of what
they type."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import IamRole
from requests_app import services
from requests_app.models import Change, PolicyRequest
from tests.factories import approve, client_for, flashed, submitted

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
POLLING = 'hx-trigger="every 2s"'


def in_state(request: PolicyRequest, status: str) -> PolicyRequest:
    PolicyRequest.objects.filter(pk=request.pk).update(status=status)
    request.refresh_from_db()
    return request


# --- the status while it is applied ---------------------------------------------------


@pytest.mark.parametrize("status", ["approved", "applying", "expiring"])
def test_the_page_polls_its_status_while_a_job_works_on_the_request(
    status: str, requester: User, role: IamRole
) -> None:
    request = in_state(submitted(requester, role), status)
    url = reverse("request_detail", args=[request.pk])
    client = client_for(requester)

    page = client.get(url)
    region = client.get(url, headers=HTMX)

    html = page.content.decode()
    region_start = html.index('id="request-status-region"')
    assert POLLING in html[region_start : html.index(">", region_start)]
    assert f'hx-get="{url}"' in html
    assert "<h2>Changes</h2>" in html  # without JavaScript, the page is the whole page
    fragment = region.content.decode()
    assert fragment.lstrip().startswith('<section class="card" id="request-status-region"')
    assert "<html" not in fragment and "<h2>Changes</h2>" not in fragment
    assert POLLING in fragment
    assert "This updates by itself." in fragment
    assert "HX-Request" in region["Vary"]


def test_a_pending_request_does_not_poll(requester: User, role: IamRole) -> None:
    request = submitted(requester, role)
    url = reverse("request_detail", args=[request.pk])
    assert POLLING not in client_for(requester).get(url).content.decode()
    assert POLLING not in client_for(requester).get(url, headers=HTMX).content.decode()


def test_polling_stops_once_the_request_is_applied(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(submitted(requester, role), reviewer)
    assert request.status == PolicyRequest.Status.APPLIED
    change = request.changes.get()

    region = client_for(requester).get(reverse("request_detail", args=[request.pk]), headers=HTMX)

    fragment = region.content.decode()
    assert "hx-trigger" not in fragment
    assert "Done: every change is applied." in fragment
    assert "(1 of 1 change applied)" in fragment
    # The badges elsewhere on the page follow.
    assert 'id="request-status" hx-swap-oob="true">Applied</span>' in fragment
    assert f'id="change-status-{change.pk}" hx-swap-oob="true">Applied</span>' in fragment


@pytest.mark.parametrize("status", ["applied", "failed", "rejected", "cancelled", "expired"])
def test_a_request_in_a_final_state_never_polls(
    status: str, requester: User, reviewer: User, role: IamRole
) -> None:
    request = in_state(submitted(requester, role), status)
    url = reverse("request_detail", args=[request.pk])
    for client in (client_for(requester), client_for(reviewer)):
        assert POLLING not in client.get(url).content.decode()
        fragment = client.get(url, headers=HTMX).content.decode()
        assert "hx-trigger" not in fragment
        assert "Reload the page" in fragment


def test_a_failed_apply_says_so_and_where_to_retry(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = in_state(submitted(requester, role), "failed")
    Change.objects.filter(request=request).update(status=Change.Status.FAILED, error="Denied")
    fragment = (
        client_for(reviewer)
        .get(reverse("request_detail", args=[request.pk]), headers=HTMX)
        .content.decode()
    )
    assert "The apply failed" in fragment
    assert "for the timeline and to retry" in fragment
    assert "(0 of 1 change applied)" in fragment


def test_the_polled_status_goes_through_the_access_gate(
    requester: User, outsider: User, anonymous: Client, role: IamRole
) -> None:
    request = in_state(submitted(requester, role), "applying")
    url = reverse("request_detail", args=[request.pk])
    response = client_for(outsider).get(url, headers=HTMX)
    assert response.status_code == 404
    assert "request-status-region" not in response.content.decode()
    response = anonymous.get(url, headers=HTMX)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- what they type, and its limit -------------------------------------------------------


def counter_for(page: str, field_id: str) -> str:
    """The counter under the field with that id: its limit, as the page says it."""
    marker = f'data-counter-for="{field_id}"'
    assert marker in page, field_id
    return page.split(marker, 1)[1].split(">", 1)[1].split("<", 1)[0]


def test_the_comment_field_says_its_limit_before_it_is_reached(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    page = client_for(reviewer).get(reverse("request_detail", args=[request.pk])).content.decode()
    assert f'maxlength="{services.COMMENT_MAX_LENGTH}"' in page
    assert counter_for(page, "comment-body") == "Up to 5,000 characters"
    assert f'data-limit="{services.COMMENT_MAX_LENGTH}"' in page
    # The counting is a static file: the Content-Security-Policy allows no inline script.
    assert '<script src="/static/counter.js" defer></script>' in page


def test_the_justification_fields_say_their_limit(requester: User, role: IamRole) -> None:
    client = client_for(requester)
    client.post(
        reverse("request_permission_add", args=[role.pk]),
        {"service": "s3", "resource": "arn:aws:s3:::acme-invoices", "access": ["read"]},
    )
    page = client.get(reverse("request_review", args=[role.pk])).content.decode()
    assert f'maxlength="{services.JUSTIFICATION_MAX_LENGTH}"' in page
    assert counter_for(page, "id_justification") == "Up to 5,000 characters"
    # Asking to extend temporary access is justified too.
    request = in_state(submitted(requester, role), "applied")
    PolicyRequest.objects.filter(pk=request.pk).update(
        expires_at=timezone.now() + timedelta(days=1)
    )
    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert counter_for(page, "id_justification") == "Up to 5,000 characters"


def test_the_server_still_refuses_a_comment_over_the_limit(requester: User, role: IamRole) -> None:
    request = submitted(requester, role)
    response = client_for(requester).post(
        reverse("request_comment", args=[request.pk]),
        {"body": "x" * (services.COMMENT_MAX_LENGTH + 1)},
    )
    assert any("5,000" in m or "5000" in m for m in flashed(response))
    assert not request.comments.exists()


def test_the_counter_script_is_served_from_static_files() -> None:
    assert finders.find("counter.js") is not None
