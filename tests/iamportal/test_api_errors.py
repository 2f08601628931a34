"""The REST API's one exception handler: what the services refuse becomes a
status and a JSON body; anything unexpected stays a server error; Weep's
endpoints keep their own error shapes."""

from __future__ import annotations

from brokering import services as brokering_services
from brokering.weep import CliCredentialIssueApi
from iamportal.api_errors import api_exception_handler
from requests_app import services as request_services
from requests_app.apis import PolicyRequestApproveApi


def test_a_stale_revision_is_a_conflict_naming_the_current_one() -> None:
    exc = request_services.RequestRevisionStale("Changed.", current="abc123")
    response = api_exception_handler(exc, {"view": PolicyRequestApproveApi()})
    assert response is not None
    assert (response.status_code, response.data) == (
        409,
        {"detail": "Changed.", "revision": "abc123"},
    )


def test_a_rate_limit_says_when_to_retry() -> None:
    response = api_exception_handler(brokering_services.RateLimited(7), {"view": None})
    assert response is not None
    assert response.status_code == 429
    assert response["Retry-After"] == "7"


def test_an_unexpected_exception_stays_a_server_error() -> None:
    assert api_exception_handler(RuntimeError("boom"), {"view": PolicyRequestApproveApi()}) is None


def test_weep_endpoints_are_left_to_their_own_error_shapes() -> None:
    exc = request_services.RequestInvalid({"document": "Bad."})
    assert api_exception_handler(exc, {"view": CliCredentialIssueApi()}) is None
