"""Django admin for accounts and the synced inventory."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Model
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource, IamRole, ManagedPolicy, SyncRun
from iamportal.models import JobStatus
from tests.factories import client_for


@pytest.fixture
def payments(db: None) -> AwsAccount:
    return AwsAccount.objects.create(account_id="111111111111", name="payments")


def _inventory(account: AwsAccount) -> dict[str, Model]:
    now = timezone.now()
    common = {"account": account, "content_hash": "x", "synced_at": now}
    return {
        "role": IamRole.objects.create(
            arn="arn:aws:iam::111111111111:role/ci",
            name="ci",
            trust_policy={"Version": "2012-10-17", "Statement": []},
            **common,
        ),
        "policy": ManagedPolicy.objects.create(
            arn="arn:aws:iam::111111111111:policy/read",
            name="read",
            document={"Version": "2012-10-17", "Statement": []},
            **common,
        ),
        "resource": CloudResource.objects.create(
            arn="arn:aws:s3:::invoices", name="invoices", type="s3", **common
        ),
        "sync run": SyncRun.objects.create(
            account=account, status=SyncRun.Status.FAILED, error="AccessDenied", counts={"a": 1}
        ),
        "job status": JobStatus.objects.create(name="accounts.sync_all", last_error="boom"),
    }


def _admin_url(obj: Model, view: str) -> str:
    meta = obj._meta
    name = f"admin:{meta.app_label}_{meta.model_name}_{view}"
    return reverse(name) if view in ("add", "changelist") else reverse(name, args=[obj.pk])


@pytest.mark.parametrize("kind", ["role", "policy", "resource", "sync run", "job status"])
def test_it_keeps_synced_rows_read_only_for_a_superuser(
    admin_user: User, payments: AwsAccount, kind: str
) -> None:
    obj = _inventory(payments)[kind]
    client = client_for(admin_user)

    changelist = client.get(_admin_url(obj, "changelist"))
    change = client.get(_admin_url(obj, "change"))

    assert changelist.status_code == 200
    assert _admin_url(obj, "change") in changelist.content.decode()
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    assert client.get(_admin_url(obj, "add")).status_code == 403
    assert client.post(_admin_url(obj, "change"), {}).status_code == 403
    assert client.post(_admin_url(obj, "delete"), {"post": "yes"}).status_code == 403
    assert type(obj)._default_manager.filter(pk=obj.pk).exists()


def test_it_pretty_prints_policy_documents_in_the_admin(
    admin_user: User, payments: AwsAccount
) -> None:
    role = _inventory(payments)["role"]
    html = client_for(admin_user).get(_admin_url(role, "change")).content.decode()
    assert '<pre class="json">{\n  &quot;Version&quot;: &quot;2012-10-17&quot;' in html


def test_it_lets_a_superuser_edit_an_account(admin_user: User, payments: AwsAccount) -> None:
    client = client_for(admin_user)
    change = client.get(_admin_url(payments, "change"))
    assert 'name="_save"' in change.content.decode()

    response = client.post(
        _admin_url(payments, "change"),
        {
            "account_id": payments.account_id,
            "name": "payments-prod",
            "aliases": "[]",
            "environment": "prod",
            "spoke_role_name": "",
            "external_id": "",
            "regions": "[]",
            "approvals_required": "2",
            "enabled": "on",
        },
    )

    assert response.status_code == 302
    payments.refresh_from_db()
    assert (payments.name, payments.environment) == ("payments-prod", "prod")
    assert payments.approvals_required == 2


def test_it_shows_the_latest_sync_in_the_account_list(
    admin_user: User, payments: AwsAccount
) -> None:
    run = SyncRun.objects.create(account=payments, status=SyncRun.Status.RUNNING, progress=30)
    payments.latest_sync = run
    payments.save(update_fields=["latest_sync"])
    html = client_for(admin_user).get(_admin_url(payments, "changelist")).content.decode()
    assert "Running (30%)" in html


def test_it_syncs_the_selected_accounts_from_the_admin_action(
    admin_user: User, payments: AwsAccount, django_capture_on_commit_callbacks: Any
) -> None:
    analytics = AwsAccount.objects.create(account_id="222222222222", name="analytics")
    AwsAccount.objects.create(account_id="333333333333", name="untouched")
    client = client_for(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _admin_url(payments, "changelist"),
            {"action": "sync_now", "_selected_action": [payments.pk, analytics.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert "Sync requested for 2 accounts." in response.content.decode()
    synced = set(SyncRun.objects.values_list("account__account_id", flat=True))
    assert synced == {"111111111111", "222222222222"}
    assert set(SyncRun.objects.values_list("requested_by", flat=True)) == {admin_user.pk}
