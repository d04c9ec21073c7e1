"""Typed errors of the Graph adapter, so a use case knows what to do next without reading HTTP codes.

`GraphUnavailable` (throttled, down, slow) is worth retrying later, with the server's `retry_after`
when Graph gave one; `GraphRejected` and its subclasses are not: the same request fails the same way.
`FullResyncNeeded` is its own case: the delta link is dead, and the caller must start a new round
without it (Graph's 410 Gone / `syncStateNotFound`).
"""

from __future__ import annotations

from crm_core.domain.errors import CursorExpired, ItemGone, ServiceRejected, ServiceUnavailable


class GraphUnavailable(ServiceUnavailable):
    """Graph throttled us (429), was unavailable (5xx), or did not answer in time."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None, code: str = ""
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.code = code
        self.throttled = status == 429


class GraphRejected(ServiceRejected):
    """Graph refused the request (4xx other than 429); sending it again cannot help."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class GraphNotFound(GraphRejected, ItemGone):
    """The item is gone (404): deleted or moved since the notification was sent."""


class GraphAccessDenied(GraphRejected):
    """401/403: the app's credentials or permissions are wrong; an administrator must act."""


class FullResyncNeeded(CursorExpired):
    """The delta link expired (410 Gone, `syncStateNotFound`): start again without a delta link."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
