"""The host's admin endpoints that tests use, and one of the sandbox's own.

`/admin/host/status`, `/admin/host/ping`, `/admin/functions` and `POST /admin/functions/<name>` answer
as the real host does, so scripts written against Core Tools work here. `/admin/sandbox/status` is
ours: a test that waits for the system to settle needs to know that every trigger queue is empty and
nothing is running, which the real host does not say.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from azure.core.exceptions import AzureError
from azure.functions.queue import QueueMessage as TriggerQueueMessage
from azure.functions.timer import TimerRequest

from sandbox.runner.faults import RunnerFaults
from sandbox.runner.functions import FunctionSpec, TriggerValue
from sandbox.runner.invocation import Invoker
from sandbox.runner.queues import QueueListener, message_count
from sandbox.runner.status import HostStatus, QueueStatus, SandboxStatus

HOST_VERSION = "4.x-sandbox"


class AdminEndpoints:
    """Reads the running host through what it is given; `state()` is the host's lifecycle state now."""

    def __init__(
        self,
        state: Callable[[], str],
        functions: list[FunctionSpec],
        listeners: list[QueueListener],
        invoker: Invoker,
        faults: RunnerFaults | None = None,
    ) -> None:
        self.faults = faults if faults is not None else RunnerFaults()
        self.state = state
        self.functions = functions
        self.listeners = listeners
        self.invoker = invoker

    def add_routes(self, application: web.Application) -> None:
        """Before the HTTP triggers' catch-all route, which would otherwise take these paths."""
        application.router.add_get("/admin/host/status", self.status)
        application.router.add_get("/admin/host/ping", self.ping)
        application.router.add_get("/admin/functions", self.list_functions)
        application.router.add_post("/admin/functions/{name}", self.invoke)
        application.router.add_get("/admin/sandbox/status", self.sandbox_status)
        application.router.add_get("/admin/sandbox/faults", self.get_faults)
        application.router.add_post("/admin/sandbox/faults", self.set_faults)
        application.router.add_delete("/admin/sandbox/faults", self.clear_faults)

    async def status(self, _request: web.Request) -> web.Response:
        """503 until the host runs, so that a health check waits for the start to finish."""
        state = self.state()
        body: HostStatus = {"id": "sandbox", "state": state, "version": HOST_VERSION, "processId": os.getpid()}
        return web.json_response(body, status=200 if state == "Running" else 503)

    async def ping(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.state() == "Running" else 503)

    async def list_functions(self, _request: web.Request) -> web.Response:
        return web.json_response([spec.describe() for spec in self.functions])

    async def invoke(self, request: web.Request) -> web.Response:
        """`POST /admin/functions/<name>` with `{"input": "..."}` runs a non-HTTP function now, as the host does."""
        spec = next((s for s in self.functions if s.name == request.match_info["name"]), None)
        if spec is None or spec.trigger_type == "httpTrigger":
            return web.json_response({"error": "no such non-HTTP function"}, status=404)
        try:
            document: Any = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return web.json_response({"error": 'body must be JSON: {"input": "..."}'}, status=400)
        text = str((document or {}).get("input") or "")
        trigger: TriggerValue
        if spec.trigger_type == "timerTrigger":
            trigger = TimerRequest(past_due=False)
        else:
            now = datetime.now(UTC)
            trigger = TriggerQueueMessage(  # type: ignore[no-untyped-call]  # azure.functions leaves __init__ untyped
                id=str(uuid.uuid4()), body=text.encode("utf-8"), dequeue_count=1, insertion_time=now, pop_receipt=""
            )
        self.invoker.invoke_in_background(
            spec, trigger, reason="This function was programmatically called via the host APIs."
        )
        return web.Response(status=202)

    async def sandbox_status(self, _request: web.Request) -> web.Response:
        """Per trigger queue: messages still there, in flight, settled; `idle` when all is quiet."""
        queues: dict[str, QueueStatus] = {}
        idle = True
        for listener in self.listeners:
            counters = listener.counters
            try:
                waiting = (await listener.client.get_queue_properties()).approximate_message_count or 0
                poison = await message_count(listener.poison)
            except AzureError:
                waiting, poison = -1, -1
            queues[listener.queue_name] = {
                "function": listener.spec.name,
                "approximate_message_count": waiting,
                "poison_message_count": poison,
                "in_flight": counters.in_flight,
                "succeeded": counters.succeeded,
                "failed": counters.failed,
                "poisoned": counters.poisoned,
            }
            idle = idle and waiting == 0 and counters.in_flight == 0
        body: SandboxStatus = {
            "state": self.state(),
            "idle": idle and self.invoker.running == 0 and not self.invoker.background,
            "queues": queues,
            "invocations": {name: c.as_json() for name, c in self.invoker.counters.items()},
            "busy_seconds": round(self.invoker.busy_seconds, 3),
        }
        return web.json_response(body)

    async def get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(self.faults.as_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        """`{"duplicate_next": N, "queue": name}`: the next N messages of that trigger queue arrive twice."""
        try:
            self.faults.update(await request.json() if request.can_read_body else {})
        except (ValueError, json.JSONDecodeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(self.faults.as_json())

    async def clear_faults(self, _request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response(self.faults.as_json())
