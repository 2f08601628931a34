"""Where a user lands after signing in: the page they asked for, else My roles,
except that a reviewer with requests waiting for them lands on the review queue."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import reverse

from iamportal.permissions import AnyUser
from requests_app.selectors import requests_awaiting_review


def landing_url(*, user: AnyUser, requested: str) -> str:
    """`requested` (an address already checked as safe), unless it is only the
    default landing page, which reviewers with work waiting skip for the queue."""
    home = resolve_url(settings.LOGIN_REDIRECT_URL)
    if requested and requested != home:
        return requested
    if requests_awaiting_review(user).exists():
        return reverse("request_queue")
    return home
