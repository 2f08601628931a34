"""Who may do what. Each decision is one function, so pages, APIs and the admin
ask the same question and get the same answer.

Permission roles come from groups (IAMPORTAL_REVIEWER_GROUPS,
IAMPORTAL_ADMIN_GROUPS): admins manage accounts, access rules and templates and
can do everything a reviewer can; reviewers review and approve requests;
everyone else signed in is an engineer.
"""

from __future__ import annotations

import functools
import hmac
from typing import Literal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, User
from django.db.models import Field

from iamportal import rows

AnyUser = AbstractBaseUser | AnonymousUser
PermissionRole = Literal["admin", "reviewer", "engineer", "anonymous"]
_CACHE = "_iamportal_groups"


def user_groups(user: AnyUser) -> frozenset[tuple[int, str]]:
    """The user's groups as (id, name), read once per user object (one request)."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, _CACHE, None)
    if cached is None:
        cached = frozenset(Group.objects.filter(user__pk=user.pk).values_list("pk", "name"))
        setattr(user, _CACHE, cached)
    return cached


def active_user_with_groups(pk: int) -> User | None:
    """The active user with primary key `pk` (None when there is none), with its
    groups read in the same statement, a join, so that user_groups answers from
    memory. For paths where every request needs both, such as a credential request;
    the statement is written once (iamportal.rows). The password hash and the
    sign-in dates are not read (they repeat on every group's row); they load if
    used."""
    with rows.cursor() as cursor:
        cursor.execute(_user_with_groups_sql(), [pk, True])
        found = cursor.fetchall()
    if not found:
        return None
    fields = _user_fields()
    user = rows.instance(User, fields, found[0][: len(fields)])
    groups = frozenset((row[-2], row[-1]) for row in found if row[-2] is not None)
    setattr(user, _CACHE, groups)
    return user


# What a request reads of its user: identity and permission flags.
_USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
)


@functools.cache
def _user_fields() -> list[Field]:
    return rows.concrete_fields(User, _USER_FIELDS)


@functools.cache
def _user_with_groups_sql() -> str:
    through = User.groups.through
    table, column = rows.table, rows.column
    return (
        f"SELECT {rows.columns('u', _user_fields())}, "  # noqa: S608
        f"g.{column(Group, 'pk')}, g.{column(Group, 'name')} "
        f"FROM {table(User)} u "
        f"LEFT JOIN {table(through)} ug ON ug.{column(through, 'user')} = u.{column(User, 'pk')} "
        f"LEFT JOIN {table(Group)} g ON g.{column(Group, 'pk')} = ug.{column(through, 'group')} "
        f"WHERE u.{column(User, 'pk')} = %s AND u.{column(User, 'is_active')} = %s"
    )


def group_names(user: AnyUser) -> frozenset[str]:
    return frozenset(name for _, name in user_groups(user))


def forget_cached_groups(user: AnyUser) -> None:
    """Drop what was read about the user's groups (and derived from them, such as
    the roles they may use) on this user object."""
    for name in [n for n in vars(user) if n.startswith("_iamportal_")]:
        delattr(user, name)


def is_signed_in(user: AnyUser) -> bool:
    if not user.is_authenticated:
        return False
    return bool(user.is_active)


def is_admin(user: AnyUser) -> bool:
    if not is_signed_in(user):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(group_names(user) & set(settings.IAMPORTAL_ADMIN_GROUPS))


def is_reviewer(user: AnyUser) -> bool:
    """Reviewers, and admins (who can do everything a reviewer can)."""
    if not is_signed_in(user):
        return False
    if is_admin(user):
        return True
    return bool(group_names(user) & set(settings.IAMPORTAL_REVIEWER_GROUPS))


def permission_role(user: AnyUser) -> PermissionRole:
    if not is_signed_in(user):
        return "anonymous"
    if is_admin(user):
        return "admin"
    if is_reviewer(user):
        return "reviewer"
    return "engineer"


def can_view_inventory(user: AnyUser) -> bool:
    """Accounts, roles, policies and resources are visible to every signed-in user."""
    return is_signed_in(user)


def can_sync_accounts(user: AnyUser) -> bool:
    """Syncs cost AWS API quota in every region of an account: admins start them."""
    return is_admin(user)


def can_manage_accounts(user: AnyUser) -> bool:
    return is_admin(user)


def can_read_metrics(*, user: AnyUser, authorization: str) -> bool:
    """A signed-in user, or a scraper presenting the configured bearer token."""
    if can_view_inventory(user):
        return True
    token = settings.IAMPORTAL_METRICS_TOKEN
    if not token:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())
