"""Permission roles from groups, for every member of the cast."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User

from iamportal import permissions
from iamportal.auth import user_groups_sync
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("member", "role", "reviews", "administers"),
    [
        ("requester", "engineer", False, False),
        ("outsider", "engineer", False, False),
        ("reviewer", "reviewer", True, False),
        ("admin_user", "admin", True, True),
        ("superuser", "admin", True, True),
    ],
)
def test_groups_give_each_member_of_the_cast_their_permission_role(
    request: pytest.FixtureRequest, member: str, role: str, reviews: bool, administers: bool
) -> None:
    user: User = request.getfixturevalue(member)
    assert permissions.permission_role(user) == role
    assert permissions.is_reviewer(user) is reviews
    assert permissions.is_admin(user) is administers
    assert permissions.can_sync_accounts(user) is administers
    assert user.is_staff is (reviews or administers)


def test_anonymous_users_have_no_role() -> None:
    anonymous = AnonymousUser()
    assert permissions.permission_role(anonymous) == "anonymous"
    assert not permissions.is_reviewer(anonymous)
    assert not permissions.can_view_inventory(anonymous)


def test_an_inactive_user_has_no_role(reviewer: User) -> None:
    reviewer.is_active = False
    assert permissions.permission_role(reviewer) == "anonymous"
    assert not permissions.is_reviewer(reviewer)


def test_the_group_settings_decide_who_reviews(settings: Any) -> None:
    settings.IAMPORTAL_REVIEWER_GROUPS = ["appsec"]
    settings.IAMPORTAL_ADMIN_GROUPS = ["cloud-platform"]
    appsec = make_user("sam", "appsec")
    platform = make_user("pat", "cloud-platform")
    old_reviewer = make_user("rex", "security-reviewers")
    assert permissions.permission_role(appsec) == "reviewer"
    assert permissions.permission_role(platform) == "admin"
    assert permissions.permission_role(old_reviewer) == "engineer"


def test_losing_the_reviewer_group_removes_staff_access(reviewer: User) -> None:
    user_groups_sync(user=reviewer, group_names=["engineering"])
    reviewer.refresh_from_db()
    assert not reviewer.is_staff
    assert set(reviewer.groups.values_list("name", flat=True)) == {"engineering"}
    assert permissions.permission_role(reviewer) == "engineer"


def test_group_sync_bounds_what_an_identity_source_sends(requester: User) -> None:
    user_groups_sync(user=requester, group_names=["ok", " ok ", "", "x" * 500, 42, None])  # type: ignore[list-item]
    assert set(requester.groups.values_list("name", flat=True)) == {"ok", "42"}


def test_only_reviewers_see_the_review_queue_in_the_navigation(
    reviewer: User, requester: User
) -> None:
    from tests.factories import client_for

    assert 'href="/requests/review/"' in client_for(reviewer).get("/").content.decode()
    assert 'href="/requests/review/"' not in client_for(requester).get("/").content.decode()
