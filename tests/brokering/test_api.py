"""The REST API for scripts: my roles, credentials, console URL, with token auth."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client

from brokering.models import CredentialIssuance
from iamportal import aws
from iamportal.services import api_token_create
from tests.factories import Org

pytestmark = pytest.mark.django_db


def token_client(user: User) -> Client:
    _, raw = api_token_create(user=user, name="script", expires_in_days=30)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR="198.51.100.7")


def post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (
            "requester",
            {"prod/payments-api", "prod/payments-batch", "prod/web-frontend", "dev/payments-api"},
        ),
        ("reviewer", set()),
        ("admin_user", {"prod/break-glass"}),
        ("outsider", set()),
    ],
)
def test_each_member_of_the_cast_lists_exactly_their_roles(
    request: pytest.FixtureRequest, org: Org, member: str, expected: set[str]
) -> None:
    user: User = request.getfixturevalue(member)
    response = token_client(user).get("/api/v1/roles")
    assert response.status_code == 200
    assert {r["arn"] for r in response.json()} == {org.arn(k) for k in expected}


def test_anonymous_callers_get_401(anonymous: Client, org: Org) -> None:
    assert anonymous.get("/api/v1/roles").status_code == 401
    assert post(anonymous, "/api/v1/credentials", {"role": "payments"}).status_code == 401
    assert not CredentialIssuance.objects.exists()


def test_credentials_for_an_eligible_role_work_in_aws(requester: User, org: Org) -> None:
    response = post(token_client(requester), "/api/v1/credentials", {"role": "dev/service/pay"})
    assert response.status_code == 404  # "dev/" is not part of any ARN
    response = post(
        token_client(requester), "/api/v1/credentials", {"role": org.arn("dev/payments-api")}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["role_arn"] == org.arn("dev/payments-api")
    session = aws.new_session(
        aws_access_key_id=body["access_key_id"],
        aws_secret_access_key=body["secret_access_key"],
        aws_session_token=body["session_token"],
        region_name="us-east-1",
    )
    identity = aws.client("sts", session=session).get_caller_identity()
    assert identity["Arn"].endswith(":assumed-role/payments-api/alice@example.com")
    issuance = CredentialIssuance.objects.get(outcome="issued")
    assert issuance.kind == "api"
    assert issuance.outcome == "issued"
    assert issuance.source_ip == "198.51.100.7"
    assert issuance.account_id == "222222222222"
    row = " ".join(str(v) for v in CredentialIssuance.objects.values_list().get(outcome="issued"))
    assert body["secret_access_key"] not in row
    assert body["session_token"] not in row


def test_a_role_i_may_not_use_is_indistinguishable_from_none(
    outsider: User, requester: User, org: Org
) -> None:
    existing = post(
        token_client(outsider), "/api/v1/credentials", {"role": org.arn("prod/payments-api")}
    )
    missing = post(
        token_client(outsider),
        "/api/v1/credentials",
        {"role": "arn:aws:iam::111111111111:role/nope"},
    )
    assert existing.status_code == missing.status_code == 404
    # Apart from the request link, which echoes what was asked for, the answers are equal.
    asked = {"role": org.arn("prod/payments-api")}, {"role": "arn:aws:iam::111111111111:role/nope"}
    bodies = [existing.json(), missing.json()]
    for body, role in zip(bodies, asked, strict=True):
        assert body.pop("request_url") == "http://testserver/requests/access/new/?" + urlencode(
            role
        )
    assert bodies[0] == bodies[1]
    assert CredentialIssuance.objects.filter(outcome="denied").count() == 2


def test_an_ambiguous_role_lists_the_matches(requester: User, org: Org) -> None:
    response = post(token_client(requester), "/api/v1/credentials", {"role": "payments-api"})
    assert response.status_code == 409
    assert set(response.json()["matches"]) == {
        org.arn("prod/payments-api"),
        org.arn("dev/payments-api"),
    }


@pytest.mark.parametrize(
    "body",
    [{}, {"role": ""}, {"role": "x" * 3000}, {"role": ["a"]}],
)
def test_bad_input_is_a_400(requester: User, org: Org, body: dict[str, Any]) -> None:
    response = post(token_client(requester), "/api/v1/credentials", body)
    assert response.status_code == 400
    assert "role" in response.json()


@pytest.mark.usefixtures("rate_clock_stopped")
def test_the_rate_limit_answers_429_with_retry_after(
    requester: User, org: Org, settings: Any
) -> None:
    settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT = 2
    client = token_client(requester)
    for _ in range(2):
        assert (
            post(client, "/api/v1/credentials", {"role": org.arn("prod/payments-api")}).status_code
            == 200
        )
    refused = post(client, "/api/v1/credentials", {"role": org.arn("prod/payments-api")})
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert CredentialIssuance.objects.filter(outcome="rate_limited").count() == 1


def test_a_console_url_refuses_cli_only_roles_and_foreign_redirects(
    requester: User, org: Org
) -> None:
    client = token_client(requester)
    cli_only = post(client, "/api/v1/console-url", {"role": org.arn("prod/payments-batch")})
    assert cli_only.status_code == 400
    assert "command-line use only" in cli_only.json()["detail"]
    assert cli_only.json()["request_url"].startswith("http://testserver/requests/access/new/?role=")
    evil = post(
        client,
        "/api/v1/console-url",
        {"role": org.arn("prod/payments-api"), "redirect": "https://evil.example/"},
    )
    assert evil.status_code == 400
    assert not CredentialIssuance.objects.filter(outcome="issued").exists()


def test_the_api_is_in_the_openapi_schema(requester: User) -> None:
    schema = client_schema(requester)
    for path in ("/api/v1/roles", "/api/v1/credentials", "/api/v1/console-url"):
        assert path in schema["paths"]


def client_schema(user: User) -> dict[str, Any]:
    response = token_client(user).get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )
    assert response.status_code == 200
    return json.loads(response.content)
