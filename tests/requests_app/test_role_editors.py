"""The role part editors: each part of a role edited from its page, previewed
as a diff with findings, and submitted as an ordinary request, then reviewed
and applied like any other."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts.models import IamRole
from requests_app.models import Change, PolicyRequest
from tests.factories import (
    PROD,
    Inventory,
    admin_iam,
    approve,
    client_for,
    policy_in_aws,
    sync,
)

pytestmark = pytest.mark.django_db

READ_REPORTS: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-reports/*"}
    ],
}
WHY = "Ticket OPS-42: the nightly export reads the reports bucket."


def _url(role: IamRole, part: str, policy: str = "") -> str:
    url = reverse("role_part_edit", args=[role.account.account_id, role.name, part])
    return f"{url}?policy={policy}" if policy else url


def _preview(
    client: Client, role: IamRole, part: str, data: dict[str, Any], policy: str = ""
) -> Any:
    return client.post(_url(role, part, policy), {**data, "action": "preview"})


def _submit(
    client: Client, role: IamRole, part: str, data: dict[str, Any], policy: str = ""
) -> Any:
    """Preview, then submit what was previewed, as a person does."""
    preview = _preview(client, role, part, data, policy)
    assert preview.status_code == 200, preview.content.decode()[:3000]
    return client.post(
        _url(role, part, policy),
        {**data, "action": "submit", "preview_of": preview.context["preview_of"]},
    )


def _changes(request: PolicyRequest) -> list[tuple[str, dict[str, Any]]]:
    return [(c.type, c.payload) for c in request.changes.order_by("position", "pk")]


# --- who may open an editor -----------------------------------------------------------------


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
@pytest.mark.parametrize("part", ["inline", "managed", "trust", "tags", "boundary"])
def test_every_signed_in_user_may_open_every_editor(
    inv: Inventory, who: str, part: str, request: pytest.FixtureRequest
) -> None:
    response = client_for(request.getfixturevalue(who)).get(_url(inv.api, part))
    assert response.status_code == 200
    assert "Preview" in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(inv: Inventory, anonymous: Client) -> None:
    for method in (anonymous.get, anonymous.post):
        response = method(_url(inv.api, "trust"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_an_unknown_part_or_inline_policy_is_not_found(inv: Inventory, requester: User) -> None:
    client = client_for(requester)
    assert client.get(_url(inv.api, "secrets")).status_code == 404
    assert client.get(_url(inv.api, "inline", "no-such-policy")).status_code == 404
    missing = reverse("role_part_edit", args=[PROD, "no-such-role", "tags"])
    assert client.get(missing).status_code == 404


def test_the_editor_starts_from_what_the_role_has(inv: Inventory, requester: User) -> None:
    client = client_for(requester)
    inline = client.get(_url(inv.api, "inline", "payments-events")).content.decode()
    assert "sqs:SendMessage" in inline
    tags = client.get(_url(inv.api, "tags")).content.decode()
    assert "iamportal-authorized=team-payments" in tags


# --- preview and submit ----------------------------------------------------------------------


def test_a_preview_shows_the_diff_and_findings_and_files_nothing(
    inv: Inventory, requester: User
) -> None:
    response = _preview(
        client_for(requester),
        inv.api,
        "inline",
        {"policy_name": "reports-read", "document": json.dumps(READ_REPORTS)},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Add or update" in page or "reports-read" in page
    assert "s3:GetObject" in page and 'class="line add"' in page
    assert "Submit the request" in page
    assert not PolicyRequest.objects.exists()


def test_submitting_files_an_ordinary_request_with_the_inline_policy(
    inv: Inventory, requester: User
) -> None:
    response = _submit(
        client_for(requester),
        inv.api,
        "inline",
        {"policy_name": "reports-read", "document": json.dumps(READ_REPORTS), "justification": WHY},
    )
    created = PolicyRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    assert created.status == PolicyRequest.Status.PENDING
    assert created.requester == requester
    assert _changes(created) == [
        (Change.Type.INLINE_POLICY_PUT, {"policy_name": "reports-read", "document": READ_REPORTS})
    ]


def test_a_form_changed_since_its_preview_is_shown_again_not_submitted(
    inv: Inventory, requester: User
) -> None:
    client = client_for(requester)
    data = {
        "policy_name": "reports-read",
        "document": json.dumps(READ_REPORTS),
        "justification": WHY,
    }
    preview = _preview(client, inv.api, "inline", data)
    wider = {**READ_REPORTS, "Statement": [{**READ_REPORTS["Statement"][0], "Action": "s3:*"}]}
    response = client.post(
        _url(inv.api, "inline"),
        {
            **data,
            "document": json.dumps(wider),
            "action": "submit",
            "preview_of": preview.context["preview_of"],
        },
    )
    assert response.status_code == 409
    assert "changed since the preview" in response.content.decode()
    assert not PolicyRequest.objects.exists()


def test_deleting_an_inline_policy(inv: Inventory, requester: User) -> None:
    _submit(
        client_for(requester),
        inv.api,
        "inline",
        {"policy_name": "payments-events", "delete": "on", "justification": WHY},
        policy="payments-events",
    )
    assert _changes(PolicyRequest.objects.get()) == [
        (Change.Type.INLINE_POLICY_DELETE, {"policy_name": "payments-events"})
    ]


def test_no_change_offers_no_submit(inv: Inventory, requester: User) -> None:
    page = _preview(
        client_for(requester), inv.api, "tags", {"tags": "iamportal-authorized=team-payments"}
    ).content.decode()
    assert "No change: the role already has exactly this." in page
    assert "Submit the request" not in page


def test_tags_edits_warn_about_the_access_tags(inv: Inventory, requester: User) -> None:
    client = client_for(requester)
    data = {"tags": "iamportal-authorized=team-payments:engineering\nteam = payments"}
    page = _preview(client, inv.api, "tags", data).content.decode()
    assert "decides who may use this role" in page
    _submit(client, inv.api, "tags", {**data, "justification": WHY})
    assert _changes(PolicyRequest.objects.get()) == [
        (
            Change.Type.TAGS_PUT,
            {"tags": {"iamportal-authorized": "team-payments:engineering", "team": "payments"}},
        )
    ]


def test_removing_a_tag_files_its_deletion(inv: Inventory, requester: User) -> None:
    _submit(client_for(requester), inv.api, "tags", {"tags": "", "justification": WHY})
    assert _changes(PolicyRequest.objects.get()) == [
        (Change.Type.TAGS_DELETE, {"keys": ["iamportal-authorized"]})
    ]


def test_managed_policies_by_name_or_arn(inv: Inventory, requester: User) -> None:
    _submit(
        client_for(requester),
        inv.api,
        "managed",
        {"policies": "ReadOnlyAccess\n", "justification": WHY},
    )
    assert _changes(PolicyRequest.objects.get()) == [
        (
            Change.Type.MANAGED_POLICY_ATTACH,
            {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
        )
    ]


def test_a_boundary_is_set_from_an_arn(inv: Inventory, requester: User) -> None:
    arn = "arn:aws:iam::aws:policy/PowerUserAccess"
    _submit(client_for(requester), inv.api, "boundary", {"policy": arn, "justification": WHY})
    assert _changes(PolicyRequest.objects.get()) == [
        (Change.Type.PERMISSIONS_BOUNDARY_PUT, {"policy_arn": arn})
    ]


def test_a_trust_preset_adds_its_statement(inv: Inventory, requester: User) -> None:
    _submit(
        client_for(requester),
        inv.api,
        "trust",
        {
            "document": "",
            "preset": "account",
            "preset_value": "222222222222",
            "preset_extra": "acme-partner-7",
            "justification": WHY,
        },
    )
    ((kind, payload),) = _changes(PolicyRequest.objects.get())
    assert kind == Change.Type.TRUST_POLICY_UPDATE
    assert payload["document"]["Statement"] == [
        {
            "Sid": "TrustAccount222222222222",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "acme-partner-7"}},
        }
    ]


@pytest.mark.parametrize(
    ("part", "data", "error"),
    [
        ("inline", {"policy_name": "x", "document": "{not json"}, "Not valid JSON"),
        ("inline", {"policy_name": "x", "document": "[1]"}, "A policy is a JSON object"),
        ("inline", {"policy_name": "bad name!", "document": "{}"}, "1-128 letters"),
        ("trust", {"document": ""}, "A role needs a trust policy"),
        (
            "trust",
            {"document": "", "preset": "account", "preset_value": "222222222222"},
            "only with an ExternalId",
        ),
        ("trust", {"document": "", "preset": "service", "preset_value": "*"}, "service principal"),
        (
            "trust",
            {
                "document": "",
                "preset": "role",
                "preset_value": "arn:aws:iam::222222222222:role/unknown",
            },
            "a role in iamportal",
        ),
        ("tags", {"tags": "no equals sign"}, "is not key=value"),
        ("managed", {"policies": "arn:aws:s3:::bucket"}, "is not a managed policy ARN"),
    ],
)
def test_bad_input_is_a_form_error_and_files_nothing(
    inv: Inventory, requester: User, part: str, data: dict[str, str], error: str
) -> None:
    response = _preview(client_for(requester), inv.api, part, data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not PolicyRequest.objects.exists()


def test_a_justification_is_required_to_submit(inv: Inventory, requester: User) -> None:
    response = _submit(
        client_for(requester),
        inv.api,
        "inline",
        {"policy_name": "reports-read", "document": json.dumps(READ_REPORTS)},
    )
    assert response.status_code == 400
    assert not PolicyRequest.objects.exists()


def test_iamportal_s_own_roles_cannot_be_edited(inv: Inventory, requester: User) -> None:
    spoke = IamRole.objects.create(
        account=inv.account,
        arn=f"arn:aws:iam::{PROD}:role/iamportal-spoke",
        name="iamportal-spoke",
        content_hash="x",
        synced_at=inv.api.synced_at,
    )
    client = client_for(requester)
    assert "own roles (managed by iamportal)" in client.get(_url(spoke, "tags")).content.decode()
    response = _preview(client, spoke, "tags", {"tags": "a=b", "justification": WHY})
    assert response.status_code == 400
    assert not PolicyRequest.objects.exists()


def test_each_tab_of_the_role_page_links_to_its_editor(inv: Inventory, requester: User) -> None:
    client = client_for(requester)
    for part in ("trust", "inline", "managed", "tags", "boundary"):
        tab = client.get(reverse(f"role_{part}", args=[PROD, inv.api.name])).content.decode()
        assert _url(inv.api, part) in tab, part
    inline = client.get(reverse("role_inline", args=[PROD, inv.api.name])).content.decode()
    assert _url(inv.api, "inline", "payments-events") in inline


# --- end to end against the embedded AWS -------------------------------------------------------


def test_an_edited_trust_policy_and_inline_policy_are_reviewed_and_applied(
    role: IamRole, requester: User, reviewer: User
) -> None:
    sync(role.account)
    role.refresh_from_db()
    client = client_for(requester)
    _submit(
        client,
        role,
        "trust",
        {
            "document": json.dumps(role.trust_policy),
            "preset": "service",
            "preset_value": "lambda.amazonaws.com",
            "justification": WHY,
        },
    )
    trust_request = PolicyRequest.objects.get()
    assert approve(trust_request, reviewer).status == PolicyRequest.Status.APPLIED
    live = admin_iam(role.account.account_id).get_role(RoleName=role.name)["Role"]
    principals = [s["Principal"] for s in live["AssumeRolePolicyDocument"]["Statement"]]
    assert {"Service": "lambda.amazonaws.com"} in principals
    assert {"Service": "ecs-tasks.amazonaws.com"} in principals

    _submit(
        client,
        role,
        "inline",
        {"policy_name": "reports-read", "document": json.dumps(READ_REPORTS), "justification": WHY},
    )
    inline_request = PolicyRequest.objects.exclude(pk=trust_request.pk).get()
    assert approve(inline_request, reviewer).status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "reports-read") == READ_REPORTS


# --- the policy editor's action list -----------------------------------------------------------


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_the_policy_editor_completes_from_every_known_action(
    who: str, request: pytest.FixtureRequest
) -> None:
    response = client_for(request.getfixturevalue(who)).get(reverse("policy_actions"))
    assert response.status_code == 200
    actions = response.json()["actions"]
    assert "s3:GetObject" in actions and "sts:AssumeRole" in actions
    assert len(actions) > 10_000
    assert actions == sorted(actions, key=str.lower)


def test_the_action_list_needs_a_sign_in(anonymous: Client) -> None:
    response = anonymous.get(reverse("policy_actions"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_policy_fields_carry_the_editor_and_keep_the_textarea(
    inv: Inventory, requester: User
) -> None:
    page = client_for(requester).get(_url(inv.api, "trust")).content.decode()
    assert "data-policy-editor" in page and "<textarea" in page
    assert reverse("policy_actions") in page


# --- several edits, one request ----------------------------------------------------------------


def _collect(
    client: Client, role: IamRole, part: str, data: dict[str, Any], policy: str = ""
) -> Any:
    preview = _preview(client, role, part, data, policy)
    assert preview.status_code == 200, preview.content.decode()[:3000]
    return client.post(
        _url(role, part, policy),
        {**data, "action": "collect", "preview_of": preview.context["preview_of"]},
    )


def _collected_url(role: IamRole) -> str:
    return reverse("role_edits_collected", args=[role.account.account_id, role.name])


def test_edits_of_several_parts_go_in_one_request(inv: Inventory, requester: User) -> None:
    client = client_for(requester)
    response = _collect(
        client,
        inv.api,
        "inline",
        {"policy_name": "reports-read", "document": json.dumps(READ_REPORTS)},
    )
    assert response["Location"] == _collected_url(inv.api)
    _collect(client, inv.api, "tags", {"tags": "iamportal-authorized=team-payments\nteam=payments"})
    # A later edit of the same part replaces the earlier one.
    _collect(client, inv.api, "tags", {"tags": "iamportal-authorized=team-payments\nteam=billing"})
    assert not PolicyRequest.objects.exists()

    role_page = client.get(reverse("role_detail", args=[PROD, inv.api.name])).content.decode()
    assert "2 collected edits: review and submit" in role_page
    page = client.get(_collected_url(inv.api))
    assert "reports-read" in page.content.decode() and "billing" in page.content.decode()

    response = client.post(
        _collected_url(inv.api),
        {"action": "submit", "justification": WHY, "preview_of": page.context["preview_of"]},
    )
    created = PolicyRequest.objects.get()
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    assert _changes(created) == [
        (Change.Type.INLINE_POLICY_PUT, {"policy_name": "reports-read", "document": READ_REPORTS}),
        (Change.Type.TAGS_PUT, {"tags": {"team": "billing"}}),
    ]
    assert (
        "collected edit"
        not in client.get(reverse("role_detail", args=[PROD, inv.api.name])).content.decode()
    )


def test_collected_edits_changed_since_the_page_was_shown_are_not_submitted(
    inv: Inventory, requester: User
) -> None:
    client = client_for(requester)
    _collect(client, inv.api, "tags", {"tags": "team=payments"})
    page = client.get(_collected_url(inv.api))
    _collect(client, inv.api, "tags", {"tags": "team=payments\niamportal-authorized=everyone"})
    response = client.post(
        _collected_url(inv.api),
        {"action": "submit", "justification": WHY, "preview_of": page.context["preview_of"]},
    )
    assert response.status_code == 409
    assert not PolicyRequest.objects.exists()


def test_collected_edits_can_be_discarded_and_are_each_users_own(
    inv: Inventory, requester: User, reviewer: User
) -> None:
    alice = client_for(requester)
    _collect(alice, inv.api, "tags", {"tags": "team=payments"})
    assert (
        "No edits are collected"
        in client_for(reviewer).get(_collected_url(inv.api)).content.decode()
    )
    response = alice.post(_collected_url(inv.api), {"action": "discard"})
    assert response["Location"] == reverse("role_detail", args=[PROD, inv.api.name])
    assert "No edits are collected" in alice.get(_collected_url(inv.api)).content.decode()
    assert not PolicyRequest.objects.exists()


def test_the_collected_edits_page_needs_a_sign_in(inv: Inventory, anonymous: Client) -> None:
    response = anonymous.get(_collected_url(inv.api))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
