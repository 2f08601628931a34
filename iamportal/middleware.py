"""Request hygiene that every view relies on."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

_TEXT_BODIES = ("application/json", "application/x-www-form-urlencoded", "text/")


class RejectNulCharactersMiddleware:
    """NUL characters are never meaningful in iamportal's input, and PostgreSQL
    refuses them in text and JSON: answer 400 up front instead of failing deep
    inside a view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._has_nul(request):
            from brokering.weep import weep_malformed

            message = "NUL characters are not allowed in requests."
            weep = weep_malformed(request.path, message)
            if weep is not None:
                return weep
            if request.path.startswith(("/api/", "/noauth/")):
                return JsonResponse({"detail": message}, status=400)
            return HttpResponse(message, status=400, content_type="text/plain")
        return self.get_response(request)

    @staticmethod
    def _has_nul(request: HttpRequest) -> bool:
        if "\x00" in request.path:
            return True
        if any("\x00" in key or "\x00" in value for key, value in request.GET.items()):
            return True
        if not (request.content_type or "").startswith(_TEXT_BODIES):
            return False
        try:
            body = request.body
        except RequestDataTooBig:
            return False  # the view answers 413 for that
        return b"\x00" in body or b"\\u0000" in body
