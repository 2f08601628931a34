"""Back-off for attempts anyone may make without signing in (passwords, CLI
sign-in challenges).

Limits are kept per client address and per (address, user name), never per
user name alone: a limit on the name would let anyone, from anywhere, stop
that person from signing in by failing on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Throttled:
    """An attempt refused for now: `retry_after` seconds, and why, for the person."""

    retry_after: int
    message: str


def seconds_until(moment: datetime, *, now: datetime) -> int:
    return max(0, math.ceil((moment - now).total_seconds()))


def backoff_wait(
    *, attempts: int, free: int, last_at: datetime | None, now: datetime, cap: timedelta
) -> int:
    """Seconds to wait after `attempts` recent attempts of which `free` need no wait:
    one second after the first one past them, then twice as long each time, up to `cap`."""
    if attempts < free or last_at is None:
        return 0
    delay = min(timedelta(seconds=2 ** min(attempts - free, 30)), cap)
    return seconds_until(last_at + delay, now=now)


def window_wait(*, recent: Sequence[datetime], limit: int, window: timedelta, now: datetime) -> int:
    """Seconds until fewer than `limit` of the `recent` attempts (newest first, all
    within `window`) are left in the window."""
    if len(recent) < limit:
        return 0
    return max(1, seconds_until(recent[limit - 1] + window, now=now))


def wait_phrase(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"
