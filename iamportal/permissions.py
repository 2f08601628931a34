"""Who may do what. Each decision is one function, so pages, APIs and the admin
ask the same question and get the same answer."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

AnyUser = AbstractBaseUser | AnonymousUser


def can_view_inventory(user: AnyUser) -> bool:
    """Accounts, roles, policies and resources are visible to every signed-in user."""
    if not user.is_authenticated:
        return False
    return bool(user.is_active)


def can_sync_accounts(user: AnyUser) -> bool:
    """Syncs cost AWS API quota in every region of an account, so only staff start them."""
    if not user.is_authenticated:
        return False
    if not user.is_active:
        return False
    return bool(getattr(user, "is_staff", False))


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
