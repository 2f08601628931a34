"""Policy templates: placeholders and their declarations, filling them in
safely, and the admin form that refuses a template that cannot work. Also the
read-only request admin."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from iamportal import demo
from requests_app import services
from requests_app.models import PolicyRequest, PolicyTemplate
from requests_app.policy.templates import (
    Parameter,
    TemplateInvalid,
    policy_merge,
    template_check,
    template_parameters,
    template_placeholders,
    template_render,
)
from tests.conftest import client_for
from tests.requests_app.test_wizard import EVENTS_POLICY, Inventory, inventory

READ_BUCKET = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::{{bucket}}/{{ prefix }}*",
            }
        ],
    }
)
PARAMETERS = [
    {"name": "bucket", "label": "Bucket name", "example": "acme-data"},
    {"name": "prefix", "label": "Key prefix", "default": "reports/"},
]


# --- placeholders and parameters ----------------------------------------------------


def test_it_lists_placeholders_once_in_order_of_use() -> None:
    assert template_placeholders(READ_BUCKET) == ["bucket", "prefix"]
    assert template_placeholders('{"a": "{{x}}{{ y }}{{x}}", "b": "{not} {{1x}}"}') == ["x", "y"]


def test_it_reads_declared_parameters() -> None:
    assert template_parameters(PARAMETERS) == [
        Parameter(name="bucket", label="Bucket name", example="acme-data"),
        Parameter(name="prefix", label="Key prefix", default="reports/"),
    ]
    assert template_parameters([]) == []
    assert template_parameters([{"name": "queue"}]) == [Parameter(name="queue", label="queue")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"bucket": "Bucket"}, "Parameters are a JSON list"),
        (["bucket"], "is not an object"),
        ([{"label": "Bucket"}], "needs a name"),
        ([{"name": "1bucket"}], "needs a name"),
        ([{"name": "bucket"}, {"name": "bucket"}], "declared twice"),
        ([{"name": "bucket", "label": 3}], "must be a string"),
        ([{"name": "bucket", "pattern": ".*"}], "unknown keys: pattern"),
        ([{"name": f"p{n}"} for n in range(21)], "at most 20 parameters"),
    ],
)
def test_it_refuses_malformed_parameters(raw: Any, message: str) -> None:
    with pytest.raises(TemplateInvalid) as refused:
        template_parameters(raw)
    assert message in refused.value.errors["parameters"]


def test_it_fills_in_a_template() -> None:
    document = template_render(
        document=READ_BUCKET,
        parameters=PARAMETERS,
        values={"bucket": " acme-prod-data ", "prefix": "2026/"},
    )
    assert document["Statement"][0]["Resource"] == "arn:aws:s3:::acme-prod-data/2026/*"


def test_a_value_can_never_break_out_of_its_json_string() -> None:
    document = template_render(
        document=READ_BUCKET,
        parameters=PARAMETERS,
        values={"bucket": 'x", "Effect": "Deny', "prefix": "a\\b"},
    )
    statement = document["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == 'arn:aws:s3:::x", "Effect": "Deny/a\\b*'


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"prefix": "x"}, "bucket", "Give a value for Bucket name"),
        ({"bucket": "*", "prefix": "x"}, "bucket", "cannot contain wildcards"),
        ({"bucket": "acme", "prefix": "re?"}, "prefix", "cannot contain wildcards"),
        ({"bucket": "a\nb", "prefix": "x"}, "bucket", "control characters"),
        ({"bucket": "a" * 257, "prefix": "x"}, "bucket", "at most 256 characters"),
    ],
)
def test_it_refuses_bad_values(values: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(TemplateInvalid) as refused:
        template_render(document=READ_BUCKET, parameters=PARAMETERS, values=values)
    assert message in refused.value.errors[field]


def test_a_template_that_does_not_make_an_object_is_refused_when_filled() -> None:
    with pytest.raises(TemplateInvalid) as refused:
        template_render(document='["{{a}}"]', parameters=[{"name": "a"}], values={"a": "b"})
    assert "JSON object" in refused.value.errors["document"]


def test_check_fills_placeholders_with_sample_values() -> None:
    sample = template_check(document=READ_BUCKET, parameters=PARAMETERS)
    assert sample["Statement"][0]["Resource"] == "arn:aws:s3:::acme-data/reports/*"
    sample = template_check(
        document=READ_BUCKET.replace("{{ prefix }}", ""), parameters=[{"name": "bucket"}]
    )
    assert sample["Statement"][0]["Resource"] == "arn:aws:s3:::sample-bucket/*"


@pytest.mark.parametrize(
    ("document", "parameters", "field", "message"),
    [
        (READ_BUCKET, PARAMETERS[:1], "parameters", "missing: {{prefix}}"),
        ('{"Resource": {{bucket}}}', PARAMETERS[:1], "document", "not JSON once"),
        ('{"Version": "2012-10-17",', [], "document", "not JSON once"),
        ("[]", [], "document", "must be a JSON object"),
        ("{}" + " " * 20_000, [], "document", "at most 20000 characters"),
    ],
)
def test_check_refuses_a_template_that_cannot_work(
    document: str, parameters: Any, field: str, message: str
) -> None:
    with pytest.raises(TemplateInvalid) as refused:
        template_check(document=document, parameters=parameters)
    assert message in refused.value.errors[field]


def test_merging_keeps_every_statement_once_with_unique_sids() -> None:
    first = {"Version": "2012-10-17", "Statement": [{"Sid": "Read", "Effect": "Allow"}]}
    second = {"Statement": {"Sid": "Read", "Effect": "Deny"}}
    merged = policy_merge([first, second, first])
    assert merged == {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Read", "Effect": "Allow"}, {"Sid": "Read2", "Effect": "Deny"}],
    }


def test_the_demo_templates_pass_the_admin_checks(db: None) -> None:
    templates = demo.policy_templates_seed()
    assert [t.name for t in templates] == [spec["name"] for spec in demo.DEMO_TEMPLATES]
    assert "Read-only database access" in {t.name for t in templates}
    for template in templates:
        template_check(document=template.document, parameters=template.parameters)
    assert demo.policy_templates_seed() == templates  # seeding twice changes nothing
    rds = PolicyTemplate.objects.get(name="Read-only database access")
    document = template_render(
        document=rds.document,
        parameters=rds.parameters,
        values={
            "region": "eu-west-1",
            "account_id": "111111111111",
            "db_resource_id": "db-ABC123",
            "db_user": "readonly",
        },
    )
    assert document["Statement"][0] == {
        "Sid": "ConnectAsDatabaseUser",
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": "arn:aws:rds-db:eu-west-1:111111111111:dbuser:db-ABC123/readonly",
    }


# --- the admin ------------------------------------------------------------------------


def template_form(**changes: Any) -> dict[str, Any]:
    data = {
        "name": "Read objects in a bucket",
        "description": "List and read one bucket.",
        "parameters": json.dumps(PARAMETERS),
        "document": READ_BUCKET,
        "enabled": "on",
    }
    data.update(changes)
    return data


def test_admins_add_a_valid_template(admin_user: User) -> None:
    client = client_for(admin_user)
    response = client.post(reverse("admin:requests_app_policytemplate_add"), template_form())
    assert response.status_code == 302
    template = PolicyTemplate.objects.get()
    assert template.parameters == PARAMETERS
    assert template.enabled


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"parameters": json.dumps(PARAMETERS[:1])}, "missing: {{prefix}}"),
        ({"document": '{"Resource": {{bucket}} }'}, "not JSON once its placeholders are filled"),
        ({"parameters": '{"bucket": 1}'}, "Parameters are a JSON list"),
        ({"parameters": "[not json"}, "Enter a valid JSON"),
    ],
)
def test_the_admin_refuses_a_template_that_cannot_work(
    admin_user: User, changes: dict[str, Any], message: str
) -> None:
    client = client_for(admin_user)
    response = client.post(
        reverse("admin:requests_app_policytemplate_add"), template_form(**changes)
    )
    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not PolicyTemplate.objects.exists()


@pytest.mark.parametrize("member", ["reviewer", "requester", "outsider"])
def test_only_admins_manage_templates(member: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(member)
    user.is_staff = True  # even with access to the admin site
    user.save(update_fields=["is_staff"])
    client = client_for(user)
    response = client.post(reverse("admin:requests_app_policytemplate_add"), template_form())
    assert response.status_code == 403
    assert client.get(reverse("admin:requests_app_policytemplate_changelist")).status_code == 403
    assert not PolicyTemplate.objects.exists()


@pytest.fixture
def inv(db: None) -> Inventory:
    return inventory()


def test_reviewers_read_requests_in_the_admin_with_the_payload_pretty_printed(
    inv: Inventory, requester: User, reviewer: User
) -> None:
    preview = services.policy_request_preview(
        role=inv.api, document=EVENTS_POLICY, justification="Needed.", policy_name="events"
    )
    created = services.policy_request_submit(requester=requester, preview=preview)
    reviewer.is_staff = True
    reviewer.save(update_fields=["is_staff"])
    client = client_for(reviewer)
    change = created.changes.get()
    page = client.get(reverse("admin:requests_app_change_change", args=[change.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert '<pre class="json">' in body
    assert "&quot;policy_name&quot;: &quot;events&quot;" in body
    request_page = client.get(reverse("admin:requests_app_policyrequest_change", args=[created.pk]))
    assert request_page.status_code == 200
    admin_page = request_page.content.decode()
    assert "Add inline policy events on role" in admin_page
    assert '<span class="diff-add">' in admin_page  # the diff the reviewer approves
    for name in ("policyrequest", "change", "requestevent", "comment"):
        assert client.get(reverse(f"admin:requests_app_{name}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:requests_app_{name}_add")).status_code == 403
    edit = client.post(
        reverse("admin:requests_app_policyrequest_change", args=[created.pk]),
        {"status": "approved", "justification": "x"},
    )
    assert edit.status_code == 403
    assert PolicyRequest.objects.get().status == PolicyRequest.Status.PENDING


def test_requests_are_not_in_the_admin_for_engineers(inv: Inventory, requester: User) -> None:
    requester.is_staff = True
    requester.save(update_fields=["is_staff"])
    client = client_for(requester)
    assert client.get(reverse("admin:requests_app_policyrequest_changelist")).status_code == 403
