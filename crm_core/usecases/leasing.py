"""Short leases kept alive while their holder works.

A lease says "this process is reading this mailbox (or syncing this calendar)". It is short so that
a process that dies mid-run (killed, scaled in, out of memory) blocks the next one for less than a
minute, not for a whole run budget; the holder renews it in the background for as long as it runs,
so a long run never loses it to a second reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Protocol

log = logging.getLogger("crm_core.leases")

# How long a lease lasts without renewal: the longest a dead holder keeps others waiting.
LEASE_SECONDS = 60.0
# Renewed this often (a third of its length, so two renewals may fail before it runs out).
RENEW_FRACTION = 1 / 3


class Lease(Protocol):
    async def acquire(self, mailbox: str, holder: str, seconds: float) -> bool: ...

    async def release(self, mailbox: str, holder: str) -> None: ...


async def _renew(leases: Lease, name: str, holder: str, seconds: float) -> None:
    """Extend the lease every third of its length until cancelled. Taking a lease one holds
    already extends it (`lease_is_free`). A renewal that fails is tried again at the next beat;
    one that finds another holder means the lease ran out (the process stalled for longer than
    the lease): the run goes on, and the warning says why two readers may have overlapped."""
    while True:
        await asyncio.sleep(seconds * RENEW_FRACTION)
        try:
            kept = await leases.acquire(name, holder, seconds)
        except Exception as exc:  # storage hiccup: the lease is still ours until it ends
            log.warning("lease: renewal failed, tried again", extra={"lease": name, "error": type(exc).__name__})
            continue
        if not kept:
            log.warning("lease: another process took the lease over", extra={"lease": name})
            return


@asynccontextmanager
async def held(
    leases: Lease,
    name: str,
    holder: str,
    busy: Callable[[], Exception],
    *,
    seconds: float = LEASE_SECONDS,
) -> AsyncIterator[None]:
    """Hold `name`'s lease for the block, renewed while it runs; raise `busy()` if another holds it."""
    if not await leases.acquire(name, holder, seconds):
        raise busy()
    heartbeat = asyncio.create_task(_renew(leases, name, holder, seconds))
    try:
        yield
    finally:
        heartbeat.cancel()
        with suppress(asyncio.CancelledError):
            await heartbeat
        try:
            await leases.release(name, holder)
        except Exception:  # it runs out by itself; the run's own outcome matters more
            log.exception("lease: could not release", extra={"lease": name})
