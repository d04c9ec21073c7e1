"""Running one function: its bindings in, its outputs out, counted and logged as the host logs it.

Every trigger goes through `Invoker.invoke`, so an HTTP call, a queue message, a timer and an admin
call all get the same binding rules: outputs are written only after the function returned, a sync
function runs on the worker's thread pool with the caller's context variables, and the host's
`functionTimeout` applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.runner.bindings import InvocationContext, Out, encode_queue_message
from sandbox.runner.functions import FunctionSpec, TriggerValue
from sandbox.runner.host_config import HostConfig
from sandbox.runner.queues import QueueClients
from sandbox.runner.status import InvocationStatus

log = logging.getLogger(__name__)


@dataclass
class InvocationCounters:
    """Per function, so a test can wait until nothing runs and tell how often a function failed."""

    running: int = 0
    succeeded: int = 0
    failed: int = 0

    def as_json(self) -> InvocationStatus:
        return {"running": self.running, "succeeded": self.succeeded, "failed": self.failed}


class Invoker:
    """Calls functions for every trigger; `wake(queue)` is told after an output binding wrote to `queue`."""

    def __init__(
        self,
        app_dir: Path,
        functions: list[FunctionSpec],
        config: HostConfig,
        clients: QueueClients,
        *,
        wake: Callable[[str], None],
        max_workers: int | None = None,
    ) -> None:
        self.app_dir = app_dir
        self.config = config
        self.clients = clients
        self.wake = wake
        self.counters = {spec.name: InvocationCounters() for spec in functions}
        self.background: set[asyncio.Task[None]] = set()
        # Seconds during which at least one invocation ran: what a consumption plan bills per instance.
        self._busy_total = 0.0
        self._busy_since: float | None = None
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="function")

    @property
    def running(self) -> int:
        return sum(c.running for c in self.counters.values())

    @property
    def busy_seconds(self) -> float:
        """Wall-clock seconds since start during which at least one invocation ran."""
        ongoing = time.monotonic() - self._busy_since if self._busy_since is not None else 0.0
        return self._busy_total + ongoing

    def _started(self) -> None:
        if self.running == 0:
            self._busy_since = time.monotonic()

    def _ended(self) -> None:
        if self.running == 0 and self._busy_since is not None:
            self._busy_total += time.monotonic() - self._busy_since
            self._busy_since = None

    async def invoke(self, spec: FunctionSpec, trigger_value: TriggerValue, *, reason: str) -> object:
        """Call the user function with its bindings, then write its outputs; raises what the function raised."""
        invocation_id = str(uuid.uuid4())
        counters = self.counters[spec.name]
        kwargs: dict[str, Any] = {spec.trigger_name: trigger_value}
        outs: dict[str, Out[Any]] = {b.name: Out() for b in spec.queue_outputs if b.name != "$return"}
        kwargs.update(outs)
        if spec.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, str(self.app_dir))
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        self._started()
        counters.running += 1
        try:
            if spec.is_async:
                call: Awaitable[object] = spec.user_function(**kwargs)
            else:
                context = contextvars.copy_context()
                call = asyncio.get_running_loop().run_in_executor(
                    self._executor, functools.partial(context.run, spec.user_function, **kwargs)
                )
            result = await asyncio.wait_for(call, timeout=self.config.function_timeout)
            await self._write_outputs(spec, outs, result)
        except BaseException as error:
            counters.failed += 1
            elapsed = (time.perf_counter() - started) * 1000
            if isinstance(error, TimeoutError):
                log.error(
                    "Timeout value of %s exceeded by function 'Functions.%s'", self.config.function_timeout, spec.name
                )
            log.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
                spec.name,
                invocation_id,
                elapsed,
                exc_info=not isinstance(error, asyncio.CancelledError),
            )
            raise
        finally:
            counters.running -= 1
            self._ended()
        counters.succeeded += 1
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            spec.name,
            invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        return result

    def invoke_in_background(self, spec: FunctionSpec, trigger_value: TriggerValue, *, reason: str) -> None:
        """For callers that answer before the function ends (admin calls); a failure is only logged, by `invoke`."""

        async def run() -> None:
            with contextlib.suppress(Exception):
                await self.invoke(spec, trigger_value, reason=reason)

        task = asyncio.ensure_future(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self, grace: float) -> None:
        """Background invocations get the same grace at stop as queue-triggered ones."""
        if self.background:
            await asyncio.wait(set(self.background), timeout=grace)

    def close(self) -> None:
        """Threads still running a sync function are not waited for: the process is about to end anyway."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _write_outputs(self, spec: FunctionSpec, outs: Mapping[str, Out[Any]], returned: object) -> None:
        for binding in spec.queue_outputs:
            if binding.name == "$return":
                value = returned
            else:
                out = outs[binding.name]
                if not out.is_set:
                    continue
                value = out.get()
            if value is None:
                continue
            client = self.clients.get(binding)
            for content in encode_queue_message(value, self.config.queues.message_encoding):
                await client.send_message(content)
            self.wake(binding.queue_name)
