"""Policy templates in the database: the demo's, and the admin form that refuses
a template that cannot work. Also the read-only request admin. Placeholders and
filling them in are tested in tests/policy/test_templates.py."""

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
    template_check,
    template_render,
)
from tests.factories import EVENTS_POLICY, Inventory, client_for, inventory
from tests.policy.cases import PARAMETERS, READ_BUCKET


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
