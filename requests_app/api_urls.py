from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from requests_app import apis

_request_list = apis.PolicyRequestListApi.as_view()
_request_create = apis.PolicyRequestCreateApi.as_view()


@csrf_exempt  # each API view enforces CSRF itself for session-authenticated calls
def _requests(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    """/api/v1/requests: listing and creating are two operations, one API view each."""
    view = _request_create if request.method == "POST" else _request_list
    response = view(request, *args, **kwargs)
    if response.has_header("Allow"):
        response["Allow"] = "GET, POST, HEAD, OPTIONS"
    return response


@csrf_exempt  # it changes nothing, and a POST gets the same JSON 404
def _no_such_request(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    """Anything else under /api/v1/requests/ (an id that is not a number, an
    unknown action): the API's JSON 404, not the HTML page."""
    return JsonResponse({"detail": "No such request."}, status=404)


urlpatterns = [
    path("api/v1/policies/generate", apis.PolicyGenerateApi.as_view(), name="api_policy_generate"),
    path("api/v1/policies/lint", apis.PolicyLintApi.as_view(), name="api_policy_lint"),
    path("api/v1/requests", _requests, name="api_requests"),
    # Never reached (the route above answers first): they put both operations
    # of /api/v1/requests in the OpenAPI schema, which skips plain functions.
    path("api/v1/requests", _request_list, name="api_request_list"),
    path("api/v1/requests", _request_create, name="api_request_create"),
    path(
        "api/v1/requests/access",
        apis.AccessRequestCreateApi.as_view(),
        name="api_request_access_create",
    ),
    path(
        "api/v1/requests/changes",
        apis.PolicyRequestChangesCreateApi.as_view(),
        name="api_request_changes_create",
    ),
    path(
        "api/v1/requests/<int:pk>", apis.PolicyRequestDetailApi.as_view(), name="api_request_detail"
    ),
    path(
        "api/v1/requests/<int:pk>/comment",
        apis.PolicyRequestCommentApi.as_view(),
        name="api_request_comment",
    ),
    path(
        "api/v1/requests/<int:pk>/cancel",
        apis.PolicyRequestCancelApi.as_view(),
        name="api_request_cancel",
    ),
    path(
        "api/v1/requests/<int:pk>/approve",
        apis.PolicyRequestApproveApi.as_view(),
        name="api_request_approve",
    ),
    path(
        "api/v1/requests/<int:pk>/reject",
        apis.PolicyRequestRejectApi.as_view(),
        name="api_request_reject",
    ),
    path(
        "api/v1/requests/<int:pk>/retry",
        apis.PolicyRequestRetryApi.as_view(),
        name="api_request_retry",
    ),
    re_path(r"^api/v1/requests/", _no_such_request),
]
