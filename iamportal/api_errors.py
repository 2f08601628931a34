"""The REST API's error answers, in one place: what the services refuse, mapped to
an HTTP status and a JSON body.

Every body has `detail`, a sentence for a person. Bad input to the requests API
also has `errors` (field -> messages) and names the first problem in `detail`;
a bad intent adds `field` and `index`; an approval of a stale revision adds the
current `revision`; an ambiguous role adds the `matches`. A rate limit sets
Retry-After.

The Weep-compatible endpoints answer in Weep's own shapes: their views handle
their failures themselves (`brokering/weep.py`), and this leaves whatever else
they raise to DRF's own handler, as it does anything it does not know.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from brokering import selectors as brokering_selectors
from brokering import services as brokering_services
from requests_app import services as request_services
from requests_app.policy.generate import IntentError


class InputInvalid(Exception):
    """Bad input to the requests API: `errors` maps a field to its messages."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(f"{len(errors)} fields are wrong")
        self.errors = errors


def _detail(message: str, code: int, **extra: Any) -> Response:
    return Response({"detail": message, **extra}, status=code)


def _invalid(errors: dict[str, Any]) -> Response:
    """A 400 naming the first problem in `detail` and all of them in `errors`."""
    field, messages = next(iter(errors.items()))
    first = messages
    while isinstance(first, list | dict) and first:
        first = first[0] if isinstance(first, list) else next(iter(first.values()))
    return _detail(f"{field}: {first}", status.HTTP_400_BAD_REQUEST, errors=errors)


def _retry_later(message: str, retry_after: int) -> Response:
    response = _detail(message, status.HTTP_429_TOO_MANY_REQUESTS)
    response["Retry-After"] = str(retry_after)
    return response


def _answer(exc: Exception) -> Response | None:
    # Subclasses before the classes they refine.
    if isinstance(exc, InputInvalid):
        return _invalid(exc.errors)
    if isinstance(exc, request_services.RequestInvalid):
        return _invalid({field: [message] for field, message in exc.errors.items()})
    if isinstance(exc, IntentError):
        return _detail(
            exc.message,
            status.HTTP_400_BAD_REQUEST,
            field=exc.field,
            index=exc.index,
            errors={exc.field: [exc.message]},
        )
    if isinstance(exc, request_services.FindingsNotAcknowledged):
        return _invalid({"findings_acknowledged": [exc.message]})
    if isinstance(exc, request_services.RequestRevisionStale):
        return _detail(exc.message, status.HTTP_409_CONFLICT, revision=exc.current)
    if isinstance(exc, request_services.RequestActionForbidden):
        # Who asks decides, whatever state the request is in.
        return _detail(exc.message, status.HTTP_403_FORBIDDEN)
    if isinstance(exc, request_services.RequestActionRefused):
        # Allowed to this caller, not in the request's current state.
        return _detail(exc.message, status.HTTP_409_CONFLICT)
    if isinstance(exc, request_services.PolicyToolsRateLimited):
        return _retry_later(exc.message, exc.retry_after)
    if isinstance(exc, brokering_services.RateLimited):
        return _retry_later(str(exc), exc.retry_after)
    if isinstance(exc, brokering_services.CredentialError):
        return _detail(str(exc), status.HTTP_502_BAD_GATEWAY)
    if isinstance(exc, brokering_services.BadDestination):
        return _detail(str(exc), status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, brokering_selectors.RoleAmbiguous):
        return _detail(
            exc.detail,
            status.HTTP_409_CONFLICT,
            matches=[role.arn for role in exc.matches],
        )
    if isinstance(exc, brokering_selectors.RoleNotFound):
        return _detail("None of the roles you may use matches.", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, Http404):
        # The access gates say what was not found ("No such request.").
        return _detail(str(exc) or "Not found.", status.HTTP_404_NOT_FOUND)
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK's EXCEPTION_HANDLER."""
    if getattr(context.get("view"), "error_style", None) is not None:
        # A Weep endpoint (it declares the error shape of its wire contract): it
        # answers its failures itself, and anything else stays DRF's.
        return drf_exception_handler(exc, context)
    response = _answer(exc)
    if response is not None:
        if isinstance(exc, brokering_selectors.RoleNotFound) and context.get("request"):
            # Every refusal of a role names the way forward.
            requested = str(exc.args[0]) if exc.args else ""
            path = brokering_selectors.access_request_path(requested)
            response.data["request_url"] = context["request"].build_absolute_uri(path)
        return response
    return drf_exception_handler(exc, context)
