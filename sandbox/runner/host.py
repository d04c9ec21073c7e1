"""`FunctionsHost`: one Functions app run in this process, started and stopped in the host's order.

Start: read host.json, index the app, open the queues, listen for HTTP, start the queue listeners,
then the timers (with `run_on_startup` ones firing at once). Stop is the reverse, with a grace for
running invocations, because the platform sends SIGTERM on scale-in and expects in-flight work to
finish or to be left for its queue lease to expire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from aiohttp import web

from sandbox.launch import REPO_ROOT
from sandbox.runner.admin import AdminEndpoints
from sandbox.runner.faults import RunnerFaults
from sandbox.runner.functions import FunctionLoadError, FunctionSpec
from sandbox.runner.host_config import HostConfig, load_host_config
from sandbox.runner.http_triggers import HttpTriggers
from sandbox.runner.indexing import describe_functions, load_function_app
from sandbox.runner.invocation import Invoker
from sandbox.runner.queues import QueueClients, QueueListener, ensure_queue
from sandbox.runner.server import start_web
from sandbox.runner.timers import start_timers

log = logging.getLogger(__name__)


class FunctionsHost:
    """Runs a Functions app in this process: `async with FunctionsHost(app_dir) as host: host.base_url`."""

    def __init__(
        self,
        app_dir: Path = REPO_ROOT,
        *,
        port: int = 0,
        bind: str = "127.0.0.1",
        message_lease: float = 600.0,
        shutdown_grace: float = 10.0,
        disabled: Iterable[str] = (),
        only: Iterable[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.app_dir = app_dir.resolve()
        self.port = port
        self.bind = bind
        self.message_lease = message_lease
        self.shutdown_grace = shutdown_grace
        self.disabled = tuple(disabled)
        self.only = None if only is None else frozenset(only)
        self.environ = environ if environ is not None else os.environ
        self.state = "Default"
        self.config: HostConfig = HostConfig()
        self.functions: list[FunctionSpec] = []
        self.listeners: list[QueueListener] = []
        self.invoker: Invoker | None = None
        self._clients = QueueClients(self.environ)
        self._web: web.AppRunner | None = None
        self._timers: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self.faults = RunnerFaults()

    @property
    def base_url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    async def start(self) -> None:
        """Index the app, open the queues, listen, then fire startup timers: the host's start order."""
        try:
            await self._start()
        except BaseException:
            await self.stop()  # close what was opened before the failure
            raise

    async def _start(self) -> None:
        self.state = "Initialized"
        self.config = load_host_config(self.app_dir, self.environ)
        app = load_function_app(self.app_dir)
        self.functions = describe_functions(app, self.environ, self.disabled)
        if self.only is not None:
            unknown = self.only - {spec.name for spec in self.functions}
            if unknown:
                raise FunctionLoadError(f"--functions names functions the app does not have: {sorted(unknown)}")
            for spec in self.functions:
                spec.disabled = spec.disabled or spec.name not in self.only
        workers = self.environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
        invoker = self.invoker = Invoker(
            self.app_dir,
            self.functions,
            self.config,
            self._clients,
            wake=self._wake,
            max_workers=int(workers) if workers else None,
        )
        await self._open_queues(invoker)
        self._web, self.port = await start_web(
            AdminEndpoints(self._state, self.functions, self.listeners, invoker, self.faults),
            HttpTriggers(self._state, self.functions, self.config.route_prefix, invoker.invoke),
            self.bind,
            self.port,
        )
        for listener in self.listeners:
            listener.start()
        self._timers = start_timers(invoker.invoke, self.functions)
        self.state = "Running"
        log.info(
            "Host started: %d functions, listening on %s; %s",
            len(self.functions),
            self.base_url,
            ", ".join(f"{s.name} ({s.trigger_type}{', disabled' if s.disabled else ''})" for s in self.functions),
        )

    async def stop(self) -> None:
        """Stop taking work, let running invocations finish (up to shutdown_grace), then close."""
        if self.state in ("Stopped", "Default"):
            self.state = "Stopped"
            return
        self.state = "Stopping"
        for listener in self.listeners:
            await listener.stop_polling()
        for task in self._timers:
            task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        self._timers.clear()
        for listener in self.listeners:
            await listener.drain(self.shutdown_grace)
        if self.invoker is not None:
            await self.invoker.drain(self.shutdown_grace)
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        await self._clients.close()
        if self.invoker is not None:
            self.invoker.close()
        self.state = "Stopped"
        self._stopped.set()
        log.info("Host stopped")

    async def __aenter__(self) -> FunctionsHost:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def serve_until_signalled(self) -> None:
        """Run until SIGTERM or SIGINT, then stop cleanly (the platform sends SIGTERM on scale-in)."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested.set)
        await self.start()
        try:
            await stop_requested.wait()
        finally:
            log.info("Stop requested")
            await self.stop()

    def _state(self) -> str:
        return self.state

    def _wake(self, queue_name: str) -> None:
        """An output binding wrote to `queue_name`: its listener polls now instead of after its back-off."""
        for listener in self.listeners:
            if listener.queue_name == queue_name and listener.spec.queue_trigger is not None:
                listener.wake.set()

    async def _open_queues(self, invoker: Invoker) -> None:
        for spec in self.functions:
            if spec.disabled:
                continue
            for output in spec.queue_outputs:
                await ensure_queue(self._clients.get(output))
            binding = spec.queue_trigger
            if binding is None:
                continue
            client = self._clients.get(binding)
            await ensure_queue(client)
            poison = self._clients.get(binding, f"{binding.queue_name}-poison")
            self.listeners.append(
                QueueListener(invoker.invoke, spec, client, poison, self.config.queues, self.message_lease, self.faults)
            )
