"""Request hygiene that every view relies on."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from brokering.weep import weep_malformed
from iamportal.net import peer_is_trusted_proxy

_TEXT_BODIES = ("application/json", "application/x-www-form-urlencoded", "text/")


class RejectNulCharactersMiddleware:
    """NUL characters are never meaningful in iamportal's input, and PostgreSQL
    refuses them in text and JSON: answer 400 up front instead of failing deep
    inside a view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._has_nul(request):
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


class ForwardedProtoFromTrustedProxiesMiddleware:
    """Django takes SECURE_PROXY_SSL_HEADER from any client. A client that reaches
    iamportal past the proxy could then claim HTTPS over plain HTTP: no redirect to
    HTTPS, and secure cookies sent in the clear. The header is dropped here unless the
    TCP peer is one of IAMPORTAL_TRUSTED_PROXIES, before anything reads is_secure()."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        if header and header[0] in request.META and not peer_is_trusted_proxy(request):
            del request.META[header[0]]
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """The CONTENT_SECURITY_POLICY setting on every response. A static policy
    needs no nonces, so a few lines do what a dependency would."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Django's own debug pages (DEBUG on, 404 and 500) are made of inline
        # script and style; production never shows them.
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        policy = "; ".join(
            f"{directive} {' '.join(sources)}"
            for directive, sources in settings.CONTENT_SECURITY_POLICY.items()
        )
        response.headers.setdefault("Content-Security-Policy", policy)
        return response
