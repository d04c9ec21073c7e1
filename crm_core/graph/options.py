"""The adapter's limits, in a module of their own because three layers read them.

The SDK transport reads the retries and the request timeout (`factory`), every call reads the
deadline and the per-mailbox limit (`translate`), and the calls read the page size and the
attachment limit (`client`, `calendar`); each imports this without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphOptions:
    """Limits of the adapter; the defaults suit a Functions host, tests shrink the delays."""

    max_retries: int = 3
    """Retries the SDK makes on 429/503/504 after the first attempt (kiota allows 0..10)."""
    retry_base_delay: float = 1.0
    """Seconds added to the SDK's exponential backoff when Graph sent no Retry-After."""
    request_timeout: float = 30.0
    """Seconds one HTTP request may take."""
    operation_timeout: float = 120.0
    """Seconds one operation may take in all, retries and Retry-After waits included."""
    mailbox_concurrency: int = 4
    """Requests in flight per mailbox (Graph's own limit is 4)."""
    delta_page_size: int = 200
    """`Prefer: odata.maxpagesize` for delta rounds."""
    attachment_max_bytes: int = 25 * 1024 * 1024
    """File attachments larger than this are listed without their bytes."""


__all__ = ["GraphOptions"]
