"""Fixtures for the Graph adapter and emulator tests: emulator processes, reset before each test.

`graph_server` runs the emulator's default, Graph's documented worst case (the `real` profile),
seeded from `CRM_TEST_SEED` (default 1) so that a failure can be repeated; `ideal_server` runs the
happy path (`--ideal`), for the tests that compare the two. Both run with Graph's limits but shorter
waits (validation 2 s instead of 10, delivery 1 s instead of 3, redelivery backoff from 0.2 s over a
2 s window instead of 4 hours) so that the tests about failures finish quickly; the behaviour is the
same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from crm_core.domain.notifications import NotificationBatch, ValidationRequest, parse_notifications
from crm_core.domain.settings import Settings
from crm_core.graph.client import GraphAdapter
from crm_core.graph.factory import create_graph_adapter
from crm_core.graph.options import GraphOptions
from sandbox.launch import ServerProcess, free_port

TOKEN = "graph-test-token"
FIXTURES = Path(__file__).parent / "fixtures"
MAILBOX = "crm@company.example"
SEED = int(os.environ.get("CRM_TEST_SEED", "1"))


def pytest_configure(config: pytest.Config) -> None:
    # msgraph-sdk's generated builders warn about their own deprecated classes when imported.
    config.addinivalue_line("filterwarnings", "ignore:This class is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:GetQueryParameters is deprecated:DeprecationWarning")


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def emulator(*extra: str) -> ServerProcess:
    return ServerProcess(
        "sandbox.graph",
        [
            "--token", TOKEN,
            "--seed", str(SEED),
            "--validation-timeout", "2",
            "--delivery-timeout", "1",
            "--retry-base", "0.2",
            "--retry-window", "2",
            *extra,
        ],
        health_path="/_admin/health",
    )


@pytest.fixture(scope="session")
def graph_server() -> Iterator[ServerProcess]:
    with emulator() as server:
        yield server


@pytest.fixture(scope="session")
def ideal_server() -> Iterator[ServerProcess]:
    with emulator("--ideal") as server:
        yield server


class Admin:
    """The emulator's `/_admin` API, spoken to asynchronously (subscribers run in the test's loop)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url + "/_admin", timeout=15)

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        answer = await self.http.request(method, path, json=body, **kwargs)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    async def user(self, upn: str, proxies: list[str] | None = None) -> dict[str, Any]:
        body = {"userPrincipalName": upn, "mail": upn, "proxyAddresses": proxies or [f"SMTP:{upn}"]}
        return await self.call("POST", "/users", body)  # type: ignore[no-any-return]

    async def deliver(self, mailbox: str, message: dict[str, Any], folder: str = "inbox") -> dict[str, Any]:
        return await self.call("POST", f"/users/{mailbox}/messages", message, params={"folder": folder})  # type: ignore[no-any-return]

    async def faults(self, **settings: Any) -> None:
        await self.call("POST", "/faults", settings)

    async def steady_tokens(self) -> None:
        """No sync state expires at random (the real profile's 2%): for a test about something else."""
        await self.faults(syncStateExpiryRate=0)

    async def stats(self) -> dict[str, Any]:
        return await self.call("GET", "/stats")  # type: ignore[no-any-return]

    async def wait_stats(self, predicate: Any, within: float = 10.0) -> dict[str, Any]:
        """Poll the counters until `predicate(stats)` holds (an upper bound, not a timing assertion)."""
        async with asyncio.timeout(within):
            while True:
                stats = await self.stats()
                if predicate(stats):
                    return stats
                await asyncio.sleep(0.05)


async def _admin(server: ServerProcess) -> AsyncIterator[Admin]:
    helper = Admin(server.base_url)
    await helper.call("POST", "/reset")
    await helper.user(MAILBOX)
    try:
        yield helper
    finally:
        await helper.http.aclose()


@pytest.fixture
async def admin(graph_server: ServerProcess) -> AsyncIterator[Admin]:
    async for helper in _admin(graph_server):
        yield helper


@pytest.fixture
async def ideal_admin(ideal_server: ServerProcess) -> AsyncIterator[Admin]:
    async for helper in _admin(ideal_server):
        yield helper


def graph_settings(base_url: str, token: str = TOKEN) -> Settings:
    return Settings(
        crm_mailbox=MAILBOX,
        crm_notification_url="http://127.0.0.1:9/api/notifications",
        crm_lifecycle_url="http://127.0.0.1:9/api/lifecycle",
        netgenium_base_url="http://127.0.0.1:9",
        netgenium_api_key="unused",
        AzureWebJobsStorage="UseDevelopmentStorage=true",
        graph_auth="static_token",
        graph_static_token=token,
        graph_base_url=base_url + "/v1.0",
    )


FAST = GraphOptions(max_retries=2, retry_base_delay=0.0, operation_timeout=30.0)


@pytest.fixture
async def graph(graph_server: ServerProcess, admin: Admin) -> AsyncIterator[GraphAdapter]:
    adapter = create_graph_adapter(graph_settings(graph_server.base_url), FAST)
    try:
        yield adapter
    finally:
        await adapter.aclose()


@dataclass
class Subscriber:
    """A webhook in the test: answers validation as told and records what Graph POSTs."""

    mode: str = "echo"
    fail_next: int = 0
    slow_next: int = 0
    always_fail: bool = False
    batches: asyncio.Queue[NotificationBatch] = field(default_factory=asyncio.Queue)
    validations: int = 0
    posts: int = 0
    raw: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw_query = request.raw_path.partition("?")[2]
        validation = ValidationRequest.from_query_string(raw_query)
        if validation is not None:
            self.validations += 1
            return await self._validate(validation, raw_query)
        self.posts += 1
        if self.always_fail or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            return web.Response(status=500)
        body = await request.read()
        if self.slow_next > 0:  # answers after the emulator's delivery timeout (1 s here)
            self.slow_next -= 1
            await asyncio.sleep(1.5)
            return web.Response(status=202)
        self.raw.append(json.loads(body))
        batch = parse_notifications(body)
        await self.batches.put(batch)
        return web.Response(status=202)

    async def _validate(self, validation: ValidationRequest, raw_query: str) -> web.StreamResponse:
        token = validation.response_body()
        if self.mode == "echo":
            return web.Response(text=token, content_type="text/plain")
        if self.mode == "html":
            return web.Response(text=f"<html><body>{token}</body></html>", content_type="text/html")
        if self.mode == "raw":  # echoes the token still URL-encoded
            return web.Response(text=raw_query.split("=", 1)[1], content_type="text/plain")
        if self.mode == "slow":  # later than the emulator's validation timeout (2 s here)
            await asyncio.sleep(2.5)
            return web.Response(text=token, content_type="text/plain")
        if self.mode == "empty":
            return web.Response(status=200, text="", content_type="text/plain")
        return web.Response(status=404)

    async def next_batch(self, within: float = 10.0) -> NotificationBatch:
        return await asyncio.wait_for(self.batches.get(), within)


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    hook = Subscriber()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    app.router.add_post("/lifecycle", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    hook.url = f"http://127.0.0.1:{port}"
    try:
        yield hook
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
