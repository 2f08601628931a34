"""The demo shows unused permissions and a pending removal notice, through the
production code path and the embedded AWS's Access Advisor."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.models import IamRole
from accounts.usage.models import RemovalNotice
from iamportal import demo
from tests.factories import advisor_pass, client_for, sync

pytestmark = pytest.mark.django_db


def test_the_demo_has_unused_permissions_and_a_pending_notice(requester: User) -> None:
    seeded = demo.organisation_seed()
    demo.demo_roles_age(seeded)
    accounts = demo.accounts_onboard(seeded)
    demo.rightsizing_policy_seed()
    prod = accounts[0]
    sync(prod)
    advisor_pass(prod)
    api = IamRole.objects.get(account=prod, name="payments-api")
    notice = RemovalNotice.objects.get(role=api, status=RemovalNotice.Status.PENDING)
    assert {(r["key"], tuple(r["services"]), tuple(r["actions"])) for r in notice.removals} == {
        ("payments-data", (), ("s3:putobject",)),
        ("payments-events", ("sqs",), ()),
    }
    html = (
        client_for(requester)
        .get(reverse("role_usage", args=[prod.account_id, api.name]))
        .content.decode()
    )
    assert "unused for 130+ days" in html
    assert "Unused permissions will be removed" in html
    frontend = IamRole.objects.get(account=prod, name="web-frontend")
    assert not RemovalNotice.objects.filter(role=frontend).exists()
