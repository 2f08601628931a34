"""An access rule's expiry: from its moment the rule grants nothing, in every
interface, without waiting for anything else to change access."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from brokering import eligibility, selectors
from brokering.models import AccessRule, CredentialIssuance
from brokering.services import access_rule_save
from iamportal.models import Revision
from iamportal.services import api_token_create
from tests.factories import Org

pytestmark = pytest.mark.django_db


def token_client(user: User) -> Client:
    _, raw = api_token_create(user=user, name="script", expires_in_days=30)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR="198.51.100.7")


def credentials(user: User, arn: str) -> int:
    response = token_client(user).post(
        "/api/v1/credentials", json.dumps({"role": arn}), content_type="application/json"
    )
    return response.status_code


def weep_roles(user: User) -> list[str]:
    response = token_client(user).get("/api/v1/get_roles", {"all": "true"})
    assert response.status_code == 200
    return list(response.json())


def test_an_expired_rule_grants_nothing(outsider: User, org: Org) -> None:
    arn = org.arn("prod/break-glass")
    access_rule_save(
        rule=AccessRule(
            user=outsider, role_pattern=arn, expires_at=timezone.now() - timedelta(minutes=1)
        )
    )
    fresh = User.objects.get(pk=outsider.pk)
    assert arn not in {role.arn for role in selectors.roles_for_user(fresh)}
    assert arn not in weep_roles(outsider)
    assert credentials(outsider, arn) == 404
    assert not CredentialIssuance.objects.filter(outcome="issued").exists()


def test_a_rule_not_yet_expired_grants_until_its_moment_without_a_bump(
    outsider: User, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = org.arn("prod/break-glass")
    start = timezone.now()
    access_rule_save(
        rule=AccessRule(user=outsider, role_pattern=arn, expires_at=start + timedelta(hours=1))
    )
    assert arn in weep_roles(outsider)  # the index is built, and kept
    assert credentials(outsider, arn) == 200
    revision = Revision.objects.get(name=eligibility.REVISION).value

    monkeypatch.setattr(timezone, "now", lambda: start + timedelta(hours=1, seconds=1))

    assert Revision.objects.get(name=eligibility.REVISION).value == revision
    assert arn not in weep_roles(outsider)
    assert credentials(outsider, arn) == 404
    later = User.objects.get(pk=outsider.pk)
    assert org.roles["prod/break-glass"].pk not in selectors.eligible_role_ids(later)
    audience = selectors.users_for_role(org.roles["prod/break-glass"])
    assert "oscar@example.com" not in dict(audience.users)


def test_other_grants_of_the_role_stand_when_a_rule_expires(admin_user: User, org: Org) -> None:
    """admin may use break-glass through the group rule; an expired rule of their own
    for the same role takes nothing away."""
    arn = org.arn("prod/break-glass")
    access_rule_save(
        rule=AccessRule(
            user=admin_user, role_pattern=arn, expires_at=timezone.now() - timedelta(days=1)
        )
    )
    assert arn in weep_roles(admin_user)
