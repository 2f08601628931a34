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


def _slowest_aws_call() -> int:
    """About the longest one AWS call can take: every attempt connecting and
    waiting for its answer until the timeouts (backoff between retries aside)."""
    return settings.AWS_MAX_ATTEMPTS * (settings.AWS_CONNECT_TIMEOUT + settings.AWS_READ_TIMEOUT)


@register()
def sync_timing_check(**kwargs: Any) -> list[Error | Warning]:
    """The sync deadline, the task timeout and the lease only work together:
    django-q's timeout must leave the deadline room to fail the run with its
    own message, and the lease must outlast the longest gap between two
    renewals (a quarter of the lease plus one slow AWS call), or live syncs
    are taken over by other workers."""
    deadline = settings.IAMPORTAL_SYNC_DEADLINE_SECONDS
    timeout = int(settings.Q_CLUSTER["timeout"])
    lease = settings.IAMPORTAL_SYNC_LEASE_SECONDS
    slowest = _slowest_aws_call()
    found: list[Error | Warning] = []
    if timeout <= deadline:
        found.append(
            Error(
                f"Q_TIMEOUT ({timeout} s) is not longer than IAMPORTAL_SYNC_DEADLINE_SECONDS "
                f"({deadline} s): the task timeout would stop syncs before their deadline.",
                hint=f"Set Q_TIMEOUT to at least {deadline + slowest} s (the deadline plus one "
                "slow AWS call), or lower the deadline.",
                id="iamportal.E020",
            )
        )
    elif timeout < deadline + slowest:
        found.append(
            Warning(
                f"Q_TIMEOUT ({timeout} s) leaves less than one slow AWS call ({slowest} s: "
                "AWS_MAX_ATTEMPTS x (AWS_CONNECT_TIMEOUT + AWS_READ_TIMEOUT)) after the sync "
                f"deadline ({deadline} s).",
                hint=f"Set Q_TIMEOUT to at least {deadline + slowest} s.",
                id="iamportal.W020",
            )
        )
    if lease < lease / 4 + slowest:
        found.append(
            Warning(
                f"IAMPORTAL_SYNC_LEASE_SECONDS ({lease} s) is shorter than the longest gap "
                f"between two renewals of a sync's lease (a quarter of it plus one slow AWS "
                f"call of {slowest} s): other workers may take over syncs that are alive.",
                hint=f"Set IAMPORTAL_SYNC_LEASE_SECONDS to at least {slowest * 4 // 3 + 1} s, or "
                "lower AWS_MAX_ATTEMPTS or AWS_READ_TIMEOUT.",
                id="iamportal.W021",
            )
        )
    return found
