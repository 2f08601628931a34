"""Access gates for identity objects."""

from __future__ import annotations

from django.http import Http404

from iamportal.models import ApiToken
from iamportal.permissions import AnyUser, is_signed_in


def api_token_for_user(*, user: AnyUser, pk: int) -> ApiToken:
    """One of the user's own tokens, or 404: nobody sees another user's tokens here."""
    if not is_signed_in(user):
        raise Http404("No such token.")
    token = ApiToken.objects.filter(pk=pk, user__pk=user.pk or 0).first()
    if token is None:
        raise Http404("No such token.")
    return token


def api_tokens_of(*, user: AnyUser) -> list[ApiToken]:
    return list(
        ApiToken.objects.filter(user__pk=user.pk or 0).order_by("revoked_at", "-created_at")
    )
