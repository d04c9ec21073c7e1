"""Typed NET Genium errors, so a use case knows whether a retry can help without reading HTTP codes.

`NetGeniumUnavailable` (throttled, down, slow, or a server fault) may succeed later: a capture that
meets it is retried by the queue host. `NetGeniumRejected` and its subclasses will fail the same
way again (a wrong key, a missing table, a value the schema refuses): retrying only hides them.
"""

from __future__ import annotations

from crm_core.domain.errors import ServiceRejected, ServiceUnavailable


class NetGeniumUnavailable(ServiceUnavailable):
    """Throttled (429), unavailable (502/503/504, 5xx), unreachable or too slow.

    `ambiguous` is True when the request may have been carried out although no answer arrived
    (a read timeout, a dropped connection, a gateway error): repeating a non-idempotent write
    then risks doing it twice.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.code = code
        self.ambiguous = ambiguous
        self.throttled = status == 429


class NetGeniumRejected(ServiceRejected):
    """The API refused the request (4xx other than 429) or answered outside the contract."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NetGeniumAuthError(NetGeniumRejected):
    """401/403: the API key is missing, wrong, or sent in another header than the API expects."""


class NetGeniumNotFound(NetGeniumRejected):
    """404: the record (or, for the metadata endpoint, the table) does not exist."""


class NetGeniumConflict(NetGeniumRejected):
    """409: a unique column already holds the value, or a system record may not be deleted."""


class NetGeniumProtocolError(NetGeniumRejected):
    """A 2xx answer that is not what the contract promises (e.g. the base URL serves a web page)."""
