"""Django's PostgreSQL backend, with the connection health check run at most
once per DATABASE_HEALTH_CHECK_INTERVAL on each connection.

Django checks a persistent connection (`SELECT 1`) before the first query of
every request, so that one closed by the server while idle (a restart, a
failover, an idle timeout on the way) is replaced instead of failing the
request. That is a round trip on every request, a tenth of a credential
request's time. A connection opened or checked within the interval is trusted
without asking again, as connection pools commonly do; after that, the next
request checks it as before. A connection that fails anyway
is closed at the end of that request (Django's own handling of errors), so the
next request opens a new one."""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's wrapper; not in its type stubs.
    health_check_enabled: bool
    health_check_done: bool
    checked_at: float | None = None

    def connect(self) -> None:
        super().connect()
        self.checked_at = time.monotonic()

    def close_if_health_check_failed(self) -> None:
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        now = time.monotonic()
        if (
            self.checked_at is not None
            and now - self.checked_at < settings.DATABASE_HEALTH_CHECK_INTERVAL
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
        if self.connection is not None:
            self.checked_at = now
