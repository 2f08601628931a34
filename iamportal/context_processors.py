from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from iamportal import permissions
from requests_app.models import PolicyRequest
from requests_app.selectors import requests_awaiting_review

# The navigation's sections and the pages (URL names) in each. Any other page of
# a request ("request_...") is in Requests; pages not listed mark no section.
_SECTIONS = {
    "my_roles": "my_roles",
    "my_role_cli": "my_roles",
    "my_role_credentials": "my_roles",
    "my_activity": "my_roles",
    "weep_setup": "my_roles",
    "dashboard": "dashboard",
    "account_list": "accounts",
    "account_detail": "accounts",
    "role_list": "roles",
    "role_detail": "roles",
    "resource_list": "resources",
    "resource_detail": "resources",
    "policy_list": "policies",
    "request_queue": "review",
    "database_list": "databases",
    "database_password": "databases",
    "status": "status",
}
# Pages about one request (its `pk`): someone else's request is reviewers' work.
_REQUEST_PAGES = {
    "request_detail",
    "request_approve",
    "request_reject",
    "request_retry",
    "request_cancel",
    "request_comment",
    "request_extend",
    "change_edit",
}


def _section(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:  # an unknown address, which resolved to nothing
        return ""
    name = match.url_name or ""
    if name in _REQUEST_PAGES and permissions.is_reviewer(request.user):
        others = PolicyRequest.objects.filter(pk=match.kwargs.get("pk")).exclude(
            requester_id=request.user.pk
        )
        if others.exists():
            return "review"
    if name in _SECTIONS:
        return _SECTIONS[name]
    return "requests" if name.startswith("request_") else ""


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the navigation bar offers this user, decided by the permission module,
    and the section of the page it is on."""
    can_review = permissions.is_reviewer(request.user)
    return {
        "nav_can_review": can_review,
        # Counted only when a page shows the navigation (not for htmx regions),
        # and only for reviewers: one COUNT.
        "nav_review_waiting": (
            SimpleLazyObject(lambda: requests_awaiting_review(request.user).count())
            if can_review
            else 0
        ),
        "nav_section": _section(request),
    }
