"""The errors every adapter raises, so that a use case knows whether a retry can help.

A queue-triggered capture that raises a retryable error is retried by the host (and ends in the
poison queue after `maxDequeueCount`); a non-retryable one is recorded with its reason at once.
"""

from __future__ import annotations


class ExternalServiceError(Exception):
    """A call to an outside system failed.

    `retryable` says whether the same call may succeed later (throttling, outage, timeout);
    `retry_after` is the server's own hint in seconds, when it gave one.
    """

    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(ExternalServiceError):
    """Throttled, down, or too slow: retry later."""

    retryable = True


class ServiceRejected(ExternalServiceError):
    """The request itself is wrong (4xx other than 429): retrying the same request cannot help."""

    retryable = False
