from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from requests_app import apis

_request_list = apis.PolicyRequestListApi.as_view()
_request_create = apis.PolicyRequestCreateApi.as_view()


@csrf_exempt  # each API view enforces CSRF itself for session-authenticated calls
def _requests(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    """/api/v1/requests: listing and creating are two operations, one API view each."""
    view = _request_create if request.method == "POST" else _request_list
    return view(request, *args, **kwargs)


urlpatterns = [
    path("api/v1/policies/generate", apis.PolicyGenerateApi.as_view(), name="api_policy_generate"),
    path("api/v1/policies/lint", apis.PolicyLintApi.as_view(), name="api_policy_lint"),
    path("api/v1/requests", _requests, name="api_requests"),
    # Never reached (the route above answers first): they put both operations
    # of /api/v1/requests in the OpenAPI schema, which skips plain functions.
    path("api/v1/requests", _request_list, name="api_request_list"),
    path("api/v1/requests", _request_create, name="api_request_create"),
    path(
        "api/v1/requests/<int:pk>", apis.PolicyRequestDetailApi.as_view(), name="api_request_detail"
    ),
]
