"""Bounded retries with exponential backoff and full jitter, honouring a server's `Retry-After`.

Every external call of the service (NET Genium, Microsoft Graph) must give up in a bounded time:
a queue-triggered function that waits forever holds its message, and one that hammers a throttled
service makes the throttling worse. So a retry is bounded twice, by the number of attempts and by
the total time spent, and a server's own `Retry-After` hint beats our guess. The waits use "full
jitter" (a uniform draw between 0 and the exponential cap) so that many workers that failed at the
same moment do not come back at the same moment.

Nothing here knows HTTP libraries: the caller says which exceptions may be retried and where a
`Retry-After` hint is found, so the Graph and NET Genium adapters can share it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try.

    `max_attempts` counts the first try; `max_total_seconds` bounds the time from the first try
    until the start of the last one (a wait that would cross it is not started: we give up at once
    and leave the retry to the caller, e.g. the queue host, with the server's hint).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_total_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_total_seconds < 0:
            raise ValueError("delays must not be negative")

    def backoff_cap(self, attempt: int) -> float:
        """The upper bound of the jittered wait after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt - 1, 0), 62)
        return min(self.max_delay, self.base_delay * math.pow(2, exponent))


def next_delay(
    policy: RetryPolicy,
    attempt: int,
    elapsed: float,
    retry_after: float | None,
    rng: Callable[[], float] = random.random,
) -> float | None:
    """The wait before the next attempt after failed attempt `attempt`, or None to give up.

    A server hint is obeyed as given (not shortened, or we would be throttled again); without one
    the wait is full jitter below the exponential cap.
    """
    if attempt >= policy.max_attempts:
        return None
    delay = retry_after if retry_after is not None else rng() * policy.backoff_cap(attempt)
    if elapsed + delay > policy.max_total_seconds:
        return None
    return delay


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    is_retryable: Callable[[BaseException], bool],
    retry_after_of: Callable[[BaseException], float | None] = lambda _exc: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    description: str = "call",
) -> T:
    """Run `call` until it succeeds, fails with a non-retryable error, or the policy gives up.

    When the policy gives up, the last error is raised unchanged, so the caller still sees whether
    a later retry (by the queue host) can help and the server's `Retry-After` hint.
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            hint = retry_after_of(exc)
            delay = next_delay(policy, attempt, clock() - started, hint, rng)
            if delay is None:
                logger.warning(
                    "giving up %s after %d attempts",
                    description,
                    attempt,
                    extra={"attempts": attempt, "error": type(exc).__name__},
                )
                raise
            logger.info(
                "retrying %s in %.3fs",
                description,
                delay,
                extra={"attempt": attempt, "delay": delay, "error": type(exc).__name__},
            )
            await sleep(delay)
