"""Approval on behalf of the right-sizing policy (`auto` mode): only pending
requests without error findings, counted by the apply job as an automatic
approval."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from requests_app import services
from requests_app.models import Approval, PolicyRequest
from tests.factories import Inventory, submitted

pytestmark = pytest.mark.django_db

ADMIN = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def test_it_approves_a_pending_request_without_a_reviewer(
    inv: Inventory, requester: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.approval, "_apply_enqueue", lambda request_id: None)
    request = submitted(requester, inv.api)
    assert services.policy_request_approve_automatically(
        request_id=request.pk, by="the right-sizing policy", reason="unused"
    )
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPROVED
    approval = Approval.objects.get(request=request)
    assert (approval.reviewer, approval.automatic) == (None, True)
    assert services.approvals_counted(request, request.revision) == (1, True)


def test_it_refuses_a_request_with_error_findings(inv: Inventory, requester: User) -> None:
    preview = services.policy_request_preview(
        role=inv.api, document=ADMIN, justification="everything", policy_name="all"
    )
    request = services.policy_request_submit(
        requester=requester, preview=preview, findings_acknowledgement="Really everything."
    )
    assert request.risk == "error"
    assert not services.policy_request_approve_automatically(
        request_id=request.pk, by="the right-sizing policy", reason="unused"
    )
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.PENDING
    assert not Approval.objects.filter(request=request).exists()


def test_it_refuses_a_request_no_longer_pending(inv: Inventory, requester: User) -> None:
    request = submitted(requester, inv.api)
    services.policy_request_cancel(request_id=request.pk, requester=requester)
    assert not services.policy_request_approve_automatically(
        request_id=request.pk, by="the right-sizing policy", reason="unused"
    )
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.CANCELLED
