"""The requests API with personal tokens: generate, lint, submit (and dry
run), list (with filters) and read, and the actions on a request (comment,
cancel, approve, reject, retry) for every member of the cast; every bad input
is a 4xx JSON answer that changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount
from iamportal.parsers import BODY_MAX_BYTES
from requests_app import services
from requests_app.models import Change, PolicyRequest, RequestEvent
from requests_app.revision import revision_of_request
from tests.factories import (
    BUCKET_ARN,
    EVENTS_POLICY,
    QUEUE_ARN,
    Inventory,
    account_create,
    admin_iam,
    api_client,
    policy_in_aws,
    role_in,
)
from tests.factories import submitted as submitted_for

pytestmark = pytest.mark.django_db

GENERATE = "/api/v1/policies/generate"
LINT = "/api/v1/policies/lint"
REQUESTS = "/api/v1/requests"
READ_BUCKET = {"service": "s3", "resource": BUCKET_ARN, "access": ["list", "read"]}
ACTIONS = ("comment", "cancel", "approve", "reject", "retry")


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
        ("post", f"{REQUESTS}/changes"),
        *(("post", f"{REQUESTS}/1/{action}") for action in ACTIONS),
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
    assert {"200", "400", "401", "403"} <= set(paths[REQUESTS]["get"]["responses"])
    for action in ACTIONS:
        responses = set(paths[f"{REQUESTS}/{{id}}/{action}"]["post"]["responses"])
        assert {"401", "403", "404", "409"} <= responses, action
        assert ("201" if action == "comment" else "200") in responses


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
    assert body["policy_name"] == services.default_policy_name(inv.api, document=body["document"])
    assert body["policy_name"].startswith("iamportal-s3-read-")
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


# --- naming the role as the credentials API does ----------------------------------------


def _another_role(inv: Inventory, name: str, *, account: AwsAccount | None = None) -> Any:
    owner = account or inv.account
    return inv.api.__class__.objects.create(
        account=owner,
        arn=f"arn:aws:iam::{owner.account_id}:role/{name}",
        name=name,
        content_hash="x",
        synced_at=timezone.now(),
    )


def test_a_request_names_its_role_by_a_unique_part_of_its_arn(
    alice: Client, inv: Inventory
) -> None:
    for named in ("payments-api", "PAYMENTS-API", "service/payments", inv.api.arn.upper()):
        response = post(alice, REQUESTS, submit_body(inv, role=named, dry_run=True))
        assert response.status_code == 200, (named, response.json())
        assert response.json()["role_arn"] == inv.api.arn
    response = post(alice, REQUESTS, submit_body(inv, role="payments-api"))
    assert response.status_code == 201
    assert PolicyRequest.objects.get().role_arn == inv.api.arn


def test_an_ambiguous_role_name_is_a_409_listing_the_matches_and_creates_nothing(
    alice: Client, inv: Inventory
) -> None:
    other = _another_role(inv, "payments-api-canary")
    response = post(alice, REQUESTS, submit_body(inv, role="payments-api"))
    assert response.status_code == 409
    body = response.json()
    assert set(body["matches"]) == {inv.api.arn, other.arn}
    assert "name one by its ARN" in body["detail"]
    assert nothing_created()
    # The whole ARN still names exactly one.
    assert post(alice, REQUESTS, submit_body(inv, role=inv.api.arn)).status_code == 201


def test_a_role_name_of_a_disabled_account_matches_nothing(alice: Client, inv: Inventory) -> None:
    hidden = AwsAccount.objects.create(
        account_id="333333333333", name="acme-archive", enabled=False
    )
    _another_role(inv, "archive-reader", account=hidden)
    response = post(alice, REQUESTS, submit_body(inv, role="archive-reader"))
    assert response.status_code == 404
    assert nothing_created()


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_member_names_a_role_the_same_way(
    who: str, request: pytest.FixtureRequest, inv: Inventory
) -> None:
    """Anyone signed in may ask for changes to any role: reviewers decide."""
    client = api_client(request.getfixturevalue(who))
    response = post(client, REQUESTS, submit_body(inv, role="payments-api", dry_run=True))
    assert response.status_code == 200
    assert response.json()["role_arn"] == inv.api.arn


def test_the_anonymous_cannot_resolve_a_role_name(inv: Inventory) -> None:
    anonymous = Client()
    response = post(anonymous, REQUESTS, submit_body(inv, role="payments-api", dry_run=True))
    assert response.status_code == 401
    assert "payments-api" not in response.content.decode()


def test_the_schema_documents_the_409_for_an_ambiguous_role(alice: Client) -> None:
    schema = alice.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/requests"]["post"]
    assert "409" in operation["responses"]
    role = schema["components"]["schemas"]["PolicyRequestCreateInput"]["properties"]["role"]
    assert "its name" in role["description"]


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
    from tests.factories import big_policy

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
        "requester",
        "role_arn",
        "account_id",
        "created_at",
        "expires_at",
        "risk",
        "revision",
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


# --- actions: who may do what ---------------------------------------------------------

BODIES: dict[str, dict[str, str]] = {
    "comment": {"body": "Which prefix do the reports use?"},
    "reject": {"reason": "Ask for the reports/ prefix only."},
}
REVIEWER_MAY = {"comment": 201, "cancel": 403, "approve": 200, "reject": 200, "retry": 200}
# Status code of each action on alice's request, by who asks.
WHO_MAY: dict[str, dict[str, int]] = {
    "requester": {"comment": 201, "cancel": 200, "approve": 403, "reject": 403, "retry": 403},
    "reviewer": REVIEWER_MAY,
    "admin_user": REVIEWER_MAY,
    "superuser": REVIEWER_MAY,
    "outsider": dict.fromkeys(ACTIONS, 404),
    "anonymous": dict.fromkeys(ACTIONS, 401),
}
# The request's status in the answer when the action succeeds.
STATUS_AFTER = {
    "comment": "pending",
    "cancel": "cancelled",
    "approve": "approved",
    "reject": "rejected",
    "retry": "approved",
}
EVENT_AFTER = {**STATUS_AFTER, "comment": "commented", "retry": "retried"}


def client_of(request: pytest.FixtureRequest, who: str) -> Client:
    """A token client for the member of the cast named by its fixture (only that
    user is created: each costs a password hash)."""
    if who == "anonymous":
        return Client()
    return api_client(request.getfixturevalue(who))


@pytest.fixture
def cast(request: pytest.FixtureRequest) -> dict[str, Client]:
    return {who: client_of(request, who) for who in WHO_MAY}


def act(client: Client, request: PolicyRequest, action: str, body: Any = None) -> Any:
    """The action with a valid body; an approval names the revision as it is now."""
    if body is None and action == "approve":
        body = {"revision": revision_of_request(request.pk)}
    return post(
        client,
        f"{REQUESTS}/{request.pk}/{action}",
        BODIES.get(action, {}) if body is None else body,
    )


def failed(request: PolicyRequest) -> PolicyRequest:
    """The request as a failed apply leaves it."""
    PolicyRequest.objects.filter(pk=request.pk).update(status=PolicyRequest.Status.FAILED)
    Change.objects.filter(request=request).update(status=Change.Status.FAILED, error="AccessDenied")
    request.refresh_from_db()
    return request


def trail(request: PolicyRequest) -> tuple[str, list[str], int, int]:
    """What an action changes: status, timeline, approvals, comments."""
    request.refresh_from_db()
    kinds = list(request.events.values_list("kind", flat=True))
    return request.status, kinds, request.approvals.count(), request.comments.count()


@pytest.mark.parametrize("who", list(WHO_MAY))
@pytest.mark.parametrize("action", ACTIONS)
def test_who_may_act_on_a_request(
    request: pytest.FixtureRequest,
    inv: Inventory,
    requester: User,
    who: str,
    action: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    theirs = submitted(requester, inv)
    if action == "retry":
        failed(theirs)
    before = trail(theirs)
    with django_capture_on_commit_callbacks(execute=True):
        response = act(client_of(request, who), theirs, action)
    expected = WHO_MAY[who][action]
    assert response.status_code == expected, response.json()
    if expected >= 400:
        assert response.json()["detail"]
        assert trail(theirs) == before
        return
    body = response.json()
    assert body["id"] == theirs.pk
    assert body["status"] == STATUS_AFTER[action]
    assert body["events"][-1]["kind"] == EVENT_AFTER[action]
    if action == "comment":
        assert body["comments"][-1]["body"] == BODIES["comment"]["body"]
    assert trail(theirs) != before


def test_a_teammate_cannot_see_or_act_on_a_request(inv: Inventory, requester: User) -> None:
    from tests.factories import make_user

    theirs = submitted(requester, inv)
    teammate = api_client(make_user("bob", "team-payments"))
    assert teammate.get(f"{REQUESTS}/{theirs.pk}").status_code == 404
    for action in ACTIONS:
        response = act(teammate, theirs, action)
        assert response.status_code == 404, action
        assert response.json() == {"detail": "No such request."}


def test_nobody_approves_their_own_request(inv: Inventory, reviewer: User) -> None:
    own = submitted(reviewer, inv)
    response = act(api_client(reviewer), own, "approve")
    assert response.status_code == 403
    assert "Nobody approves their own request" in response.json()["detail"]
    assert trail(own) == ("pending", ["submitted"], 0, 0)
    failed(own)
    response = act(api_client(reviewer), own, "retry")
    assert response.status_code == 403
    assert "Nobody approves their own request" in response.json()["detail"]


def test_a_requester_who_is_not_a_reviewer_cannot_approve(
    inv: Inventory, requester: User, alice: Client
) -> None:
    own = submitted(requester, inv)
    for action in ("approve", "reject", "retry"):
        response = act(alice, own, action)
        assert response.status_code == 403, action
        assert "Only reviewers" in response.json()["detail"]
    assert trail(own) == ("pending", ["submitted"], 0, 0)


@pytest.mark.parametrize("allowed", [False, True])
def test_an_admin_approves_their_own_request_only_when_the_settings_allow(
    inv: Inventory, admin_user: User, settings: Any, allowed: bool
) -> None:
    settings.IAMPORTAL_ALLOW_ADMIN_SELF_APPROVAL = allowed
    own = submitted(admin_user, inv)
    response = act(api_client(admin_user), own, "approve")
    if not allowed:
        assert response.status_code == 403
        assert trail(own) == ("pending", ["submitted"], 0, 0)
        return
    assert response.status_code == 200
    [approval] = response.json()["approvals"]
    assert approval["reviewer"] == admin_user.username
    assert approval["self_approval"] is True


def test_a_request_needing_two_approvals_stays_pending_after_the_first(
    account: AwsAccount,
    requester: User,
    reviewer: User,
    admin_user: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    role = role_in(account_create("acme-vault", approvals=2), "vault-reader")
    theirs = submitted_for(requester, role)
    first = act(api_client(reviewer), theirs, "approve")
    assert first.status_code == 200
    assert first.json()["status"] == "pending"
    assert first.json()["approvals_required"] == 2
    assert [a["reviewer"] for a in first.json()["approvals"]] == [reviewer.username]
    again = act(api_client(reviewer), theirs, "approve")
    assert again.status_code == 409
    assert "already approved" in again.json()["detail"]
    with django_capture_on_commit_callbacks(execute=True):
        second = act(api_client(admin_user), theirs, "approve")
    assert second.status_code == 200
    assert second.json()["status"] == "approved"
    assert [a["reviewer"] for a in second.json()["approvals"]] == [
        reviewer.username,
        admin_user.username,
    ]
    assert api_client(requester).get(f"{REQUESTS}/{theirs.pk}").json()["status"] == "applied"
    assert policy_in_aws(role, "invoices-read")["Statement"][0]["Sid"] == "ReadInvoices"


@pytest.mark.parametrize(
    ("state", "action", "who"),
    [
        ("rejected", "approve", "reviewer"),
        ("cancelled", "reject", "reviewer"),
        ("approved", "cancel", "requester"),
        ("applied", "approve", "admin_user"),
        ("pending", "retry", "reviewer"),
        ("applied", "retry", "reviewer"),
    ],
)
def test_an_action_the_state_no_longer_allows_is_a_409(
    request: pytest.FixtureRequest,
    inv: Inventory,
    requester: User,
    state: str,
    action: str,
    who: str,
) -> None:
    theirs = submitted(requester, inv)
    PolicyRequest.objects.filter(pk=theirs.pk).update(status=state)
    before = trail(theirs)
    response = act(client_of(request, who), theirs, action)
    assert response.status_code == 409
    assert f"is {state}" in response.json()["detail"]
    assert trail(theirs) == before


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        ("comment", {}, "body: This field is required."),
        ("comment", {"body": "   "}, "body: This field may not be blank."),
        ("comment", {"body": "x" * 5001}, "body: Ensure this field has no more than 5000"),
        ("comment", "{not json", "JSON parse error"),
        ("reject", {}, "reason: This field is required."),
        ("reject", {"reason": ""}, "reason: This field may not be blank."),
        ("reject", ["no"], "Invalid data. Expected a dictionary"),
    ],
)
def test_bad_action_input_is_a_400_that_changes_nothing(
    inv: Inventory, requester: User, reviewer: User, action: str, body: Any, message: str
) -> None:
    theirs = submitted(requester, inv)
    before = trail(theirs)
    response = act(api_client(reviewer), theirs, action, body)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert trail(theirs) == before


def test_the_access_gate_comes_before_the_input(
    inv: Inventory, requester: User, outsider: User
) -> None:
    theirs = submitted(requester, inv)
    for action in ("comment", "reject"):
        response = act(api_client(outsider), theirs, action, {})
        assert response.status_code == 404
    assert act(api_client(requester), theirs, "comment", {"body": "x"}).status_code == 201
    assert act(api_client(requester), PolicyRequest(pk=999_999), "comment").status_code == 404


def test_the_detail_shows_approvals_comments_and_changes(
    inv: Inventory, requester: User, reviewer: User, alice: Client
) -> None:
    theirs = submitted(requester, inv)
    PolicyRequest.objects.filter(pk=theirs.pk).update(approvals_required=2)
    act(alice, theirs, "comment")
    act(api_client(reviewer), theirs, "approve")
    body = alice.get(f"{REQUESTS}/{theirs.pk}").json()
    assert body["approvals_required"] == 2
    [approval] = body["approvals"]
    assert approval["reviewer"] == reviewer.username
    assert approval["self_approval"] is False
    assert approval["created_at"]
    [comment] = body["comments"]
    assert comment == {
        "author": requester.username,
        "body": BODIES["comment"]["body"],
        "created_at": comment["created_at"],
    }
    [change] = body["changes"]
    assert change["account_id"] == inv.account.account_id
    assert change["automatic"] is False
    assert change["status"] == "pending"
    assert change["error"] == ""
    assert change["payload"]["document"] == EVENTS_POLICY
    assert change["previous"] is None
    assert [e["kind"] for e in body["events"]] == ["submitted", "commented", "approved"]
    assert body["events"][-1]["actor"] == reviewer.username


# --- approve, apply, retry in the embedded AWS ------------------------------------------


def test_an_approval_applies_the_request_and_a_failed_one_can_be_retried(
    account: AwsAccount,
    requester: User,
    reviewer: User,
    alice: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    role = role_in(account, "payments-api", in_aws=False)
    theirs = submitted_for(requester, role)
    rita = api_client(reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        approved = act(rita, theirs, "approve")
    assert approved.json()["status"] == "approved"
    body = alice.get(f"{REQUESTS}/{theirs.pk}").json()
    assert body["status"] == "failed"  # the role is not in AWS yet
    assert body["changes"][0]["status"] == "failed"
    assert body["changes"][0]["error"]

    admin_iam(account.account_id).create_role(
        RoleName="payments-api", AssumeRolePolicyDocument=json.dumps(EVENTS_POLICY)
    )
    with django_capture_on_commit_callbacks(execute=True):
        retried = act(rita, theirs, "retry")
    assert retried.status_code == 200
    assert retried.json()["status"] == "approved"
    body = alice.get(f"{REQUESTS}/{theirs.pk}").json()
    assert body["status"] == "applied"
    assert body["changes"][0]["status"] == "applied"
    assert body["changes"][0]["applied_at"]
    assert policy_in_aws(role, "invoices-read")["Statement"][0]["Sid"] == "ReadInvoices"
    assert [e["kind"] for e in body["events"]][-3:] == ["retried", "applying", "applied"]


# --- the list and its filters -------------------------------------------------------------


def test_reviewers_list_everyones_requests_with_scope_all(
    cast: dict[str, Client], inv: Inventory, requester: User, reviewer: User
) -> None:
    alices = submitted(requester, inv)
    ritas = submitted(reviewer, inv)
    mine = cast["reviewer"].get(REQUESTS)
    assert [row["id"] for row in mine.json()] == [ritas.pk]
    for who in ("reviewer", "admin_user", "superuser"):
        every = cast[who].get(REQUESTS, {"scope": "all"})
        assert every.status_code == 200, who
        assert [(r["id"], r["requester"]) for r in every.json()] == [
            (ritas.pk, reviewer.username),
            (alices.pk, requester.username),
        ]
    for who in ("requester", "outsider"):
        refused = cast[who].get(REQUESTS, {"scope": "all"})
        assert refused.status_code == 403, who
        assert "Only reviewers" in refused.json()["detail"]
    assert cast["outsider"].get(REQUESTS).json() == []
    assert cast["anonymous"].get(REQUESTS, {"scope": "all"}).status_code == 401


DEV_QUEUE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": "arn:aws:sqs:us-east-1:222222222222:billing",
        }
    ],
}


def test_the_list_filters_combine(
    inv: Inventory, requester: User, reviewer: User, admin_user: User
) -> None:
    from accounts.models import IamRole

    other = AwsAccount.objects.create(account_id="222222222222", name="acme-dev")
    dev_role = IamRole.objects.create(
        account=other,
        arn="arn:aws:iam::222222222222:role/Billing-Worker",
        name="Billing-Worker",
        content_hash="x",
        synced_at=timezone.now(),
    )
    old = submitted(requester, inv)
    PolicyRequest.objects.filter(pk=old.pk).update(
        created_at=datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
    )
    rejected = submitted(requester, inv)
    PolicyRequest.objects.filter(pk=rejected.pk).update(status="rejected")
    in_dev = services.policy_request_submit(
        requester=reviewer,
        preview=services.policy_request_preview(
            role=dev_role, document=DEV_QUEUE_POLICY, justification="Billing."
        ),
    )
    # A request for a prod role that also changes something in the dev account.
    crossing = submitted(reviewer, inv)
    Change.objects.create(
        request=crossing,
        position=1,
        type=Change.Type.RESOURCE_POLICY_PUT,
        target_arn="arn:aws:s3:::acme-dev-reports",
        account_id="222222222222",
        payload={},
        automatic=True,
    )
    client = api_client(admin_user)

    def ids(**query: str) -> list[int]:
        response = client.get(REQUESTS, {"scope": "all", **query})
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()]

    everything = [crossing.pk, in_dev.pk, rejected.pk, old.pk]
    assert ids() == everything
    assert ids(status="rejected") == [rejected.pk]
    assert ids(status="pending") == [crossing.pk, in_dev.pk, old.pk]
    assert ids(status="applied") == []
    assert ids(account="222222222222") == [crossing.pk, in_dev.pk]
    assert ids(account=inv.account.account_id) == [crossing.pk, rejected.pk, old.pk]
    assert ids(account="333333333333") == []
    assert ids(requester=requester.username) == [rejected.pk, old.pk]
    assert ids(requester="nobody") == []
    assert ids(role="billing-WORKER") == [in_dev.pk]
    assert ids(role="role/service/") == [crossing.pk, rejected.pk, old.pk]
    assert ids(created_before="2026-02-01") == [old.pk]
    assert ids(created_after="2026-02-01") == [crossing.pk, in_dev.pk, rejected.pk]
    assert ids(created_after="2026-01-31", created_before="2026-02-01") == [old.pk]
    assert ids(requester=reviewer.username, account="222222222222") == [crossing.pk, in_dev.pk]
    assert ids(requester=requester.username, status="pending", role="payments") == [old.pk]
    assert ids(requester="", role="") == everything
    # Filters narrow my own requests the same way.
    mine = api_client(requester).get(REQUESTS, {"status": "rejected"})
    assert [row["id"] for row in mine.json()] == [rejected.pk]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"scope": "everyone"}, "scope", 'scope is "mine" or "all"'),
        ({"status": "done"}, "status", '"done" is not a status'),
        ({"status": ""}, "status", "is not a status"),
        ({"account": "12345"}, "account", "not a 12-digit account id"),
        ({"account": "1234567890123"}, "account", "not a 12-digit account id"),
        ({"account": "١٢٣٤٥٦٧٨٩٠١٢"}, "account", "not a 12-digit account id"),
        ({"account": "123456789012\n"}, "account", "not a 12-digit account id"),
        ({"requester": "x" * 151}, "requester", "no more than 150 characters"),
        ({"role": "x" * 2049}, "role", "no more than 2048 characters"),
        ({"created_after": "yesterday"}, "created_after", "not a date: use YYYY-MM-DD"),
        ({"created_after": "2026-02-30"}, "created_after", "not a date"),
        ({"created_before": "20260201"}, "created_before", "not a date"),
        ({"created_before": "2026-02-01T00:00:00Z"}, "created_before", "not a date"),
        (
            {"created_after": "2026-02-01", "created_before": "2026-02-01"},
            "created_before",
            "a later day than created_after",
        ),
    ],
)
def test_a_bad_filter_is_a_clear_400(
    inv: Inventory, reviewer: User, query: dict[str, str], field: str, message: str
) -> None:
    response = api_client(reviewer).get(REQUESTS, {"scope": "all", **query})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith(f"{field}:")
    assert message in body["detail"]
    assert message in " ".join(body["errors"][field])


def test_the_list_is_capped(
    inv: Inventory, requester: User, alice: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from requests_app import apis

    made = [submitted(requester, inv).pk for _ in range(3)]
    monkeypatch.setattr(apis, "LIST_LIMIT", 2)
    assert [row["id"] for row in alice.get(REQUESTS).json()] == made[::-1][:2]


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        (REQUESTS, {"dry_run": "true"}, "dry_run", "Must be a valid boolean"),
        (REQUESTS, {"dry_run": 1}, "dry_run", "Must be a valid boolean"),
        (REQUESTS, {"justification": 12345}, "justification", "Not a valid string"),
        (REQUESTS, {"role": 7}, "role", "Not a valid string"),
        (
            LINT,
            {"document": {}, "other_inline_policies_size": "10"},
            "other_inline_policies_size",
            "A valid integer is required",
        ),
        (
            LINT,
            {"document": {}, "other_inline_policies_size": 1.0},
            "other_inline_policies_size",
            "A valid integer is required",
        ),
        (
            GENERATE,
            {"intents": [{**READ_BUCKET, "include_destructive": "no"}]},
            "intents",
            "Must be a valid boolean",
        ),
    ],
)
def test_json_types_are_not_coerced(
    alice: Client, inv: Inventory, path: str, body: dict[str, Any], field: str, message: str
) -> None:
    given = {**submit_body(inv), **body} if path == REQUESTS else body
    response = post(alice, path, given)
    assert response.status_code == 400, response.json()
    assert response.json()["detail"].startswith(f"{field}:")
    assert message in response.json()["detail"]
    assert nothing_created()


def test_anything_else_under_requests_is_a_json_404(alice: Client, inv: Inventory) -> None:
    for method, path in (
        ("get", f"{REQUESTS}/abc"),
        ("get", f"{REQUESTS}/1/nope"),
        ("post", f"{REQUESTS}/null/approve"),
        ("post", f"{REQUESTS}/-1/cancel"),
    ):
        response = getattr(alice, method)(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "No such request."}


def test_the_requests_collection_allows_both_of_its_methods(alice: Client) -> None:
    for response in (alice.get(REQUESTS), alice.options(REQUESTS), alice.put(REQUESTS)):
        assert response["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert alice.put(REQUESTS).status_code == 405


# --- any change type ------------------------------------------------------------------


def test_a_request_for_other_change_types_is_validated_and_applied(
    alice: Client, reviewer: User, role: Any
) -> None:
    tags = {"type": "tags_put", "payload": {"tags": {"cost-centre": "42"}}}
    body = {"role": role.arn, "changes": [tags], "justification": "Billing.", "dry_run": True}
    preview = post(alice, f"{REQUESTS}/changes", body)
    assert preview.status_code == 200, preview.json()
    assert preview.json()["changes"][0]["account_id"] == role.account.account_id
    assert nothing_created()
    created = post(alice, f"{REQUESTS}/changes", {**body, "dry_run": False})
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert created.json()["changes"][0]["type"] == "tags_put"
    with TestCase.captureOnCommitCallbacks(execute=True):
        revision = created.json()["revision"]
        approved = post(api_client(reviewer), f"{REQUESTS}/{pk}/approve", {"revision": revision})
    assert approved.json()["status"] == "approved"
    assert PolicyRequest.objects.get(pk=pk).status == "applied"
    iam = admin_iam(role.account.account_id)
    assert {"Key": "cost-centre", "Value": "42"} in iam.list_role_tags(RoleName=role.name)["Tags"]


def test_a_bad_change_is_a_400_naming_it_and_nothing_is_created(alice: Client, role: Any) -> None:
    for change, field in (
        ({"type": "role_rename", "payload": {}}, "changes"),
        ({"type": "tags_put", "payload": {"tags": {"aws:x": "1"}}}, "changes[0].payload.tags"),
        (
            {"type": "tags_put", "target_arn": "arn:aws:iam::999999999999:role/x", "payload": {}},
            "changes[0].target_arn",
        ),
    ):
        body = {"role": role.arn, "changes": [change], "justification": "Why."}
        response = post(alice, f"{REQUESTS}/changes", body)
        assert response.status_code == 400, response.json()
        assert field in response.json()["errors"], response.json()
    assert nothing_created()
