"""The self-service wizard through the test client, step by step, with and
without htmx: every kind of bad input gets a clear message and creates
nothing; a dry run creates nothing; a submission creates one pending request.
And the request pages, for every member of the cast."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource, IamRole
from accounts.services import inventory_entries_refresh
from requests_app import services
from requests_app.models import Change, PolicyRequest, PolicyTemplate, RequestEvent
from requests_app.policy import lint_rules
from requests_app.policy.generate import Intent, IntentError, policy_generate
from requests_app.policy.names import POLICY_NAME
from requests_app.wizard import MAX_PERMISSIONS, SESSION_KEY
from tests.factories import (
    BUCKET,
    BUCKET_ARN,
    EVENTS_POLICY,
    PROD,
    QUEUE_ARN,
    Inventory,
    big_policy,
    client_for,
)

pytestmark = pytest.mark.django_db

HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice(requester: User) -> Client:
    return client_for(requester)


def url(name: str, role: IamRole, **kwargs: Any) -> str:
    return reverse(name, kwargs={"role_id": role.pk, **kwargs})


def text(response: Any) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, spaces squeezed."""
    import html

    body = re.sub(r"<script.*?</script>", "", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def is_fragment(response: Any) -> bool:
    return b"<html" not in response.content


def read_objects(**extra: Any) -> dict[str, Any]:
    return {"service": "s3", "resource": BUCKET_ARN, "access": ["list", "read"], **extra}


def add(client: Client, role: IamRole, data: dict[str, Any], **headers: Any) -> Any:
    return client.post(url("request_permission_add", role), data, **headers)


def draft_permissions(client: Client, role: IamRole) -> list[dict[str, Any]]:
    drafts = client.session.get(SESSION_KEY, {})
    return drafts.get(str(role.pk), {}).get("permissions", [])


def review(
    client: Client,
    role: IamRole,
    action: str = "submit",
    *,
    headers: dict[str, Any] | None = None,
    **data: Any,
) -> Any:
    fields = {"justification": "Settlement reports for PAY-1234.", "expiry": "", "action": action}
    fields.update(data)
    return client.post(url("request_review", role), fields, **(headers or {}))


def nothing_created() -> bool:
    return not PolicyRequest.objects.exists() and not Change.objects.exists()


# Where the generator words the refusal: the page must show its message.
GENERATOR = "the generator's message"


def generator_message(data: dict[str, Any]) -> str:
    options = {k[len("opt_") :]: v for k, v in data.items() if k.startswith("opt_")}
    intent = Intent(
        service=data["service"], resource=data["resource"], access=data["access"], options=options
    )
    with pytest.raises(IntentError) as refused:
        policy_generate([intent])
    assert refused.value.field in ("resource", "from_address", "prefix")
    return refused.value.message


# --- who may do what ----------------------------------------------------------------


def wizard_pages(inv: Inventory) -> list[tuple[str, str]]:
    role = inv.api
    return [
        ("get", reverse("request_new")),
        ("get", reverse("request_list")),
        ("get", url("request_permissions", role)),
        ("post", url("request_permission_add", role)),
        ("post", url("request_template_add", role)),
        ("post", url("request_permission_remove", role, index=0)),
        ("get", url("request_resources", role)),
        ("get", url("request_editor", role)),
        ("post", url("request_editor", role)),
        ("post", url("request_editor_lint", role)),
        ("post", url("request_editor_discard", role)),
        ("get", url("request_review", role)),
        ("post", url("request_review", role)),
    ]


def test_it_sends_anonymous_visitors_to_the_login_page_everywhere(
    anonymous: Client, inv: Inventory, requester: User
) -> None:
    mine = services.policy_request_submit(
        requester=requester,
        preview=services.policy_request_preview(
            role=inv.api, document=EVENTS_POLICY, justification="Needed."
        ),
    )
    pages = [*wizard_pages(inv), ("get", reverse("request_detail", args=[mine.pk]))]
    for method, path in pages:
        response = getattr(anonymous, method)(path, **HTMX)
        assert response.status_code == 302, path
        assert response["Location"].startswith(reverse("login") + "?next="), path
    assert PolicyRequest.objects.count() == 1


@pytest.mark.parametrize("member", ["requester", "reviewer", "admin_user", "outsider"])
def test_anyone_signed_in_may_ask_for_changes_to_any_role(
    member: str, inv: Inventory, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(member))
    for role in (inv.api, inv.readonly):
        assert client.get(url("request_permissions", role)).status_code == 200
        assert add(client, role, read_objects()).status_code == 302
        assert review(client, role).status_code == 302
    assert PolicyRequest.objects.count() == 2


def test_a_role_outside_the_inventory_or_in_a_disabled_account_is_404(
    alice: Client, inv: Inventory
) -> None:
    missing = reverse("request_permissions", kwargs={"role_id": 999999})
    assert alice.get(missing).status_code == 404
    AwsAccount.objects.filter(pk=inv.account.pk).update(enabled=False)
    assert alice.get(url("request_permissions", inv.api)).status_code == 404
    assert alice.get(url("request_review", inv.api)).status_code == 404


def submitted(user: User, inv: Inventory) -> PolicyRequest:
    preview = services.policy_request_preview(
        role=inv.api, document=EVENTS_POLICY, justification="Settlement reports."
    )
    return services.policy_request_submit(requester=user, preview=preview)


def test_an_outsider_gets_404_on_someone_elses_request(
    inv: Inventory, requester: User, outsider: User
) -> None:
    theirs = submitted(requester, inv)
    response = client_for(outsider).get(reverse("request_detail", args=[theirs.pk]))
    assert response.status_code == 404
    assert "Settlement reports" not in text(response)


@pytest.mark.parametrize("member", ["reviewer", "admin_user", "requester"])
def test_the_requester_and_reviewers_can_read_a_request(
    member: str, inv: Inventory, requester: User, request: pytest.FixtureRequest
) -> None:
    theirs = submitted(requester, inv)
    response = client_for(request.getfixturevalue(member)).get(
        reverse("request_detail", args=[theirs.pk])
    )
    assert response.status_code == 200
    page = text(response)
    assert "Pending" in page
    assert "Settlement reports." in page
    assert "payments-api" in page


def test_my_requests_lists_only_mine(inv: Inventory, requester: User, reviewer: User) -> None:
    mine = submitted(requester, inv)
    theirs = submitted(reviewer, inv)
    response = client_for(requester).get(reverse("request_list"))
    assert response.status_code == 200
    listed = [item.pk for item in response.context["page"].object_list]
    assert listed == [mine.pk]
    assert theirs.pk not in listed
    assert "Pending" in text(response)
    assert inv.api.arn in text(response)


# --- step 1 -------------------------------------------------------------------------


def test_step_one_finds_roles_and_says_which_ones_the_user_may_use(
    alice: Client, inv: Inventory
) -> None:
    response = alice.get(reverse("request_new"), {"q": "arn:aws:iam::111111111111:role/"}, **HTMX)
    assert response.status_code == 200
    assert is_fragment(response)
    rows = re.findall(r'<li class="role-row">.*?</li>', response.content.decode(), flags=re.S)
    may_use = {
        re.search(r"<strong>(.*?)</strong>", row).group(1): "you may use it" in row  # type: ignore[union-attr]
        for row in rows
    }
    assert may_use == {"payments-api": True, "ReadOnly": False}
    assert url("request_permissions", inv.api) in response.content.decode()
    assert url("request_permissions", inv.readonly) in response.content.decode()


def test_step_one_is_a_whole_page_without_htmx_and_refuses_a_huge_search(
    alice: Client, inv: Inventory
) -> None:
    page = alice.get(reverse("request_new"), {"q": "payments"})
    assert b"<html" in page.content
    assert [c.role.name for c in page.context["choices"]] == ["payments-api"]
    too_long = alice.get(reverse("request_new"), {"q": "x" * 201}, **HTMX)
    assert too_long.status_code == 200
    assert "at most 200 characters" in text(too_long)


# --- step 2: permissions by service -------------------------------------------------


def test_step_two_offers_plain_language_access_and_flags_destructive_choices(
    alice: Client, inv: Inventory
) -> None:
    response = alice.get(url("request_permissions", inv.api), {"service": "s3"}, **HTMX)
    assert response.status_code == 200
    assert is_fragment(response)
    page = text(response)
    for label in ("List objects", "Read objects", "Write objects", "Delete objects"):
        assert label in page
    assert "can destroy data" in page
    # The typeahead starts with the inventory's buckets.
    assert f'value="{BUCKET_ARN}"' in response.content.decode()


def test_the_resource_typeahead_searches_the_inventory_for_the_service(
    alice: Client, inv: Inventory
) -> None:
    inventory_entries_refresh(account=inv.account)  # as a sync leaves the inventory
    response = alice.get(
        url("request_resources", inv.api), {"service": "s3", "resource": "audit"}, **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "arn:aws:s3:::acme-prod-audit-logs" in body
    assert BUCKET_ARN not in body
    queues = alice.get(url("request_resources", inv.api), {"service": "sqs", "resource": ""})
    assert QUEUE_ARN in queues.content.decode()
    assert "arn:aws:s3" not in queues.content.decode()


def test_adding_a_permission_with_htmx_updates_the_list_and_the_policy(
    alice: Client, inv: Inventory
) -> None:
    response = add(alice, inv.api, read_objects(), **HTMX)
    assert response.status_code == 200
    assert is_fragment(response)
    page = text(response)
    assert f"Amazon S3: List objects, Read objects on {BUCKET_ARN}" in page
    assert "s3:GetObject" in page
    assert "Review and submit" in page
    assert len(draft_permissions(alice, inv.api)) == 1
    assert nothing_created()


def test_adding_a_permission_without_htmx_redirects_back_to_the_step(
    alice: Client, inv: Inventory
) -> None:
    response = add(alice, inv.api, read_objects())
    assert response.status_code == 302
    assert response["Location"].startswith(url("request_permissions", inv.api))
    page = alice.get(response["Location"])
    assert "Added: Amazon S3" in text(page)
    assert "s3:ListBucket" in text(page)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"service": "ec3"}, "Unknown service: pick one from the list"),
        (
            {"service": "other", "other_service": "notaservice", "access": ["read"]},
            "Unknown service 'notaservice'",
        ),
        (read_objects(resource="arn:aws:s3::bucket"), GENERATOR),
        (read_objects(resource=QUEUE_ARN), GENERATOR),
        (
            {
                "service": "ses",
                "resource": f"arn:aws:ses:us-east-1:{PROD}:identity/example.com",
                "access": ["send"],
            },
            GENERATOR,
        ),
        (read_objects(access=[]), "Pick at least one kind of access"),
        (read_objects(access=["fly"]), "fly is not an access this service offers"),
        (read_objects(access=["read", "delete"]), "Delete objects can destroy data"),
        (read_objects(opt_prefix="reports/*"), GENERATOR),
        ({"service": "other", "access": ["read"]}, "Type the service prefix"),
    ],
)
def test_bad_permissions_get_a_clear_message_and_add_nothing(
    alice: Client, inv: Inventory, data: dict[str, Any], message: str
) -> None:
    if message == GENERATOR:
        message = generator_message(data)
    plain = add(alice, inv.api, data)
    assert plain.status_code == 400
    assert message in text(plain)
    partial = add(alice, inv.api, data, **HTMX)
    assert partial.status_code == 200
    assert is_fragment(partial)
    assert message in text(partial)
    assert draft_permissions(alice, inv.api) == []
    assert nothing_created()


def test_destructive_access_needs_the_explicit_tick(alice: Client, inv: Inventory) -> None:
    response = add(alice, inv.api, read_objects(access=["delete"], include_destructive="on"))
    assert response.status_code == 302
    page = text(alice.get(url("request_permissions", inv.api)))
    assert "s3:DeleteObject" in page


def test_other_services_offer_access_levels(alice: Client, inv: Inventory) -> None:
    form = alice.get(url("request_permissions", inv.api), {"service": "other"}, **HTMX)
    assert "Permissions management" in text(form)
    assert '<option value="lambda">' in form.content.decode()
    function = f"arn:aws:lambda:us-east-1:{PROD}:function:settlement"
    data = {"service": "other", "other_service": "lambda", "resource": function, "access": ["read"]}
    response = add(alice, inv.api, data, **HTMX)
    assert response.status_code == 200
    assert "lambda:GetFunction" in text(response)
    wrong = {**data, "resource": BUCKET_ARN}
    refused = text(add(alice, inv.api, wrong, **HTMX))
    assert generator_message({**wrong, "service": "lambda"}) in refused


def test_several_permissions_make_one_policy_and_each_can_be_removed(
    alice: Client, inv: Inventory
) -> None:
    add(alice, inv.api, read_objects())
    add(alice, inv.api, {"service": "sqs", "resource": QUEUE_ARN, "access": ["send"]})
    again = add(alice, inv.api, read_objects(), **HTMX)
    assert "already in the request" in text(again)
    page = text(alice.get(url("request_permissions", inv.api)))
    assert "s3:GetObject" in page
    assert "sqs:SendMessage" in page
    response = alice.post(url("request_permission_remove", inv.api, index=0), **HTMX)
    assert response.status_code == 200
    page = text(response)
    assert "s3:GetObject" not in page
    assert "sqs:SendMessage" in page
    assert [p["intent"]["service"] for p in draft_permissions(alice, inv.api)] == ["sqs"]
    stale = alice.post(url("request_permission_remove", inv.api, index=5))
    assert stale.status_code == 404


def test_a_draft_holds_a_bounded_number_of_permissions(alice: Client, inv: Inventory) -> None:
    for n in range(MAX_PERMISSIONS):
        response = add(alice, inv.api, read_objects(resource=f"arn:aws:s3:::bucket-{n:03}"))
        assert response.status_code == 302, text(response)
    response = add(alice, inv.api, read_objects(resource="arn:aws:s3:::one-too-many"))
    assert response.status_code == 400
    assert f"at most {MAX_PERMISSIONS} permissions" in text(response)
    assert len(draft_permissions(alice, inv.api)) == MAX_PERMISSIONS


def test_drafts_are_kept_per_role(alice: Client, inv: Inventory) -> None:
    add(alice, inv.api, read_objects())
    assert "s3:GetObject" not in text(alice.get(url("request_permissions", inv.readonly)))
    assert "s3:GetObject" in text(alice.get(url("request_permissions", inv.api)))


# --- step 2: templates --------------------------------------------------------------


def test_a_template_asks_for_its_parameters_and_adds_its_statements(
    alice: Client, inv: Inventory
) -> None:
    form = alice.get(url("request_permissions", inv.api), {"template": inv.template.pk}, **HTMX)
    assert "Bucket name" in text(form)
    data = {"template": inv.template.pk, "value_bucket": "acme-prod-audit-logs"}
    response = alice.post(url("request_template_add", inv.api), data, **HTMX)
    assert response.status_code == 200
    page = text(response)
    assert "Read objects in a bucket (bucket=acme-prod-audit-logs)" in page
    assert "arn:aws:s3:::acme-prod-audit-logs/*" in page


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Give a value for Bucket name"),
        ("*", "cannot contain wildcards"),
        ("a" * 300, "at most 256 characters"),
    ],
)
def test_bad_template_values_get_a_clear_message(
    alice: Client, inv: Inventory, value: str, message: str
) -> None:
    data = {"template": inv.template.pk, "value_bucket": value}
    response = alice.post(url("request_template_add", inv.api), data)
    assert response.status_code == 400
    assert message in text(response)
    assert draft_permissions(alice, inv.api) == []


def test_a_disabled_or_unknown_template_is_refused(alice: Client, inv: Inventory) -> None:
    PolicyTemplate.objects.filter(pk=inv.template.pk).update(enabled=False)
    data = {"template": inv.template.pk, "value_bucket": BUCKET}
    response = alice.post(url("request_template_add", inv.api), data, **HTMX)
    assert response.status_code == 200
    assert "no longer offered" in text(response)
    response = alice.post(url("request_template_add", inv.api), {"template": "x"})
    assert response.status_code == 400
    assert draft_permissions(alice, inv.api) == []


# --- step 2: raw JSON ---------------------------------------------------------------


def test_the_editor_starts_from_the_generated_policy(alice: Client, inv: Inventory) -> None:
    add(alice, inv.api, read_objects())
    response = alice.get(url("request_editor", inv.api))
    assert response.status_code == 200
    document = json.loads(response.context["form"].initial["document"])
    assert document["Statement"][1]["Action"][0] == "s3:GetObject"


def test_live_lint_shows_findings_with_severity_title_detail_and_location(
    alice: Client, inv: Inventory
) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    response = alice.post(
        url("request_editor_lint", inv.api), {"document": json.dumps(document)}, **HTMX
    )
    assert response.status_code == 200
    assert is_fragment(response)
    page = text(response)
    assert "warning" in page
    assert lint_rules.RULES["resource-wildcard"][1] in page
    assert "/Statement/0/Resource" in page
    broken = alice.post(url("request_editor_lint", inv.api), {"document": "{"}, **HTMX)
    assert broken.status_code == 200
    assert "The policy is not valid JSON" in text(broken)
    deep = alice.post(url("request_editor_lint", inv.api), {"document": "[" * 5000}, **HTMX)
    assert deep.status_code == 200
    assert "nested more than" in text(deep)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"Version": "2012-10-17", "Statement": [', "This is not valid JSON"),
        ("[1, 2]", "A policy is a JSON object"),
        ("[" * 100 + "]" * 100, "nested more than 32 levels"),
        ("", "Paste or write a policy document"),
        (" " * 30_001, "at most 30,000 characters"),
    ],
)
def test_the_editor_refuses_what_is_not_a_policy_document(
    alice: Client, inv: Inventory, document: str, message: str
) -> None:
    response = alice.post(url("request_editor", inv.api), {"document": document})
    assert response.status_code == 400
    assert message in text(response)
    htmx = alice.post(url("request_editor", inv.api), {"document": document}, **HTMX)
    assert htmx.status_code == 200
    assert message in text(htmx)
    assert alice.session.get(SESSION_KEY, {}).get(str(inv.api.pk), {}).get("raw") is None


def test_edited_json_is_what_gets_reviewed_until_the_builder_is_back(
    alice: Client, inv: Inventory
) -> None:
    add(alice, inv.api, read_objects())
    edited = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE_ARN}],
    }
    response = alice.post(url("request_editor", inv.api), {"document": json.dumps(edited)})
    assert response.status_code == 302
    assert response["Location"] == url("request_review", inv.api)
    page = alice.get(url("request_review", inv.api))
    assert page.context["policy"].document == edited
    assert "writing the policy as JSON" in text(alice.get(url("request_permissions", inv.api)))
    back = alice.post(url("request_editor_discard", inv.api))
    assert back.status_code == 302
    page = alice.get(url("request_review", inv.api))
    assert "s3:GetObject" in json.dumps(page.context["policy"].document)


# --- step 3 -------------------------------------------------------------------------


def test_review_shows_the_policy_the_diff_the_findings_and_a_default_name(
    alice: Client, inv: Inventory
) -> None:
    add(alice, inv.api, read_objects())
    response = alice.get(url("request_review", inv.api))
    assert response.status_code == 200
    page = text(response)
    name = services.default_policy_name(inv.api, document=response.context["policy"].document)
    assert name == f"iamportal-s3-read-{BUCKET}"
    assert response.context["form"].initial["policy_name"] == name
    assert f"A new inline policy {name} is added" in page
    assert "payments-events" in page  # the role's current inline policy
    diff = response.context["diff"]
    assert {line.kind for line in diff} >= {"file", "hunk", "add"}
    assert not [line for line in diff if line.kind == "del"]
    assert '+ "s3:GetObject",' in page
    assert "No findings" in page


def test_review_diffs_against_the_policy_it_would_replace(alice: Client, inv: Inventory) -> None:
    add(alice, inv.api, {"service": "sqs", "resource": QUEUE_ARN, "access": ["send"]})
    response = review(alice, inv.api, "dry_run", policy_name="payments-events")
    assert response.status_code == 200
    diff = response.context["diff"]
    assert any(line.kind == "del" and "sqs:SendMessage" in line.text for line in diff)
    assert any(line.kind == "add" and "sqs:GetQueueUrl" in line.text for line in diff)
    assert "this request replaces it" in text(response)


def test_review_without_permissions_says_to_add_some(alice: Client, inv: Inventory) -> None:
    response = alice.get(url("request_review", inv.api))
    assert response.status_code == 200
    assert "Add at least one permission" in text(response)
    response = review(alice, inv.api)
    assert response.status_code == 400
    assert "Add at least one permission" in text(response)
    assert nothing_created()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"justification": "  "}, "justification", "Say why you need this access"),
        ({"expiry": "date", "expiry_date": "2020-01-01"}, "expiry_date", "must be in the future"),
        ({"expiry": "date", "expiry_date": "9999-12-31"}, "expiry_date", "at most 90 days"),
        ({"expiry": "date"}, "expiry_date", "Pick the date the access ends"),
        ({"expiry": "date", "expiry_date": "soon"}, "expiry_date", "YYYY-MM-DD"),
        ({"expiry": "forever"}, "expiry", "Pick one of the listed durations"),
        ({"policy_name": "has spaces"}, "policy_name", "A policy name is 1-128"),
        ({"justification": "x" * 5001}, "justification", "at most 5000 characters"),
    ],
)
def test_bad_review_input_gets_a_clear_message_and_creates_nothing(
    alice: Client, inv: Inventory, data: dict[str, Any], field: str, message: str
) -> None:
    add(alice, inv.api, read_objects())
    for action in ("submit", "dry_run"):
        response = review(alice, inv.api, action, **data)
        assert response.status_code == 400
        assert message in " ".join(response.context["form"].errors[field])
        assert message in text(response)
        partial = review(alice, inv.api, action, headers=HTMX, **data)
        assert partial.status_code == 200
        assert is_fragment(partial)
        assert message in text(partial)
    assert nothing_created()
    assert len(draft_permissions(alice, inv.api)) == 1


def test_a_policy_too_big_with_the_roles_other_policies_is_refused(
    alice: Client, inv: Inventory
) -> None:
    IamRole.objects.filter(pk=inv.api.pk).update(
        inline_policies={"payments-events": EVENTS_POLICY, "archive": big_policy(9_900)}
    )
    add(alice, inv.api, read_objects())
    page = alice.get(url("request_review", inv.api))
    assert "policy-too-large" in {f.code for f in page.context["findings"]}
    response = review(alice, inv.api)
    assert response.status_code == 400
    assert "10,240" in text(response)
    assert nothing_created()


def test_a_dry_run_shows_exactly_what_would_be_requested_and_creates_nothing(
    alice: Client, inv: Inventory
) -> None:
    add(alice, inv.api, read_objects())
    partial = review(alice, inv.api, "dry_run", expiry="7d", headers=HTMX)
    assert partial.status_code == 200
    assert is_fragment(partial)
    assert "this is exactly what would be requested" in text(partial)
    response = review(alice, inv.api, "dry_run", expiry="7d")
    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview.role == inv.api
    assert preview.policy_name == services.default_policy_name(inv.api, document=preview.document)
    assert preview.policy_name == f"iamportal-s3-read-{BUCKET}"
    assert preview.document["Statement"][1]["Action"][0] == "s3:GetObject"
    expected = timezone.now() + timedelta(days=7)
    assert abs((preview.expires_at - expected).total_seconds()) < 60
    page = text(response)
    assert "this is exactly what would be requested" in page
    assert "Nothing was created" in page
    assert nothing_created()
    assert len(draft_permissions(alice, inv.api)) == 1


def test_submit_creates_one_pending_request_with_one_change_and_an_event(
    alice: Client, inv: Inventory, requester: User
) -> None:
    add(alice, inv.api, read_objects())
    add(alice, inv.api, {"service": "sqs", "resource": QUEUE_ARN, "access": ["send"]})
    response = review(alice, inv.api, policy_name="payments-reports", expiry="8h")
    created = PolicyRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    assert created.status == PolicyRequest.Status.PENDING
    assert created.requester == requester
    assert created.role == inv.api
    assert created.role_arn == inv.api.arn
    assert created.justification == "Settlement reports for PAY-1234."
    assert created.expires_at is not None
    assert abs((created.expires_at - timezone.now() - timedelta(hours=8)).total_seconds()) < 60
    change = Change.objects.get()
    assert change.request == created
    assert change.type == Change.Type.INLINE_POLICY_PUT
    assert change.payload["policy_name"] == "payments-reports"
    actions = {a for s in change.payload["document"]["Statement"] for a in s["Action"]}
    assert {"s3:GetObject", "s3:ListBucket", "sqs:SendMessage"} <= actions
    event = RequestEvent.objects.get()
    assert (event.kind, event.actor) == (RequestEvent.Kind.SUBMITTED, requester)
    # The draft is gone; the request page shows it pending.
    assert draft_permissions(alice, inv.api) == []
    page = alice.get(response["Location"])
    assert "Pending" in text(page)
    assert "payments-reports" in text(page)
    assert "Submitted" in text(page)


def test_submit_with_htmx_redirects_the_browser(alice: Client, inv: Inventory) -> None:
    add(alice, inv.api, read_objects())
    response = review(alice, inv.api, headers=HTMX)
    created = PolicyRequest.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("request_detail", args=[created.pk])


def test_submit_until_a_date_lasts_through_that_day(alice: Client, inv: Inventory) -> None:
    add(alice, inv.api, read_objects())
    day = (timezone.now() + timedelta(days=3)).date()
    response = review(alice, inv.api, expiry="date", expiry_date=day.isoformat())
    assert response.status_code == 302
    expires_at = PolicyRequest.objects.get().expires_at
    assert expires_at is not None
    assert expires_at.date() == day
    assert (expires_at.hour, expires_at.minute) == (23, 59)


def test_a_request_page_shows_each_change_with_its_diff_findings_and_timeline(
    alice: Client, inv: Inventory
) -> None:
    wildcard = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    alice.post(url("request_editor", inv.api), {"document": json.dumps(wildcard)})
    response = review(alice, inv.api, policy_name="payments-events")
    page = alice.get(response["Location"])
    assert page.status_code == 200
    shown = page.context["changes"][0]
    assert any(line.kind == "del" and "sqs:SendMessage" in line.text for line in shown.diff)
    assert "resource-wildcard" in {f.code for f in shown.findings}
    body = text(page)
    assert lint_rules.RULES["resource-wildcard"][1] in body
    assert "Update inline policy payments-events on role" in body
    assert "Submitted" in body


def test_every_code_that_blocks_a_submission_is_one_the_linter_reports() -> None:
    assert set(lint_rules.RULES) >= services.BLOCKING_LINT_CODES
    for code in services.BLOCKING_LINT_CODES:
        assert lint_rules.RULES[code][0] == "error", code


# --- step 3: what the review shows --------------------------------------------------

DATA = "222222222222"
SHARED_BUCKET = "acme-data-reports"
SHARED_BUCKET_ARN = f"arn:aws:s3:::{SHARED_BUCKET}"
SHARED_BUCKET_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyInsecure",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": f"{SHARED_BUCKET_ARN}/*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}


def shared_bucket() -> None:
    """A bucket with a policy in another account iamportal manages."""
    data = AwsAccount.objects.create(account_id=DATA, name="acme-data")
    CloudResource.objects.create(
        account=data,
        arn=SHARED_BUCKET_ARN,
        name=SHARED_BUCKET,
        type="s3",
        policy=SHARED_BUCKET_POLICY,
        content_hash="x",
        synced_at=timezone.now(),
    )


def prefix_grant() -> dict[str, Any]:
    return read_objects(resource=SHARED_BUCKET_ARN, opt_prefix="reports/2026/")


def cross_account_section(response: Any) -> str:
    body = response.content.decode()
    match = re.search(r'<section class="cross-account".*?</section>', body, flags=re.S)
    assert match, "no cross-account section"
    return text(type("R", (), {"content": match.group(0).encode()})())


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_review_shows_the_cross_account_change_in_full_with_its_diff_before_submit(
    alice: Client, inv: Inventory, headers: dict[str, Any]
) -> None:
    shared_bucket()
    assert add(alice, inv.api, prefix_grant()).status_code == 302
    response = alice.get(url("request_review", inv.api), **headers)
    assert response.status_code == 200
    assert is_fragment(response) == bool(headers)
    [shown] = response.context["cross_account"]
    assert shown.spec.target_arn == SHARED_BUCKET_ARN
    section = cross_account_section(response)
    assert "Also changed in other accounts" in section
    assert f"{SHARED_BUCKET} is in acme-data ({DATA}): its bucket policy must also allow" in section
    assert f"Add 2 statements to the bucket policy of {SHARED_BUCKET}, allowing {inv.api.arn}" in (
        section
    )
    # The diff against the bucket's policy now: the existing statement stays, ours is added.
    added = [line.text for line in shown.diff if line.kind == "add"]
    removed = [line for line in shown.diff if line.kind == "del"]
    assert any('"s3:prefix"' in line for line in added)
    assert any(f'"{SHARED_BUCKET_ARN}/reports/2026/*"' in line for line in added)
    assert any(f'"AWS": "{inv.api.arn}"' in line for line in added)
    # Nothing of the bucket's own statement goes.
    assert removed == []
    assert any(line.kind == "file" and "(current)" in line.text for line in shown.diff)
    assert f'+ "AWS": "{inv.api.arn}"' in section
    # The same with a dry run, which shows the changes it would file.
    dry = review(alice, inv.api, "dry_run", headers=headers)
    assert dry.status_code == 200
    assert [c.spec.target_arn for c in dry.context["cross_account"]] == [SHARED_BUCKET_ARN]
    assert '"s3:prefix"' in cross_account_section(dry)
    assert nothing_created()
    # What is shown is what is filed.
    review(alice, inv.api)
    automatic = Change.objects.get(automatic=True)
    statements = automatic.payload["statements"]
    assert [{k: v for k, v in s.items() if k != "Sid"} for s in statements] == [
        {k: v for k, v in s.items() if k != "Sid"} for s in shown.spec.payload["statements"]
    ]


def test_review_without_a_cross_account_grant_has_no_such_section(
    alice: Client, inv: Inventory
) -> None:
    add(alice, inv.api, read_objects())
    response = alice.get(url("request_review", inv.api))
    assert response.context["cross_account"] == []
    assert "Also changed in other accounts" not in text(response)


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_review_shows_the_policy_once_as_a_diff_with_the_json_behind_a_toggle(
    alice: Client, inv: Inventory, headers: dict[str, Any]
) -> None:
    add(alice, inv.api, read_objects())
    for response in (
        alice.get(url("request_review", inv.api), **headers),
        review(alice, inv.api, "dry_run", headers=headers),
    ):
        assert response.status_code == 200
        body = response.content.decode()
        # The diff, once.
        assert body.count('<pre class="diff"') == 1
        # The JSON, once, inside a <details> that works without JavaScript.
        assert body.count("s3:GetObjectAttributes") == 2  # the diff line and the JSON
        details = re.search(
            r'<details class="policy-json" id="policy-json">(.*?)</details>', body, re.S
        )
        assert details is not None
        assert "<summary>The policy as JSON</summary>" in details.group(1)
        assert "s3:GetObjectAttributes" in details.group(1)
        assert body.count('<pre class="policy"') == 1


def test_the_review_of_a_policy_without_statements_says_so(alice: Client, inv: Inventory) -> None:
    empty = {"Version": "2012-10-17", "Statement": []}
    alice.post(url("request_editor", inv.api), {"document": json.dumps(empty)})
    step_two = text(alice.get(url("request_permissions", inv.api), **HTMX))
    assert "The policy has no statements" in step_two
    for response in (
        alice.get(url("request_review", inv.api)),
        alice.get(url("request_review", inv.api), **HTMX),
    ):
        assert "The policy has no statements" in text(response)
    add_back = alice.post(url("request_editor_discard", inv.api))
    assert add_back.status_code == 302
    add(alice, inv.api, read_objects())
    assert "The policy has no statements" not in text(alice.get(url("request_review", inv.api)))
    assert "The policy has no statements" not in text(
        alice.get(url("request_permissions", inv.api))
    )


def test_a_template_shows_its_example_next_to_its_help(alice: Client, inv: Inventory) -> None:
    PolicyTemplate.objects.filter(pk=inv.template.pk).update(
        parameters=[
            {
                "name": "bucket",
                "label": "Bucket name",
                "help": "The bucket your service reads.",
                "example": "acme-prod-reports",
            }
        ]
    )
    for headers in ({}, HTMX):
        page = text(
            alice.get(url("request_permissions", inv.api), {"template": inv.template.pk}, **headers)
        )
        assert "The bucket your service reads. For example acme-prod-reports" in page


def test_the_s3_prefix_shows_its_example_next_to_its_help(alice: Client, inv: Inventory) -> None:
    page = text(alice.get(url("request_permissions", inv.api), {"service": "s3"}, **HTMX))
    assert "Empty means the whole bucket. For example reports/2026/" in page


# --- step 3: the default policy name -----------------------------------------------


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_the_default_policy_name_says_what_it_grants_and_is_unique_on_the_role(
    alice: Client, inv: Inventory, requester: User, headers: dict[str, Any]
) -> None:
    add(alice, inv.api, {"service": "sqs", "resource": QUEUE_ARN, "access": ["send"]})
    first = alice.get(url("request_review", inv.api), **headers)
    assert first.context["form"].initial["policy_name"] == "iamportal-sqs-write-payments-events"
    assert "A new inline policy iamportal-sqs-write-payments-events is added" in text(first)
    # Taken on the role (ignoring case): -2.
    IamRole.objects.filter(pk=inv.api.pk).update(
        inline_policies={
            "payments-events": EVENTS_POLICY,
            "IAMPORTAL-SQS-WRITE-PAYMENTS-EVENTS": {},
        }
    )
    second = alice.get(url("request_review", inv.api), **headers)
    assert second.context["form"].initial["policy_name"] == "iamportal-sqs-write-payments-events-2"
    # Taken by an open request too: -3. An empty name field takes the default as well.
    submitted = review(alice, inv.api, headers=headers, policy_name="")
    assert submitted.status_code == (200 if headers else 302)
    filed = Change.objects.get(request__requester=requester)
    assert filed.payload["policy_name"] == "iamportal-sqs-write-payments-events-2"
    add(alice, inv.api, {"service": "sqs", "resource": QUEUE_ARN, "access": ["send"]})
    third = alice.get(url("request_review", inv.api), **headers)
    assert third.context["form"].initial["policy_name"] == "iamportal-sqs-write-payments-events-3"
    dry = review(alice, inv.api, "dry_run", headers=headers, policy_name="")
    assert dry.context["preview"].policy_name == "iamportal-sqs-write-payments-events-3"


def test_a_default_policy_name_keeps_to_iams_rules(alice: Client, inv: Inventory) -> None:
    long_bucket = "b" * 63
    resources = [f"arn:aws:s3:::{long_bucket}-{n}" for n in range(3)]
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [f"{r}/*" for r in resources]}
        ],
    }
    alice.post(url("request_editor", inv.api), {"document": json.dumps(document)})
    name = alice.get(url("request_review", inv.api)).context["form"].initial["policy_name"]
    assert name == f"iamportal-s3-read-{long_bucket}-0-and-2-more"
    assert POLICY_NAME.fullmatch(name)
    assert len(name) <= 128


# --- resources the inventory does not hold ------------------------------------------


def warnings_shown(response: Any) -> str:
    body = response.content.decode()
    match = re.search(r'<div class="inventory-warnings".*?</div>', body, flags=re.S)
    return text(type("R", (), {"content": match.group(0).encode()})()) if match else ""


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_a_bucket_not_in_the_inventory_is_a_warning_where_it_is_entered_and_on_review(
    alice: Client, inv: Inventory, headers: dict[str, Any]
) -> None:
    missing = "arn:aws:s3:::acme-prod-payments-dta"
    added = add(alice, inv.api, read_objects(resource=missing), **headers)
    # A warning, not an error: the permission is added.
    assert added.status_code == (200 if headers else 302)
    assert len(draft_permissions(alice, inv.api)) == 1
    step_two = added if headers else alice.get(added["Location"])
    shown = warnings_shown(step_two)
    assert "The bucket acme-prod-payments-dta is not in the inventory" in shown
    assert "you may still submit" in shown
    on_review = alice.get(url("request_review", inv.api), **headers)
    assert "The bucket acme-prod-payments-dta is not in the inventory" in warnings_shown(on_review)
    # One warning for the bucket, though the policy names it and its objects.
    assert [w.arn for w in on_review.context["inventory_warnings"]] == [missing]
    submitted = review(alice, inv.api, headers=headers)
    assert submitted.status_code == (200 if headers else 302)
    assert PolicyRequest.objects.count() == 1


def test_resources_in_the_inventory_get_no_warning(alice: Client, inv: Inventory) -> None:
    add(alice, inv.api, read_objects())
    add(alice, inv.api, {"service": "sqs", "resource": QUEUE_ARN, "access": ["send"]})
    assert warnings_shown(alice.get(url("request_permissions", inv.api))) == ""
    response = alice.get(url("request_review", inv.api))
    assert response.context["inventory_warnings"] == []
    assert "Not in the inventory" not in text(response)


def test_queues_roles_and_accounts_outside_the_inventory_are_warnings(
    alice: Client, inv: Inventory
) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": f"arn:aws:sqs:us-east-1:{PROD}:payments-evnts",
            },
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": [f"arn:aws:iam::{PROD}:role/deployer", inv.readonly.arn],
            },
            {
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": [
                    "arn:aws:lambda:us-east-1:999999999999:function:partner",
                    f"arn:aws:lambda:us-east-1:{PROD}:function:settle",
                    f"arn:aws:sqs:us-east-1:{PROD}:*",
                ],
            },
        ],
    }
    alice.post(url("request_editor", inv.api), {"document": json.dumps(document)})
    for page in (
        alice.get(url("request_permissions", inv.api), **HTMX),
        alice.get(url("request_review", inv.api)),
    ):
        shown = warnings_shown(page)
        assert f"arn:aws:sqs:us-east-1:{PROD}:payments-evnts is not in the inventory" in shown
        assert f"arn:aws:iam::{PROD}:role/deployer is not in the inventory" in shown
        assert "in account 999999999999, which iamportal does not manage" in shown
        # Known roles, wildcards and resources the inventory never holds are not judged.
        assert inv.readonly.arn not in shown
        assert "function:settle" not in shown
        assert f"{PROD}:*" not in shown
