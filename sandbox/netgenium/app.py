"""The emulator's HTTP server: the record API of openapi.yaml, injected faults, and an admin API.

The record API answers exactly as the contract says, errors included, so the client is tested
against the same behaviour an administrator's implementation must show. Faults (latency, 503s,
429 with Retry-After, outages, answers lost after the write was done) are what a real
installation does on a bad day; they apply only to requests that passed the API key check (one
without a valid key is a 401 and takes no fault meant for the others). The admin API under
/_admin/ sets them, seeds records with given ids, resets everything and reports how many requests
each operation served, so tests can assert how often the client really called.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sandbox.netgenium.errors import ApiError, bad_request
from sandbox.netgenium.integers import INT64_MAX, parse_int
from sandbox.netgenium.store import Store

logger = logging.getLogger("sandbox.netgenium")

API = "/api/v1"
WRITE_OPERATIONS = frozenset({"insert", "update", "delete", "attach_file"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
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


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The contract's error body."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


class Emulator:
    """State shared by the handlers: the store, the key, the faults and the counters."""

    def __init__(self, store: Store, *, api_key: str, api_key_header: str, max_file_bytes: int) -> None:
        self.store = store
        self.api_key = api_key
        self.api_key_header = api_key_header
        self.max_file_bytes = max_file_bytes
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


def _record_id(request: web.Request, key: str = "id") -> int:
    """A record or file id of the path: ASCII digits, 1..2**63-1, or 400 naming the part."""
    return parse_int(request.match_info[key], key, minimum=1, maximum=INT64_MAX)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("bad_request", "the body is not JSON") from None


def build_app(emulator: Emulator) -> web.Application:
    """The aiohttp application (routes, middleware) around one emulator state."""
    store = emulator.store

    @web.middleware
    async def contract(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        operation = route.name or "unknown"
        is_api = request.path.startswith(API + "/")
        if is_api:
            emulator.counts[operation] += 1
        try:
            if is_api and operation != "unknown":
                # The key first: a request without it is a 401 whatever the faults, and takes
                # none of them (a count, a lost answer) from the authorized requests they are for.
                if operation != "health":
                    sent = request.headers.get(emulator.api_key_header, "")
                    if not hmac.compare_digest(sent.encode(), emulator.api_key.encode()):
                        return error_response(
                            401,
                            "unauthorized",
                            f"a valid API key is required in the {emulator.api_key_header} header",
                        )
                if operation != "health" or emulator.outage_until > time.monotonic():
                    fault = emulator.injected_fault(operation)
                    if fault is not None:
                        return fault
                if emulator.faults.latency_ms and operation != "health":
                    await asyncio.sleep(emulator.faults.latency_ms / 1000)
            response = await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "too_large", f"the body exceeds {emulator.max_file_bytes} bytes")
        except web.HTTPException as exc:
            if exc.status == 404:
                return error_response(404, "not_found", f"no resource at {request.path[:100]}")
            if exc.status == 405:
                return error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
            return error_response(exc.status, "bad_request", exc.reason)
        except Exception:
            logger.exception("unexpected error in %s", operation)
            return error_response(500, "internal", "unexpected error in the emulator")
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

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": "1"})

    async def table(request: web.Request) -> web.Response:
        return web.json_response(store.describe(request.match_info["table"]))

    async def query(request: web.Request) -> web.Response:
        q = request.query
        page = store.query(
            request.match_info["table"],
            filter_text=q.get("filter"),
            columns=q.get("columns"),
            orderby=q.get("orderby"),
            top=q.get("top"),
            continuation=q.get("continuation"),
        )
        return web.json_response(page)

    async def get(request: web.Request) -> web.Response:
        record = store.get(request.match_info["table"], _record_id(request), request.query.get("columns"))
        return web.json_response(record)

    async def insert(request: web.Request) -> web.Response:
        table = request.match_info["table"]
        store.table(table)
        new_id = store.insert(table, await _json_body(request))
        return web.json_response({"id": new_id}, status=201)

    async def update(request: web.Request) -> web.Response:
        table = request.match_info["table"]
        record_id = _record_id(request)
        store.table(table)
        store.update(table, record_id, await _json_body(request))
        return web.json_response({"id": record_id})

    async def delete(request: web.Request) -> web.Response:
        store.delete(request.match_info["table"], _record_id(request))
        return web.Response(status=204)

    async def attach_file(request: web.Request) -> web.Response:
        table = request.match_info["table"]
        record_id = _record_id(request)
        store.table(table)
        content = await request.read()
        if len(content) > emulator.max_file_bytes:
            raise ApiError(413, "too_large", f"a file may hold at most {emulator.max_file_bytes} bytes")
        stored = store.attach(table, record_id, request.query.get("column"), request.query.get("filename"), content)
        return web.json_response(stored, status=201)

    async def get_file(request: web.Request) -> web.Response:
        content = store.file_content(request.match_info["table"], _record_id(request), _record_id(request, "file_id"))
        return web.Response(body=content, content_type="application/octet-stream")

    # --- admin ----------------------------------------------------------------------------------

    async def admin_seed(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("table"), str):
            raise bad_request("bad_request", 'expected {"table": ..., "records": [...]}')
        count = store.seed(body["table"], body.get("records"))
        return web.json_response({"inserted": count})

    async def admin_faults(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await _json_body(request)
            try:
                emulator.faults = Faults.model_validate(body)
            except ValidationError as exc:
                raise bad_request("bad_request", str(exc)) from None
            emulator.outage_until = time.monotonic() + emulator.faults.outage_seconds
        return web.json_response(emulator.faults.model_dump())

    async def admin_counts(_request: web.Request) -> web.Response:
        return web.json_response({"counts": dict(emulator.counts), "injected": dict(emulator.injected)})

    async def admin_reset(request: web.Request) -> web.Response:
        body = await _json_body(request) if (await request.read()).strip() else {}
        emulator.faults = Faults()
        emulator.outage_until = 0.0
        emulator.counts.clear()
        emulator.injected.clear()
        if not isinstance(body, dict) or body.get("data", True):
            store.reset()
        return web.json_response({"reset": True})

    app = web.Application(middlewares=[contract], client_max_size=emulator.max_file_bytes + 1024 * 1024)
    records = API + "/tables/{table}/records"
    app.router.add_get(API + "/health", health, name="health")
    app.router.add_get(API + "/tables/{table}", table, name="table_metadata")
    app.router.add_get(records, query, name="query")
    app.router.add_post(records, insert, name="insert")
    app.router.add_get(records + "/{id}", get, name="get")
    app.router.add_patch(records + "/{id}", update, name="update")
    app.router.add_delete(records + "/{id}", delete, name="delete")
    app.router.add_post(records + "/{id}/files", attach_file, name="attach_file")
    app.router.add_get(records + "/{id}/files/{file_id}", get_file, name="get_file")
    app.router.add_post("/_admin/seed", admin_seed, name="admin_seed")
    app.router.add_route("*", "/_admin/faults", admin_faults, name="admin_faults")
    app.router.add_get("/_admin/counts", admin_counts, name="admin_counts")
    app.router.add_post("/_admin/reset", admin_reset, name="admin_reset")
    return app
