from typing import Any

from django.http import HttpRequest

from iamportal import permissions


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the navigation bar offers this user, decided by the permission module."""
    return {"nav_can_review": permissions.is_reviewer(request.user)}
