"""Submitting a request: validation, the dry-run preview and what a submission creates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from requests_app import services
from requests_app.models import Change, PolicyRequest, RequestEvent
from requests_app.policy.lint_rules import RULES

pytestmark = pytest.mark.django_db

READ_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadInvoices",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::acme-invoices/*"],
        }
    ],
}


@pytest.fixture
def role(db: None) -> IamRole:
    account = AwsAccount.objects.create(account_id="111111111111", name="acme-prod")
    return IamRole.objects.create(
        account=account,
        arn="arn:aws:iam::111111111111:role/payments-api",
        name="payments-api",
        inline_policies={"existing": {"Version": "2012-10-17", "Statement": []}},
        content_hash="x",
        synced_at=timezone.now(),
    )


def preview(role: IamRole, **overrides: Any) -> services.RequestPreview:
    arguments: dict[str, Any] = {
        "role": role,
        "document": READ_BUCKET,
        "justification": "Monthly invoice export",
    }
    arguments.update(overrides)
    return services.policy_request_preview(**arguments)


def test_every_blocking_code_is_a_code_the_linter_emits() -> None:
    assert set(RULES) >= services.BLOCKING_LINT_CODES


def test_a_submission_creates_one_pending_request_with_its_change_and_event(
    requester: User, role: IamRole
) -> None:
    request = services.policy_request_submit(requester=requester, preview=preview(role))
    assert request.status == PolicyRequest.Status.PENDING
    assert request.role_arn == role.arn
    change = Change.objects.get(request=request)
    assert change.type == Change.Type.INLINE_POLICY_PUT
    assert change.payload["document"] == READ_BUCKET
    assert change.payload["policy_name"].startswith("iamportal-")
    assert change.previous is None
    event = RequestEvent.objects.get(request=request)
    assert (event.kind, event.actor) == (RequestEvent.Kind.SUBMITTED, requester)


def test_updating_an_existing_inline_policy_keeps_what_was_there(role: IamRole) -> None:
    result = preview(role, policy_name="existing")
    assert result.previous == {"Version": "2012-10-17", "Statement": []}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"justification": "  "}, "justification", "Say why"),
        ({"justification": "x" * 6000}, "justification", "under 5000"),
        ({"policy_name": "bad name!"}, "policy_name", "1-128"),
        ({"expires_at": timezone.now() - timedelta(hours=1)}, "expires_at", "future"),
        ({"expires_at": timezone.now() + timedelta(days=400)}, "expires_at", "90 days"),
        ({"document": "{not json"}, "document", "JSON"),
        (
            {"document": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}},
            "document",
            "",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_and_nothing_is_created(
    role: IamRole, overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(services.RequestInvalid) as caught:
        preview(role, **overrides)
    assert field in caught.value.errors
    assert message in caught.value.errors[field]
    assert not PolicyRequest.objects.exists()


def test_a_policy_too_large_with_the_roles_other_inline_policies_is_refused(
    role: IamRole,
) -> None:
    big = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Pad",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::b/" + "k" * 9000,
            }
        ],
    }
    IamRole.objects.filter(pk=role.pk).update(
        inline_policies={"other": {"Version": "2012-10-17", "Statement": [{"Sid": "x" * 2000}]}}
    )
    role.refresh_from_db()
    with pytest.raises(services.RequestInvalid) as caught:
        preview(role, document=big)
    assert "document" in caught.value.errors


def test_risky_but_valid_policies_are_submitted_with_their_findings(role: IamRole) -> None:
    risky = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    result = preview(role, document=risky)
    assert any(f.severity in ("warning", "error") for f in result.findings)
