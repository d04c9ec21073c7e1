"""The emulator's HTTP server: the bridge's record API (bridge/app.py), injected faults, an admin API.

The record API is the bridge itself (one implementation of openapi.yaml), here over SQLite or a
test Firebird database, so the client is tested against the behaviour an installation shows. Faults (latency, 503s,
429 with Retry-After, outages, answers lost after the write was done) are what a real
installation does on a bad day; they apply only to requests that passed the API key check (one
without a valid key is a 401 and takes no fault meant for the others). The admin API under
/_admin/ sets them, seeds records with given ids, resets everything and reports how many requests
each operation served, so tests can assert how often the client really called.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from email.utils import formatdate

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.app import API, WRITE_OPERATIONS, BridgeState, Handler, error_response, json_body
from bridge.app import build_app as build_bridge_app
from bridge.errors import bad_request
from sandbox.netgenium import admin

_DATE_OFFSET = re.compile(r"-?[0-9]{1,9}")


class Faults(BaseModel):
    """The injected faults; every field is optional in a POST to /_admin/faults."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0, ge=0, le=60_000)
    error_rate: float = Field(default=0, ge=0, le=1, description="share of requests answered 503")
    throttle_rate: float = Field(default=0, ge=0, le=1, description="share answered 429")
    fail_next: int = Field(default=0, ge=0, description="the next N requests answer 503")
    throttle_next: int = Field(default=0, ge=0, description="the next N requests answer 429")
    retry_after: str | None = Field(
        default="1", description="Retry-After of injected 429/503: seconds, 'date:N' for an HTTP date"
    )
    outage_seconds: float = Field(default=0, ge=0, le=3600, description="answer 503 for N seconds")
    lose_next: int = Field(
        default=0, ge=0, description="carry out the next N writes, then drop the connection unanswered"
    )
    operations: list[str] | None = Field(default=None, description="limit faults to these operations")

    @field_validator("retry_after")
    @classmethod
    def _sendable(cls, value: str | None) -> str | None:
        """Any printable ASCII goes out as is (a malformed header is a fault too); date:N must be a date."""
        if value is None:
            return value
        if not all(" " <= ch <= "~" for ch in value):
            raise ValueError("retry_after must be printable ASCII: it is sent as a header")
        if value.startswith("date:") and not _DATE_OFFSET.fullmatch(value[5:]):
            raise ValueError("retry_after date:N needs N as whole seconds in ASCII digits (at most 9, may be negative)")
        return value


class Emulator:
    """State shared by the handlers: the store, the key, the faults and the counters."""

    def __init__(self, bridge: BridgeState) -> None:
        self.bridge = bridge
        self.store = bridge.store
        self.faults = Faults()
        self.outage_until = 0.0
        self.counts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.random = random.Random()

    def _retry_after_header(self, seconds: float | None = None) -> dict[str, str]:
        value = self.faults.retry_after
        if seconds is not None:
            return {"Retry-After": str(max(1, round(seconds)))}
        if not value:
            return {}
        if value.startswith("date:"):
            return {"Retry-After": formatdate(time.time() + float(value[5:]), usegmt=True)}
        return {"Retry-After": value}

    def injected_fault(self, operation: str) -> web.Response | None:
        """The fault answer for this request, if a fault applies."""
        if self.outage_until > time.monotonic():
            self.injected["outage"] += 1
            return error_response(
                503,
                "unavailable",
                "NET Genium is down (injected outage)",
                self._retry_after_header(self.outage_until - time.monotonic()),
            )
        faults = self.faults
        if faults.operations is not None and operation not in faults.operations:
            return None
        if faults.throttle_next > 0:
            faults.throttle_next -= 1
            return self._throttled()
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return self._unavailable()
        if faults.throttle_rate and self.random.random() < faults.throttle_rate:
            return self._throttled()
        if faults.error_rate and self.random.random() < faults.error_rate:
            return self._unavailable()
        return None

    def _throttled(self) -> web.Response:
        self.injected["429"] += 1
        return error_response(429, "throttled", "too many requests (injected)", self._retry_after_header())

    def _unavailable(self) -> web.Response:
        self.injected["503"] += 1
        return error_response(503, "unavailable", "service unavailable (injected)", self._retry_after_header())


def build_app(emulator: Emulator) -> web.Application:
    """The bridge's application with the emulator's middleware around it and its admin API."""
    store = emulator.store

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outside the key check: every API request is counted, with or without a key."""
        if request.path.startswith(API + "/"):
            emulator.counts[request.match_info.route.name or "unknown"] += 1
        return await handler(request)

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Inside the key check: faults are taken only by requests that passed it."""
        operation = request.match_info.route.name or "unknown"
        is_api = request.path.startswith(API + "/") and operation != "unknown"
        if is_api:
            if operation != "health" or emulator.outage_until > time.monotonic():
                fault = emulator.injected_fault(operation)
                if fault is not None:
                    return fault
            if emulator.faults.latency_ms and operation != "health":
                await asyncio.sleep(emulator.faults.latency_ms / 1000)
        response = await handler(request)
        if (
            is_api
            and operation in WRITE_OPERATIONS
            and emulator.faults.lose_next > 0
            and response.status < 300
            and (emulator.faults.operations is None or operation in emulator.faults.operations)
        ):
            emulator.faults.lose_next -= 1
            emulator.injected["lost"] += 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # the write is done; the answer never leaves
        return response

    limit = emulator.bridge.max_body_bytes

    async def admin_seed(request: web.Request) -> web.Response:
        body = await json_body(request, limit)
        if not isinstance(body, dict) or not isinstance(body.get("table"), str):
            raise bad_request("bad_request", 'expected {"table": ..., "records": [...]}')
        inserted = await emulator.bridge.run(admin.seed, store, body["table"], body.get("records"))
        return web.json_response({"inserted": inserted})

    async def admin_faults(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await json_body(request, limit)
            try:
                emulator.faults = Faults.model_validate(body)
            except ValidationError as exc:
                raise bad_request("bad_request", str(exc)) from None
            emulator.outage_until = time.monotonic() + emulator.faults.outage_seconds
        return web.json_response(emulator.faults.model_dump())

    async def admin_counts(_request: web.Request) -> web.Response:
        return web.json_response({"counts": dict(emulator.counts), "injected": dict(emulator.injected)})

    async def admin_reset(request: web.Request) -> web.Response:
        body = await json_body(request, limit) if (await request.read()).strip() else {}
        emulator.faults = Faults()
        emulator.outage_until = 0.0
        emulator.counts.clear()
        emulator.injected.clear()
        if not isinstance(body, dict) or body.get("data", True):
            await emulator.bridge.run(admin.reset, store)
        return web.json_response({"reset": True})

    app = build_bridge_app(emulator.bridge, outer=[count], inner=[faults])
    app.router.add_post("/_admin/seed", admin_seed, name="admin_seed")
    app.router.add_route("*", "/_admin/faults", admin_faults, name="admin_faults")
    app.router.add_get("/_admin/counts", admin_counts, name="admin_counts")
    app.router.add_post("/_admin/reset", admin_reset, name="admin_reset")
    return app
