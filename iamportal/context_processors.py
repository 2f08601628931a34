from typing import Any

from django.http import HttpRequest

from iamportal import permissions


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the navigation bar offers this user, decided by the permission module,
    and the page it is on (none for an unknown address, which resolved to nothing)."""
    match = getattr(request, "resolver_match", None)
    return {
        "nav_can_review": permissions.is_reviewer(request.user),
        "nav_url_name": match.url_name if match is not None else "",
    }
