"""htmx requests: whether a page answers with its swappable region or whole.

Every page and its region share one template (the region is a named partial);
views pick the name with `template_for`."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware, from a signed-in user."""

    user: User
    htmx: HtmxDetails


def region_only(request: HtmxHttpRequest) -> bool:
    """Whether to answer with the region alone. A boosted link or form wants the
    whole page, and so does a "back" whose page htmx has not cached."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def template_for(request: HtmxHttpRequest, name: str, region: str) -> str:
    """`name`, or its partial `region` when only the region is wanted."""
    return f"{name}#{region}" if region_only(request) else name
