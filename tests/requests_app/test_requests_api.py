"""The requests API with personal tokens: generate, lint, submit (and dry
run), list and read; every bad input is a 4xx JSON answer that creates nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from iamportal.services import api_token_create
from requests_app import services
from requests_app.apis import BODY_MAX_BYTES
from requests_app.models import Change, PolicyRequest, RequestEvent
from tests.requests_app.test_wizard import (
    BUCKET_ARN,
    EVENTS_POLICY,
    QUEUE_ARN,
    Inventory,
    inventory,
)

pytestmark = pytest.mark.django_db

GENERATE = "/api/v1/policies/generate"
LINT = "/api/v1/policies/lint"
REQUESTS = "/api/v1/requests"
READ_BUCKET = {"service": "s3", "resource": BUCKET_ARN, "access": ["list", "read"]}


@pytest.fixture
def inv(db: None) -> Inventory:
    return inventory()


def api_client(user: User) -> Client:
    _, raw = api_token_create(user=user, name="script", expires_in_days=1)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.fixture
def alice(requester: User) -> Client:
    return api_client(requester)


def post(client: Client, path: str, body: Any) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data, content_type="application/json")


def nothing_created() -> bool:
    return not PolicyRequest.objects.exists() and not Change.objects.exists()


def submit_body(inv: Inventory, **extra: Any) -> dict[str, Any]:
    return {
        "role": inv.api.arn,
        "intents": [READ_BUCKET],
        "justification": "Settlement reports for PAY-1234.",
        **extra,
    }


# --- authentication -----------------------------------------------------------------


def test_every_endpoint_needs_credentials(anonymous: Client, inv: Inventory) -> None:
    for method, path in (
        ("post", GENERATE),
        ("post", LINT),
        ("post", REQUESTS),
        ("get", REQUESTS),
        ("get", f"{REQUESTS}/1"),
    ):
        response = getattr(anonymous, method)(path, content_type="application/json")
        assert response.status_code == 401, path
        assert "detail" in response.json()
    assert nothing_created()


def test_the_endpoints_are_in_the_openapi_schema(alice: Client) -> None:
    schema = Client().get(reverse("api_schema"), {"format": "json"})
    paths = json.loads(schema.content)["paths"]
    assert set(paths[GENERATE]) == {"post"}
    assert set(paths[LINT]) == {"post"}
    assert set(paths[REQUESTS]) == {"get", "post"}
    assert set(paths[REQUESTS + "/{id}"]) == {"get"}
    create = paths[REQUESTS]["post"]["responses"]
    assert {"200", "201", "400", "404"} <= set(create)


# --- generate -------------------------------------------------------------------------


def test_generate_turns_intents_into_a_policy_with_notes(alice: Client) -> None:
    intents = [
        {**READ_BUCKET, "access": ["read", "delete"]},
        {"service": "sqs", "resource": QUEUE_ARN, "access": ["send"]},
    ]
    response = post(alice, GENERATE, {"intents": intents})
    assert response.status_code == 200
    body = response.json()
    actions = {a for s in body["document"]["Statement"] for a in s["Action"]}
    assert {"s3:GetObject", "sqs:SendMessage"} <= actions
    assert "s3:DeleteObject" not in actions
    assert [note["kind"] for note in body["notes"]] == ["destructive"]
    assert body["notes"][0]["actions"] == ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    assert body["size"] == len(json.dumps(body["document"], separators=(",", ":")))


def test_generate_answers_an_intent_error_with_its_field_and_index(alice: Client) -> None:
    intents = [READ_BUCKET, {"service": "s3", "resource": QUEUE_ARN, "access": ["read"]}]
    response = post(alice, GENERATE, {"intents": intents})
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "resource"
    assert body["index"] == 1
    assert "sqs" in body["detail"]
    assert body["errors"] == {"resource": [body["detail"]]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "intents"),
        ({"intents": []}, "intents"),
        ({"intents": [{"service": "s3"}]}, "intents"),
        ({"intents": "s3"}, "intents"),
        ({"intents": [{**READ_BUCKET, "service": "x" * 65}]}, "intents"),
    ],
)
def test_generate_refuses_malformed_input(alice: Client, body: Any, field: str) -> None:
    response = post(alice, GENERATE, body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert response.json()["detail"].startswith(f"{field}:")


def test_an_unknown_service_is_a_400(alice: Client) -> None:
    response = post(alice, GENERATE, {"intents": [{**READ_BUCKET, "service": "notaservice"}]})
    assert response.status_code == 400
    assert response.json()["field"] == "service"
    assert "notaservice" in response.json()["detail"]


# --- lint -----------------------------------------------------------------------------


def test_lint_returns_findings_for_an_object_or_a_string(alice: Client) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    for given in (document, json.dumps(document)):
        response = post(alice, LINT, {"document": given})
        assert response.status_code == 200
        findings = response.json()["findings"]
        wildcard = next(f for f in findings if f["code"] == "resource-wildcard")
        assert set(wildcard) == {"severity", "code", "title", "detail", "location"}
        assert wildcard["severity"] == "warning"
        assert wildcard["location"] == "/Statement/0/Resource"


def test_lint_counts_the_roles_other_policies_against_the_size_limit(alice: Client) -> None:
    response = post(alice, LINT, {"document": EVENTS_POLICY, "other_inline_policies_size": 10_200})
    assert "policy-too-large" in {f["code"] for f in response.json()["findings"]}
    response = post(alice, LINT, {"document": EVENTS_POLICY})
    assert response.json()["findings"] == []


def test_lint_reports_what_is_not_a_policy(alice: Client) -> None:
    for given, code in (("{", "invalid-json"), ([1, 2], "document-not-object")):
        response = post(alice, LINT, {"document": given})
        assert response.status_code == 200
        assert code in {f["code"] for f in response.json()["findings"]}


@pytest.mark.parametrize("path", [GENERATE, LINT, REQUESTS])
def test_bodies_are_bounded_in_size_and_depth(alice: Client, path: str) -> None:
    deep = post(alice, path, '{"document": ' + "[" * 50_000 + "]" * 50_000 + "}")
    assert deep.status_code in (400, 413)
    assert deep.json()["detail"]
    nested = post(alice, path, '{"document": ' + "[" * 40 + "]" * 40 + "}")
    assert nested.status_code == 400
    assert "nested more than 32 levels" in nested.json()["detail"]
    huge = post(alice, path, {"document": "x" * BODY_MAX_BYTES})
    assert huge.status_code == 413
    assert "larger than" in huge.json()["detail"]
    broken = post(alice, path, "{not json")
    assert broken.status_code == 400
    assert "JSON" in broken.json()["detail"]
    assert nothing_created()


# --- submit -------------------------------------------------------------------------


def test_submit_from_intents_creates_a_pending_request(
    alice: Client, inv: Inventory, requester: User
) -> None:
    expires = (timezone.now() + timedelta(days=1)).isoformat()
    response = post(alice, REQUESTS, submit_body(inv, policy_name="reports", expires_at=expires))
    assert response.status_code == 201
    body = response.json()
    created = PolicyRequest.objects.get()
    assert body["id"] == created.pk
    assert body["status"] == "pending"
    assert body["requester"] == requester.username
    assert body["role_arn"] == inv.api.arn
    assert body["account_id"] == inv.account.account_id
    assert body["expires_at"] is not None
    [change] = body["changes"]
    assert change["type"] == "inline_policy_put"
    assert change["payload"]["policy_name"] == "reports"
    assert change["previous"] is None
    assert [event["kind"] for event in body["events"]] == ["submitted"]
    assert Change.objects.get().request == created
    assert RequestEvent.objects.get().kind == RequestEvent.Kind.SUBMITTED


def test_submit_with_a_document_and_the_role_id(alice: Client, inv: Inventory) -> None:
    body = {
        "role": str(inv.api.pk),
        "document": json.dumps(EVENTS_POLICY),
        "justification": "Send settlement events.",
        "policy_name": "payments-events",
    }
    response = post(alice, REQUESTS, body)
    assert response.status_code == 201
    change = Change.objects.get()
    assert change.payload == {"policy_name": "payments-events", "document": EVENTS_POLICY}
    assert change.previous == EVENTS_POLICY  # what the role had under that name


def test_a_dry_run_answers_the_preview_and_creates_nothing(alice: Client, inv: Inventory) -> None:
    response = post(alice, REQUESTS, submit_body(inv, dry_run=True))
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True
    assert body["role_arn"] == inv.api.arn
    assert body["policy_name"] == services.default_policy_name(inv.api)
    assert body["document"]["Statement"][1]["Action"][0] == "s3:GetObject"
    assert body["previous"] is None
    assert body["inline_size_after"] > 0
    assert body["findings"] == []
    assert nothing_created()


def test_an_unknown_role_is_404(alice: Client, inv: Inventory) -> None:
    for role in ("arn:aws:iam::111111111111:role/nope", "999999"):
        response = post(alice, REQUESTS, submit_body(inv, role=role))
        assert response.status_code == 404
        assert "No role" in response.json()["detail"]
    assert nothing_created()


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"justification": " "}, "justification", "Say why"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at", "must be in the future"),
        ({"expires_at": "someday"}, "expires_at", "Datetime has wrong format"),
        ({"policy_name": "no spaces allowed"}, "policy_name", "A policy name is 1-128"),
        ({"document": EVENTS_POLICY}, "document", "exactly one of them"),
        ({"intents": None, "document": "{"}, "document", "not valid JSON"),
        ({"intents": None, "document": [1]}, "document", "is a JSON object"),
        ({"role": ""}, "role", "may not be blank"),
    ],
)
def test_bad_requests_get_a_clear_400_and_create_nothing(
    alice: Client, inv: Inventory, extra: dict[str, Any], field: str, message: str
) -> None:
    body = submit_body(inv, **extra)
    if extra.get("intents", "") is None:
        del body["intents"]
    for dry_run in (False, True):
        response = post(alice, REQUESTS, {**body, "dry_run": dry_run})
        assert response.status_code == 400, response.json()
        errors = response.json()["errors"]
        assert message in " ".join(errors[field])
        assert message in response.json()["detail"]
    assert nothing_created()


def test_an_intent_error_on_submit_names_the_field(alice: Client, inv: Inventory) -> None:
    intents = [{**READ_BUCKET, "access": ["delete"]}]
    response = post(alice, REQUESTS, submit_body(inv, intents=intents))
    assert response.status_code == 400
    assert response.json()["field"] == "include_destructive"
    assert nothing_created()


def test_a_policy_too_big_with_the_roles_other_policies_is_a_400(
    alice: Client, inv: Inventory
) -> None:
    from tests.requests_app.test_wizard import big_policy

    inv.api.inline_policies = {"archive": big_policy(9_900)}
    inv.api.save(update_fields=["inline_policies"])
    response = post(alice, REQUESTS, submit_body(inv))
    assert response.status_code == 400
    assert "10,240" in response.json()["errors"]["document"][0]
    assert nothing_created()


# --- list and read ------------------------------------------------------------------


def submitted(user: User, inv: Inventory) -> PolicyRequest:
    preview = services.policy_request_preview(
        role=inv.api, document=EVENTS_POLICY, justification="Needed."
    )
    return services.policy_request_submit(requester=user, preview=preview)


def test_the_list_has_only_my_requests(
    alice: Client, inv: Inventory, requester: User, reviewer: User
) -> None:
    older = submitted(requester, inv)
    newer = submitted(requester, inv)
    submitted(reviewer, inv)
    response = alice.get(REQUESTS)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [newer.pk, older.pk]
    assert set(response.json()[0]) == {
        "id",
        "status",
        "role_arn",
        "account_id",
        "created_at",
        "expires_at",
    }


def test_a_request_is_readable_by_its_requester_and_reviewers_only(
    inv: Inventory, requester: User, reviewer: User, admin_user: User, outsider: User
) -> None:
    theirs = submitted(requester, inv)
    path = f"{REQUESTS}/{theirs.pk}"
    for user in (requester, reviewer, admin_user):
        response = api_client(user).get(path)
        assert response.status_code == 200, user
        assert response.json()["id"] == theirs.pk
        assert response.json()["justification"] == "Needed."
    refused = api_client(outsider).get(path)
    assert refused.status_code == 404
    assert refused.json() == {"detail": "No such request."}
    assert api_client(requester).get(f"{REQUESTS}/999999").status_code == 404
