"""Business actions on identity: personal API tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from iamportal.models import ApiToken

TOKEN_LIFETIMES_DAYS = (30, 90, 365)
MAX_ACTIVE_TOKENS = 20


class TokenLimitError(Exception):
    pass


def api_token_create(*, user: User, name: str, expires_in_days: int | None) -> tuple[ApiToken, str]:
    """A new token for `user`. Returns the row and the raw token, which is shown
    once and never stored."""
    active = ApiToken.objects.filter(user=user, revoked_at=None).exclude(
        expires_at__lte=timezone.now()
    )
    if active.count() >= MAX_ACTIVE_TOKENS:
        raise TokenLimitError(
            f"You already have {MAX_ACTIVE_TOKENS} active tokens; revoke one first."
        )
    raw = ApiToken.PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken.objects.create(
        user=user,
        name=name.strip(),
        hint=raw[: len(ApiToken.PREFIX) + 6],
        digest=ApiToken.hash(raw),
        expires_at=expires_at,
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())
