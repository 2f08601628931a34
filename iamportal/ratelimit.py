"""Per-user rate limits kept in Django's cache.

A fixed window per minute: cheap (one cache add or increment per call) and
good enough to stop one user from keeping the web workers busy. The cache is
per process unless CACHES names a shared one (Redis, Memcached, the database),
so with several web processes the limit holds per process.
"""

from __future__ import annotations

import time

from django.core.cache import cache

WINDOW_SECONDS = 60


def rate_limit_hit(*, scope: str, key: str, limit: int) -> bool:
    """Count one more call of `scope` by `key` in this minute; True when it is
    beyond `limit` (the caller refuses it)."""
    window = int(time.time() // WINDOW_SECONDS)
    name = f"iamportal:rate:{scope}:{key}:{window}"
    # add() creates the counter only if it is missing, so two processes
    # starting a window at once do not reset each other's count.
    if cache.add(name, 1, timeout=WINDOW_SECONDS * 2):
        return limit < 1
    try:
        count = cache.incr(name)
    except ValueError:  # expired between add() and incr()
        cache.add(name, 1, timeout=WINDOW_SECONDS * 2)
        count = 1
    return count > limit


def retry_after_seconds() -> int:
    """Seconds until the current window ends."""
    return WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
