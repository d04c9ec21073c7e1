"""CPU-bound work (large mail bodies) in a worker process, so the event loop keeps answering.

The webhook and the capture worker share a process and its event loop: Graph counts a webhook
answer slower than 3 s as a failure, and the service's goal is a p99 under 50 ms. A thread does
not protect that: converting and sanitizing a 1 MB body is pure Python and native code holding
the GIL, and the loop waits for it in 5 ms slices. A separate process does, and it can be killed
when a body takes longer than its budget, which a thread cannot.

One worker process, started (spawned, not forked: the parent runs threads) on first use; a worker
killed for its budget is replaced on the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("crm_core.cpu")


def _yield_to_the_loop() -> None:
    """The worker runs at a lower priority: on a busy instance the event loop's process (webhook
    answers, queue work) gets the CPU first, and the conversion takes what is left."""
    with contextlib.suppress(OSError):
        os.nice(10)


class ProcessWork:
    """Runs picklable calls in a worker process, within a time budget."""

    def __init__(self, workers: int = 1) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=multiprocessing.get_context("spawn"), initializer=_yield_to_the_loop
            )
        return self._pool

    def _kill(self) -> None:
        """Stop a worker that overran its budget; the pool is rebuilt on the next call."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # Python 3.11 has no public way to stop a running worker (3.14 adds terminate_workers).
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, call: Callable[[], T], *, budget: float | None = None) -> T:
        """The result of `call()`, computed in the worker; TimeoutError (and the worker killed)
        past `budget` seconds. A call whose worker was killed for another call's budget runs again."""
        for attempt in (1, 2):
            pool = self._executor()
            future = asyncio.get_running_loop().run_in_executor(pool, call)
            try:
                return await asyncio.wait_for(future, budget)
            except TimeoutError:
                log.warning("cpu: a call overran its budget; its worker is stopped", extra={"budget_s": budget})
                self._kill()
                raise
            except BrokenProcessPool:
                if self._pool is pool:
                    self._pool = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
