"""Access requests through every interface, for every member of the cast: the
page and its role search, the REST API, Weep; a request link wherever a role is
refused; the grants on the role page, revoked or given up there."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import IamRole
from brokering.cli_auth import cli_token_issue
from requests_app import services
from requests_app.models import PolicyRequest
from tests.factories import api_client, approve, client_for

pytestmark = pytest.mark.django_db

NEW = "/requests/access/new/"


def weep(user: User) -> Client:
    client = Client(HTTP_USER_AGENT="weep/0.3.26", REMOTE_ADDR="198.51.100.7")
    client.cookies["iamportal_auth"] = cli_token_issue(user=user).encoded
    return client


def weep_credentials(user: User, role: str) -> Any:
    return weep(user).post(
        "/api/v1/get_credentials",
        json.dumps({"requested_role": role, "no_ip_restrictions": False}),
        content_type="application/json",
    )


def role_page(role: IamRole) -> str:
    return reverse("role_detail", args=[role.account.account_id, role.name])


def ask_on_page(user: User, role: IamRole, **form: str) -> Any:
    data = {"duration": "8h", "justification": "On call this week.", **form}
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client_for(user).post(f"{NEW}?role={role.pk}", data)


def granted(requester: User, reviewer: User, role: IamRole) -> PolicyRequest:
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = services.access_request_submit(
            requester=requester,
            role=role,
            justification="On call.",
            duration=timedelta(hours=8),
        )
    return approve(request, reviewer)


def test_anonymous_visitors_are_sent_to_sign_in(anonymous: Client, role: IamRole) -> None:
    response = anonymous.get(NEW, {"role": role.pk})
    assert response.status_code == 302
    assert "/login" in response["Location"]
    posted = anonymous.post(f"{NEW}?role={role.pk}", {"duration": "8h"})
    assert posted.status_code == 302
    api = anonymous.post(
        "/api/v1/requests/access",
        json.dumps({"role": role.arn, "justification": "x", "hours": 1}),
        content_type="application/json",
    )
    assert api.status_code in (401, 403)
    assert not PolicyRequest.objects.exists()
    cli = Client().post(
        "/api/v1/get_credentials",
        json.dumps({"requested_role": role.arn, "no_ip_restrictions": False}),
        content_type="application/json",
    )
    assert cli.status_code in (401, 403)
    assert "Credentials" not in cli.json()


def test_the_role_search_offers_a_request_link(requester: User, role: IamRole) -> None:
    page = client_for(requester).get(NEW, {"q": "payments"}).content.decode()
    assert f'href="{NEW}?role={role.pk}"' in page
    assert "Request access to a role" in client_for(requester).get("/").content.decode()


def test_a_role_named_by_a_part_goes_to_the_search(requester: User, role: IamRole) -> None:
    response = client_for(requester).get(NEW, {"role": "arn:aws:iam::1:role/nothing-like-it"})
    assert response.status_code == 302
    assert "q=nothing-like-it" in response["Location"]


def test_a_requester_asks_on_the_page_and_then_sees_the_request_instead_of_the_form(
    requester: User, reviewer: User, role: IamRole
) -> None:
    client = client_for(requester)
    before = client.get(role_page(role)).content.decode()
    assert f"{NEW}?role={role.pk}" in before
    response = ask_on_page(requester, role, cli_only="on")
    request = PolicyRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("request_detail", args=[request.pk])
    assert (request.kind, request.status, request.requester) == ("access", "pending", requester)
    assert request.changes.get().payload["cli_only"] is True
    form = client.get(NEW, {"role": role.pk}).content.decode()
    assert 'id="access-pending"' in form and 'id="access-form"' not in form
    after = client.get(role_page(role)).content.decode()
    assert 'id="access-request-pending"' in after
    assert f"#{request.pk}" in after


def test_bad_input_on_the_page_is_a_form_error(requester: User, role: IamRole) -> None:
    for form in (
        {"duration": "forever"},
        {"duration": "date"},
        {"duration": "date", "until": "yesterday"},
        {"duration": "permanent"},
        {"justification": ""},
        {"starts_at": "2000-01-01 00:00"},
        {"duration": "7d", "starts_at": "soon"},
    ):
        response = ask_on_page(requester, role, **form)
        assert response.status_code == 400, form
        assert 'class="errorlist' in response.content.decode(), form
    assert not PolicyRequest.objects.exists()


def test_the_api_creates_an_access_request(requester: User, role: IamRole) -> None:
    response = api_client(requester).post(
        "/api/v1/requests/access",
        json.dumps(
            {"role": role.arn, "justification": "Incident 4711.", "hours": 8, "cli_only": True}
        ),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["status"], body["role_arn"]) == ("access", "pending", role.arn)
    assert body["changes"][0]["type"] == "role_access_grant"


@pytest.mark.parametrize(
    "body",
    [
        {"justification": "x", "hours": 1},
        {"role": "payments-api", "justification": "x"},
        {"role": "payments-api", "justification": "x", "hours": 0},
        {"role": "payments-api", "justification": "x", "hours": 9999},
        {"role": "payments-api", "justification": "x", "hours": 1, "permanent": True},
        {"role": "payments-api", "justification": "x", "permanent": True},
        {"role": "payments-api", "justification": "", "hours": 1},
        {"role": "payments-api", "justification": "x", "hours": "eight"},
        {"role": "payments-api", "justification": "x", "hours": 1, "starts_at": "2000-01-01"},
        # Refused for starting too late, not a 500 for ending past the calendar.
        {
            "role": "payments-api",
            "justification": "x",
            "hours": 8,
            "starts_at": "9999-12-31T23:00Z",
        },
        {
            "role": "payments-api",
            "justification": "x",
            "expires_at": "9999-12-31T23:59Z",
            "starts_at": "9999-12-31T23:00Z",
        },
    ],
)
def test_the_api_answers_bad_input_with_a_400(
    body: dict[str, Any], requester: User, role: IamRole
) -> None:
    response = api_client(requester).post(
        "/api/v1/requests/access", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert not PolicyRequest.objects.exists()


def test_every_refusal_names_the_way_forward(requester: User, role: IamRole) -> None:
    client = client_for(requester)
    refused = client.get(reverse("role_console_login", args=[role.arn]))
    assert refused.status_code == 404
    assert 'id="access-request-link"' in refused.content.decode()
    assert NEW in refused.content.decode()
    api = api_client(requester).post(
        "/api/v1/credentials", json.dumps({"role": role.arn}), content_type="application/json"
    )
    assert api.status_code == 404
    assert api.json()["request_url"].startswith("http://testserver/requests/access/new/?role=")
    console = api_client(requester).post(
        "/api/v1/console-url", json.dumps({"role": role.arn}), content_type="application/json"
    )
    assert console.status_code == 404
    assert "request_url" in console.json()
    answer = weep_credentials(requester, role.arn)
    assert answer.status_code == 403
    assert answer.json()["code"] == "903"
    assert "http://testserver/requests/access/new/?role=" in answer.json()["message"]
    nothing = weep_credentials(requester, "nothing-like-this")
    assert nothing.json()["code"] == "900"
    assert "/requests/access/new/?role=nothing-like-this" in nothing.json()["message"]


def test_a_grant_works_on_weep_and_the_api_at_once(
    requester: User, reviewer: User, role: IamRole
) -> None:
    assert weep_credentials(requester, role.arn).status_code == 403
    granted(requester, reviewer, role)
    answer = weep_credentials(requester, role.arn)
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.json()["Credentials"]["Expiration"], int)
    roles = weep(requester).get("/api/v1/get_roles").json()
    assert role.arn in roles
    api = api_client(requester).post(
        "/api/v1/credentials", json.dumps({"role": role.arn}), content_type="application/json"
    )
    assert api.status_code == 200


def test_the_role_page_lists_grants_for_reviewers_and_the_holder_only(
    requester: User, reviewer: User, admin_user: User, outsider: User, role: IamRole
) -> None:
    request = granted(requester, reviewer, role)
    holder_page = client_for(requester).get(role_page(role)).content.decode()
    assert f'id="grant-{request.pk}"' in holder_page
    assert "Give up" in holder_page
    for staff in (reviewer, admin_user):
        page = client_for(staff).get(role_page(role)).content.decode()
        assert f'id="grant-{request.pk}"' in page
        assert "alice@example.com" in page
        assert "rita@example.com" in page  # approved by
        assert ">Revoke<" in page
    outsider_page = client_for(outsider).get(role_page(role)).content.decode()
    assert f'id="grant-{request.pk}"' not in outsider_page
    assert "alice@example.com" not in outsider_page


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin"])
def test_a_grant_is_ended_from_the_role_page(
    who: str, requester: User, reviewer: User, admin_user: User, role: IamRole
) -> None:
    request = granted(requester, reviewer, role)
    actor = {"requester": requester, "reviewer": reviewer, "admin": admin_user}[who]
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client_for(actor).post(
            reverse("access_grant_revoke", args=[request.pk]), {"next": role_page(role)}
        )
    assert response.status_code == 302
    assert response["Location"] == role_page(role)
    request.refresh_from_db()
    assert request.status == "expired"
    assert weep_credentials(requester, role.arn).status_code == 403


def test_an_outsider_cannot_end_someone_elses_grant(
    requester: User, reviewer: User, outsider: User, anonymous: Client, role: IamRole
) -> None:
    request = granted(requester, reviewer, role)
    url = reverse("access_grant_revoke", args=[request.pk])
    assert client_for(outsider).post(url).status_code == 404
    assert anonymous.post(url).status_code == 302
    request.refresh_from_db()
    assert request.status == "applied"
    assert weep_credentials(requester, role.arn).status_code == 200


def test_an_open_redirect_after_ending_a_grant_is_refused(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = granted(requester, reviewer, role)
    response = client_for(requester).post(
        reverse("access_grant_revoke", args=[request.pk]), {"next": "//evil.example/"}
    )
    assert response["Location"] == reverse("request_detail", args=[request.pk])


def test_the_requester_cannot_approve_their_own_access_request_on_the_page(
    reviewer: User, role: IamRole
) -> None:
    ask_on_page(reviewer, role)
    request = PolicyRequest.objects.get()
    with TestCase.captureOnCommitCallbacks(execute=True):
        client_for(reviewer).post(
            reverse("request_approve", args=[request.pk]), {"revision": request.revision}
        )
    request.refresh_from_db()
    assert request.status == "pending"
    assert weep_credentials(reviewer, role.arn).status_code == 403


def test_a_start_time_is_shown_on_the_grant(requester: User, reviewer: User, role: IamRole) -> None:
    start = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    response = ask_on_page(requester, role, starts_at=start.strftime("%Y-%m-%d %H:%M"))
    assert response.status_code == 302
    request = approve(PolicyRequest.objects.get(), reviewer)
    page = client_for(requester).get(role_page(role)).content.decode()
    assert f'id="grant-{request.pk}"' in page
    assert start.strftime("%Y-%m-%d %H:%M") in page
    assert weep_credentials(requester, role.arn).status_code == 403
