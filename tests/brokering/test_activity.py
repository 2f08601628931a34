"""My activity: the user's own credential issuances and console sign-ins, and
the kind the web's Environment variables button is recorded as."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from brokering.models import CredentialIssuance
from brokering.views import ACTIVITY_PAGE_SIZE
from tests.factories import Org, client_for

pytestmark = pytest.mark.django_db


def record(
    user: User, role_arn: str, kind: str, *, outcome: str = "issued", **fields: object
) -> CredentialIssuance:
    return CredentialIssuance.objects.create(
        user=user, user_email=user.email, role_arn=role_arn, kind=kind, outcome=outcome, **fields
    )


def test_environment_variables_from_the_web_are_recorded_as_web_credentials(
    requester: User, org: Org
) -> None:
    role = org.roles["prod/payments-api"]

    response = client_for(requester).post(reverse("my_role_credentials", args=[role.pk]))

    assert response.status_code == 200
    issuance = CredentialIssuance.objects.get()
    assert issuance.kind == CredentialIssuance.Kind.WEB
    assert issuance.get_kind_display() == "Web (environment variables)"
    activity = client_for(requester).get(reverse("my_activity")).content.decode()
    assert "Web (environment variables)" in activity
    assert "CLI (Weep)" not in activity


def test_it_lists_my_issuances_newest_first_with_role_kind_outcome_and_address(
    requester: User, org: Org
) -> None:
    now = timezone.now()
    record(
        requester,
        org.arn("prod/payments-api"),
        "console",
        source_ip="10.0.0.1",
        requested_at=now - timedelta(hours=2),
    )
    record(
        requester,
        org.arn("dev/payments-api"),
        "cli",
        source_ip="10.0.0.2",
        outcome=CredentialIssuance.Outcome.DENIED,
        requested_at=now - timedelta(hours=1),
    )
    record(requester, org.arn("prod/web-frontend"), "web", source_ip="10.0.0.3", requested_at=now)

    response = client_for(requester).get(reverse("my_activity"))

    assert response.status_code == 200
    html = response.content.decode()
    positions = [html.index(org.arn(key)) for key in ("prod/web-frontend", "dev/payments-api")]
    positions.append(html.index(org.arn("prod/payments-api")))
    assert positions == sorted(positions)
    for text in ("Console", "CLI (Weep)", "Web (environment variables)", "Denied", "10.0.0.2"):
        assert text in html


@pytest.mark.parametrize("member", ["outsider", "reviewer", "admin_user"])
def test_everyone_sees_only_their_own_activity(
    requester: User, org: Org, member: str, request: pytest.FixtureRequest
) -> None:
    other = request.getfixturevalue(member)
    record(requester, org.arn("prod/payments-api"), "console", source_ip="10.9.9.9")
    record(other, org.arn("prod/ReadOnly"), "api", source_ip="10.8.8.8")

    html = client_for(other).get(reverse("my_activity")).content.decode()

    assert org.arn("prod/ReadOnly") in html
    assert "10.8.8.8" in html
    assert org.arn("prod/payments-api") not in html
    assert "10.9.9.9" not in html


def test_someone_without_activity_is_told_so(outsider: User) -> None:
    html = client_for(outsider).get(reverse("my_activity")).content.decode()
    assert "You have not asked for credentials or a console session yet." in html


def test_anonymous_visitors_are_sent_to_sign_in(anonymous: Client) -> None:
    response = anonymous.get(reverse("my_activity"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_it_pages_through_long_histories(requester: User, org: Org) -> None:
    now = timezone.now()
    oldest = record(requester, "arn:aws:iam::111111111111:role/oldest", "cli", requested_at=now)
    CredentialIssuance.objects.filter(pk=oldest.pk).update(requested_at=now - timedelta(days=1))
    for _ in range(ACTIVITY_PAGE_SIZE):
        record(requester, org.arn("prod/payments-api"), "cli", requested_at=now)
    client = client_for(requester)

    first = client.get(reverse("my_activity")).content.decode()
    second = client.get(reverse("my_activity"), {"page": 2}).content.decode()
    region = client.get(reverse("my_activity"), {"page": 2}, headers={"HX-Request": "true"})

    assert "role/oldest" not in first
    assert "Page 1 of 2" in first
    assert "role/oldest" in second
    assert "<html" not in region.content.decode()
    assert "role/oldest" in region.content.decode()


def test_my_roles_and_the_profile_link_to_my_activity(requester: User, org: Org) -> None:
    client = client_for(requester)
    for page in ("my_roles", "profile"):
        assert reverse("my_activity") in client.get(reverse(page)).content.decode(), page
