"""Editing a resource policy or a customer-managed policy from its page, and
"Request access to this" on a resource: ordinary requests, filed under a role
of the same account."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource, IamRole, ManagedPolicy
from requests_app.models import Change, PolicyRequest
from tests.factories import (
    BUCKET_ARN,
    PROD,
    Inventory,
    admin_client,
    approve,
    client_for,
    sync,
)

pytestmark = pytest.mark.django_db

WHY = "Ticket OPS-77: the partner reads the monthly reports."


def _bucket_policy(bucket_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PartnerReadsReports",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::222222222222:role/reports-reader"},
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/reports/*",
            }
        ],
    }


def _bucket(inv: Inventory) -> CloudResource:
    return CloudResource.objects.get(arn=BUCKET_ARN)


def _edit_url(resource: CloudResource) -> str:
    return reverse("resource_policy_edit", args=[resource.pk])


def _submit(client: Client, url: str, data: dict[str, Any]) -> Any:
    preview = client.post(url, {**data, "action": "preview"})
    assert preview.status_code == 200, preview.content.decode()[:3000]
    return client.post(
        url, {**data, "action": "submit", "preview_of": preview.context["preview_of"]}
    )


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_user_may_open_the_resource_policy_editor(
    inv: Inventory, who: str, request: pytest.FixtureRequest
) -> None:
    response = client_for(request.getfixturevalue(who)).get(_edit_url(_bucket(inv)))
    assert response.status_code == 200
    assert "Request on behalf of" in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(inv: Inventory, anonymous: Client) -> None:
    for url in (
        _edit_url(_bucket(inv)),
        reverse("resource_request_access", args=[_bucket(inv).pk]),
    ):
        response = anonymous.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_a_bucket_policy_is_requested_under_a_role_of_its_account(
    inv: Inventory, requester: User
) -> None:
    document = _bucket_policy(BUCKET_ARN)
    client = client_for(requester)
    page = client.get(_edit_url(_bucket(inv))).content.decode()
    # The roles alice may use come first.
    assert page.index("payments-api") < page.index("ReadOnly")
    response = _submit(
        client,
        _edit_url(_bucket(inv)),
        {"role": inv.api.pk, "document": json.dumps(document), "justification": WHY},
    )
    created = PolicyRequest.objects.get()
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    assert created.role == inv.api
    change = created.changes.get()
    assert (change.type, change.target_arn) == (Change.Type.RESOURCE_POLICY_PUT, BUCKET_ARN)
    assert change.payload["document"]["Statement"][0]["Sid"] == "PartnerReadsReports"


def test_a_role_of_another_account_or_iamportal_s_own_is_not_offered(
    inv: Inventory, requester: User
) -> None:
    other = AwsAccount.objects.create(account_id="222222222222", name="acme-dev")
    elsewhere = IamRole.objects.create(
        account=other,
        arn="arn:aws:iam::222222222222:role/x",
        name="x",
        content_hash="x",
        synced_at=timezone.now(),
    )
    spoke = IamRole.objects.create(
        account=inv.account,
        arn=f"arn:aws:iam::{PROD}:role/iamportal-spoke",
        name="iamportal-spoke",
        content_hash="x",
        synced_at=timezone.now(),
    )
    client = client_for(requester)
    for role in (elsewhere, spoke):
        response = client.post(
            _edit_url(_bucket(inv)),
            {
                "role": role.pk,
                "document": json.dumps(_bucket_policy(BUCKET_ARN)),
                "action": "preview",
            },
        )
        assert response.status_code == 400
        assert "Select a valid choice" in response.content.decode()
    assert not PolicyRequest.objects.exists()


@pytest.mark.parametrize(
    ("document", "error"),
    [("", "an empty document is not a policy"), ("{oops", "Not valid JSON"), ("[]", "JSON object")],
)
def test_a_bad_document_is_a_form_error(
    inv: Inventory, requester: User, document: str, error: str
) -> None:
    response = client_for(requester).post(
        _edit_url(_bucket(inv)), {"role": inv.api.pk, "document": document, "action": "preview"}
    )
    assert response.status_code == 400
    assert error in response.content.decode()


def test_a_document_changed_since_its_preview_is_not_submitted(
    inv: Inventory, requester: User
) -> None:
    client = client_for(requester)
    data = {
        "role": inv.api.pk,
        "document": json.dumps(_bucket_policy(BUCKET_ARN)),
        "justification": WHY,
    }
    preview = client.post(_edit_url(_bucket(inv)), {**data, "action": "preview"})
    wider = _bucket_policy(BUCKET_ARN)
    wider["Statement"][0]["Principal"] = "*"
    response = client.post(
        _edit_url(_bucket(inv)),
        {
            **data,
            "document": json.dumps(wider),
            "action": "submit",
            "preview_of": preview.context["preview_of"],
        },
    )
    assert response.status_code == 409
    assert not PolicyRequest.objects.exists()


def test_a_customer_managed_policy_gets_a_new_default_version_by_request(
    inv: Inventory, requester: User
) -> None:
    policy = ManagedPolicy.objects.create(
        account=inv.account,
        arn=f"arn:aws:iam::{PROD}:policy/reports-read",
        name="reports-read",
        document={"Version": "2012-10-17", "Statement": []},
        content_hash="x",
        synced_at=timezone.now(),
    )
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{BUCKET_ARN}/*"}],
    }
    url = reverse("managed_policy_edit", args=[policy.pk])
    _submit(
        client_for(requester),
        url,
        {"role": inv.api.pk, "document": json.dumps(document), "justification": WHY},
    )
    change = PolicyRequest.objects.get().changes.get()
    assert (change.type, change.target_arn) == (Change.Type.MANAGED_POLICY_VERSION, policy.arn)
    assert change.payload == {"document": document}
    page = client_for(requester).get(reverse("policy_detail", args=[policy.pk])).content.decode()
    assert url in page


def test_request_access_to_this_opens_the_wizard_on_the_resource(
    inv: Inventory, requester: User
) -> None:
    client = client_for(requester)
    bucket = _bucket(inv)
    page = client.get(reverse("resource_detail", args=[bucket.pk])).content.decode()
    assert "Request access to this" in page and "payments-api" in page
    response = client.get(
        reverse("resource_request_access", args=[bucket.pk]), {"role": inv.api.pk}
    )
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("request_permissions", args=[inv.api.pk]))
    wizard = client.get(response["Location"]).content.decode()
    assert f'value="{BUCKET_ARN}"' in wizard


def test_request_access_without_a_role_goes_back_to_the_resource(
    inv: Inventory, requester: User
) -> None:
    bucket = _bucket(inv)
    response = client_for(requester).get(
        reverse("resource_request_access", args=[bucket.pk]), {"role": "x"}
    )
    assert response["Location"] == reverse("resource_detail", args=[bucket.pk])


def test_an_edited_bucket_policy_is_reviewed_and_applied(
    role: IamRole, requester: User, reviewer: User
) -> None:
    s3 = admin_client(role.account.account_id, "s3")
    s3.create_bucket(Bucket="acme-prod-reports")
    sync(role.account)
    bucket = CloudResource.objects.get(name="acme-prod-reports")
    role = IamRole.objects.get(arn=role.arn)
    document = _bucket_policy(bucket.arn)
    _submit(
        client_for(requester),
        _edit_url(bucket),
        {"role": role.pk, "document": json.dumps(document), "justification": WHY},
    )
    assert approve(PolicyRequest.objects.get(), reviewer).status == PolicyRequest.Status.APPLIED
    live = json.loads(s3.get_bucket_policy(Bucket="acme-prod-reports")["Policy"])
    assert live["Statement"][0]["Sid"] == "PartnerReadsReports"
