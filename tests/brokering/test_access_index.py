"""The access index: rebuilt at once for this process's changes, and within the
freshness window for changes made by another process."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import F

from brokering import eligibility, selectors
from iamportal.models import Revision
from tests.factories import Org

pytestmark = pytest.mark.django_db


def _tag_by_another_process(org: Org, role_key: str, tags: dict[str, str]) -> None:
    """What a sync on a worker does: new tags and a bumped revision, but no bump
    this web process could have noticed locally."""
    role = org.roles[role_key]
    type(role).objects.filter(pk=role.pk).update(tags=tags)
    Revision.objects.filter(name=eligibility.REVISION).update(value=F("value") + 1)


def test_another_process_change_is_seen_after_the_freshness_window(
    requester: User, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(eligibility.time, "monotonic", lambda: clock[0])
    break_glass = org.roles["prod/break-glass"].pk
    assert break_glass not in selectors.eligible_role_ids(requester)

    _tag_by_another_process(org, "prod/break-glass", {"iamportal-authorized": "team-payments"})
    fresh = User.objects.get(pk=requester.pk)  # a new request
    assert break_glass not in selectors.eligible_role_ids(fresh)

    clock[0] += eligibility.FRESHNESS_SECONDS + 0.1
    later = User.objects.get(pk=requester.pk)
    assert break_glass in selectors.eligible_role_ids(later)


def test_this_process_changes_are_seen_at_once(
    requester: User, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brokering.models import AccessRule
    from brokering.services import access_rule_save

    monkeypatch.setattr(eligibility.time, "monotonic", lambda: 5000.0)
    assert org.roles["prod/break-glass"].pk not in selectors.eligible_role_ids(requester)
    access_rule_save(rule=AccessRule(user=requester, role_pattern=org.arn("prod/break-glass")))
    fresh: Any = User.objects.get(pk=requester.pk)
    assert org.roles["prod/break-glass"].pk in selectors.eligible_role_ids(fresh)


def test_a_deleted_users_rule_is_not_inherited_by_a_new_account_with_that_email(
    org: Org,
) -> None:
    from brokering.models import AccessRule
    from brokering.services import access_rule_save
    from tests.factories import make_user

    bob = make_user("bob")
    access_rule_save(rule=AccessRule(user=bob, role_pattern=org.arn("prod/break-glass")))
    assert org.roles["prod/break-glass"].pk in selectors.eligible_role_ids(bob)
    bob.delete()
    again = User.objects.create_user(username="bob2", email="bob@example.com")
    assert org.roles["prod/break-glass"].pk not in selectors.eligible_role_ids(again)


def test_a_deleted_groups_rule_is_not_inherited_by_a_recreated_group(org: Org) -> None:
    from django.contrib.auth.models import Group

    from brokering.models import AccessRule
    from brokering.services import access_rule_save
    from iamportal.auth import user_groups_sync
    from tests.factories import make_user

    oncall = Group.objects.create(name="oncall")
    access_rule_save(rule=AccessRule(group=oncall, role_pattern=org.arn("prod/break-glass")))
    member = make_user("olga", "oncall")
    assert org.roles["prod/break-glass"].pk in selectors.eligible_role_ids(member)
    oncall.delete()
    user_groups_sync(user=member, group_names=["oncall"])  # the provider still sends it
    fresh = User.objects.get(pk=member.pk)
    assert org.roles["prod/break-glass"].pk not in selectors.eligible_role_ids(fresh)


def test_a_users_rule_follows_the_user_not_the_email(org: Org) -> None:
    from brokering.models import AccessRule
    from brokering.services import access_rule_save
    from tests.factories import make_user

    bob = make_user("bob")
    access_rule_save(rule=AccessRule(user=bob, role_pattern=org.arn("prod/break-glass")))
    User.objects.filter(pk=bob.pk).update(email="robert@example.com")
    newcomer = User.objects.create_user(username="bob-new", email="bob@example.com")
    assert org.roles["prod/break-glass"].pk not in selectors.eligible_role_ids(newcomer)
    moved = User.objects.get(pk=bob.pk)
    assert org.roles["prod/break-glass"].pk in selectors.eligible_role_ids(moved)
