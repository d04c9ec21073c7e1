"""The errors every adapter raises, so that a use case knows whether a retry can help.

A queue-triggered capture that raises a retryable error is retried by the host (and ends in the
poison queue after `maxDequeueCount`); a non-retryable one is recorded with its reason at once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


class ExternalServiceError(Exception):
    """A call to an outside system failed.

    `retryable` says whether the same call may succeed later (throttling, outage, timeout);
    `retry_after` is the server's own hint in seconds, when it gave one.
    """

    retryable: bool = False
    # The service said "too many requests" (429), not "down": waiting is all that helps.
    throttled: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(ExternalServiceError):
    """Throttled, down, or too slow: retry later."""

    retryable = True


class Throttled(ServiceUnavailable):
    """Too many requests: the call is fine and will succeed after the wait the server asked for."""

    throttled = True


class CursorExpired(ExternalServiceError):
    """A stored sync cursor (a delta link) is no longer valid: start a new round without it.

    Not retryable as it stands (the same link fails the same way), but nothing is wrong with the
    request as such: the caller starts over from a fresh round.
    """

    retryable = False


class ServiceRejected(ExternalServiceError):
    """The request itself is wrong (4xx other than 429): retrying the same request cannot help."""

    retryable = False


class ItemGone(ServiceRejected):
    """The item a notification named no longer exists (deleted since): there is nothing to capture."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None.

    A header we cannot read is treated as absent rather than as an error, because the hint is
    only advice; a date in the past means "now" (0 seconds).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or math.isinf(seconds):
            return None
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max((when - current).total_seconds(), 0.0)
