"""The record API of openapi.yaml over HTTP (aiohttp): routes, the key check, errors, body limits.

One middleware makes every answer the contract's: the key first (constant-time, before anything
else runs), then the handler, whose `ApiError`s and aiohttp's own 404/405/413 become the
contract's error body; anything unexpected is a 500 `internal` that shows no detail. Database
work runs in worker threads (the store is synchronous SQLAlchemy), so a slow query holds no other
request. Each write is logged as one JSON line (logger `bridge.writes`) naming the operation,
table, record id, status and the Message-ID or event id it carried, never a body.

The sandbox's emulator builds the same app and adds its middleware around and inside the key
check (`outer`, `inner`) and its admin routes: there is one implementation of the contract.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from bridge.errors import ApiError, bad_request
from bridge.integers import INT64_MAX, parse_int
from bridge.keys import KeyVerifier
from bridge.store import Store

logger = logging.getLogger("bridge")
write_log = logging.getLogger("bridge.writes")

API = "/api/v1"
WRITE_OPERATIONS = frozenset({"insert", "update", "delete", "attach_file"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


@dataclass
class BridgeState:
    """What the handlers share: the store, the key check and the limits."""

    store: Store
    keys: KeyVerifier
    api_key_header: str
    max_body_bytes: int
    max_file_bytes: int
    workers: int = 1

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="bridge-db")
        schema_map = self.store.schema_map
        self.logged_columns = {
            schema_map.email_activities.column("message_id").name,
            schema_map.calendar_activities.column("event_id").name,
        }

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a store operation in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(function, *args))


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The contract's error body."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def record_id(request: web.Request, key: str = "id") -> int:
    """A record or file id of the path: ASCII digits, 1..2**63-1, or 400 naming the part."""
    return parse_int(request.match_info[key], key, minimum=1, maximum=INT64_MAX)


async def json_body(request: web.Request, limit: int) -> Any:
    """The JSON body, or 413 beyond `limit` bytes, or 400."""
    raw = await request.read()
    if len(raw) > limit:
        raise ApiError(413, "too_large", f"the body exceeds {limit} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("bad_request", "the body is not JSON") from None


def _log_write(state: BridgeState, request: web.Request, operation: str, status: int, record: int | None) -> None:
    entry: dict[str, Any] = {"op": operation, "table": request.match_info.get("table", "")[:80], "status": status}
    if record is not None:
        entry["id"] = record
    carried = request.get("bridge.logged_values") or {}
    entry.update({k: str(v)[:300] for k, v in carried.items()})
    write_log.info(json.dumps(entry, ensure_ascii=False))


def contract_middleware(state: BridgeState) -> Middleware:
    """The key check and the contract's error answers."""

    @web.middleware
    async def contract(request: web.Request, handler: Handler) -> web.StreamResponse:
        operation = request.match_info.route.name or "unknown"
        status = 500
        try:
            if request.path.startswith(API + "/") and operation not in ("unknown", "health"):
                sent = request.headers.get(state.api_key_header, "")
                if not state.keys.verify(sent):
                    status = 401
                    return error_response(
                        401, "unauthorized", f"a valid API key is required in the {state.api_key_header} header"
                    )
            response = await handler(request)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.status
            return error_response(exc.status, exc.code, exc.message)
        except web.HTTPRequestEntityTooLarge:
            status = 413
            return error_response(413, "too_large", f"the body exceeds {state.max_file_bytes} bytes")
        except web.HTTPException as exc:
            status = exc.status
            if exc.status == 404:
                return error_response(404, "not_found", f"no resource at {request.path[:100]}")
            if exc.status == 405:
                return error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
            return error_response(exc.status, "bad_request", exc.reason)
        except Exception:
            logger.exception("unexpected error in %s", operation)
            return error_response(500, "internal", "unexpected error in the bridge")
        finally:
            if operation in WRITE_OPERATIONS:
                _log_write(state, request, operation, status, request.get("bridge.created_id") or _path_id(request))

    return contract


def _path_id(request: web.Request) -> int | None:
    """The record id of the path, if it is one."""
    if "id" not in request.match_info:
        return None
    try:
        return record_id(request)
    except ApiError:
        return None


def build_app(
    state: BridgeState, *, outer: Sequence[Middleware] = (), inner: Sequence[Middleware] = ()
) -> web.Application:
    """The aiohttp application serving the contract from `state`."""
    store = state.store

    async def health(_request: web.Request) -> web.Response:
        await state.run(store.ping)
        return web.json_response({"status": "ok", "version": "1"})

    async def table(request: web.Request) -> web.Response:
        return web.json_response(store.describe(request.match_info["table"]))

    async def query(request: web.Request) -> web.Response:
        q = request.query
        page = await state.run(
            partial(
                store.query,
                request.match_info["table"],
                filter_text=q.get("filter"),
                columns=q.get("columns"),
                orderby=q.get("orderby"),
                top=q.get("top"),
                continuation=q.get("continuation"),
            )
        )
        return web.json_response(page)

    async def get(request: web.Request) -> web.Response:
        found = await state.run(
            store.get, request.match_info["table"], record_id(request), request.query.get("columns")
        )
        return web.json_response(found)

    def _remember(request: web.Request, body: Any) -> None:
        if isinstance(body, dict):
            request["bridge.logged_values"] = {k: v for k, v in body.items() if k in state.logged_columns}

    async def insert(request: web.Request) -> web.Response:
        name = request.match_info["table"]
        store.table(name)
        body = await json_body(request, state.max_body_bytes)
        _remember(request, body)
        new_id = await state.run(store.insert, name, body)
        request["bridge.created_id"] = new_id
        return web.json_response({"id": new_id}, status=201)

    async def update(request: web.Request) -> web.Response:
        name = request.match_info["table"]
        identifier = record_id(request)
        store.table(name)
        body = await json_body(request, state.max_body_bytes)
        _remember(request, body)
        await state.run(store.update, name, identifier, body)
        return web.json_response({"id": identifier})

    async def delete(request: web.Request) -> web.Response:
        await state.run(store.delete, request.match_info["table"], record_id(request))
        return web.Response(status=204)

    async def attach_file(request: web.Request) -> web.Response:
        name = request.match_info["table"]
        identifier = record_id(request)
        store.table(name)
        content = await request.read()
        if len(content) > state.max_file_bytes:
            raise ApiError(413, "too_large", f"a file may hold at most {state.max_file_bytes} bytes")
        q = request.query
        stored = await state.run(store.attach, name, identifier, q.get("column"), q.get("filename"), content)
        return web.json_response(stored, status=201)

    async def get_file(request: web.Request) -> web.Response:
        content = await state.run(
            store.file_content, request.match_info["table"], record_id(request), record_id(request, "file_id")
        )
        return web.Response(body=content, content_type="application/octet-stream")

    limit = max(state.max_file_bytes, state.max_body_bytes) + 1024 * 1024
    app = web.Application(middlewares=[*outer, contract_middleware(state), *inner], client_max_size=limit)
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

    async def close_executor(_app: web.Application) -> None:
        state.executor.shutdown(wait=False, cancel_futures=True)
        store.engine.dispose()

    app.on_cleanup.append(close_executor)
    return app
