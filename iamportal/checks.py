"""System checks: configuration that would be dangerous in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

DEVELOPMENT_KEY_PREFIX = "insecure-development-key"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "testserver"}


@register()
def development_defaults_check(**kwargs: Any) -> list[Error]:
    """DEBUG defaults to on so the demo needs no set-up; with it comes a public
    signing key. Serving any host but loopback that way would let anyone forge
    sessions and CLI tokens, so it refuses to start instead."""
    if not settings.DEBUG or not settings.SECRET_KEY.startswith(DEVELOPMENT_KEY_PREFIX):
        return []
    public = sorted(set(settings.ALLOWED_HOSTS) - LOOPBACK_HOSTS)
    if not public:
        return []
    return [
        Error(
            f"DEBUG is on with the development SECRET_KEY while ALLOWED_HOSTS serves "
            f"{', '.join(public)}.",
            hint="Set DEBUG=false and a SECRET_KEY of your own for any real deployment.",
            id="iamportal.E001",
        )
    ]


@register()
def site_url_check(**kwargs: Any) -> list[Warning]:
    """Emails link to requests with absolute addresses; without SITE_URL they are
    guessed from ALLOWED_HOSTS, which may not be the address people use."""
    if settings.DEBUG or settings.SITE_URL or not settings.IAMPORTAL_NOTIFICATIONS:
        return []
    return [
        Warning(
            "SITE_URL is not set: links in notification emails are guessed from ALLOWED_HOSTS.",
            hint="Set SITE_URL to the address people open iamportal at, e.g. "
            "https://iamportal.example.com.",
            id="iamportal.W001",
        )
    ]
