"""Reads of permission requests, and the access gate every page and API uses."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from iamportal.permissions import AnyUser, is_reviewer, is_signed_in
from requests_app.models import PolicyRequest


def request_for_user(user: AnyUser, pk: int, *, for_review: bool = False) -> PolicyRequest:
    """The request, when `user` may see it (its requester, or a reviewer); with
    for_review, only when `user` may review it. Anything else is 404."""
    if not is_signed_in(user):
        raise Http404("No such request.")
    request = (
        PolicyRequest.objects.select_related("requester", "role", "account").filter(pk=pk).first()
    )
    if request is None:
        raise Http404("No such request.")
    reviewer = is_reviewer(user)
    if for_review and not reviewer:
        raise Http404("No such request.")
    if not reviewer and request.requester_id != user.pk:
        raise Http404("No such request.")
    return request


def requests_of(user: AnyUser) -> QuerySet[PolicyRequest]:
    """The requests `user` made, newest first."""
    if not is_signed_in(user):
        return PolicyRequest.objects.none()
    return PolicyRequest.objects.filter(requester_id=user.pk).select_related("account")
