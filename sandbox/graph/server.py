"""The emulator as an aiohttp application: Graph's `/v1.0` and the `/_admin` API on one port.

This is the one module that knows both doors into the tenant (`app` for Graph, `admin` for the
test's orders), so neither of them imports the other; `__main__` binds the application to
127.0.0.1 only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from sandbox.graph.admin import add_admin_routes
from sandbox.graph.app import GraphEmulator
from sandbox.graph.odata import GraphError, bad_request
from sandbox.graph.protocol import Request, Response, parse_prefer

JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
MAX_BODY_BYTES = 4 * 1024 * 1024  # Graph's limit on a request body
# Mail delivered through the admin API stands for SMTP delivery, whose limit (Exchange Online's
# largest message) is far higher than Graph's request limit.
MAX_DELIVERY_BYTES = 150 * 1024 * 1024


def _split_raw(raw_path: str, prefix: str) -> tuple[str, dict[str, str]]:
    path, _, query = raw_path.partition("?")
    segments = path[len(prefix) :].split("/")
    return "/".join(unquote(s) for s in segments), dict(parse_qsl(query, keep_blank_values=True))


def _json_response(answer: Response) -> web.Response:
    headers = {**answer.headers, "request-id": str(uuid.uuid4())}
    if answer.body is None:
        return web.Response(status=answer.status, headers=headers)
    headers["Content-Type"] = JSON_TYPE
    return web.Response(status=answer.status, body=json.dumps(answer.body).encode(), headers=headers)


async def _read_json(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format."
        ) from None


def make_app(emulator: GraphEmulator) -> web.Application:
    """The notifier's sessions open and close with the application, so no delivery outlives the server."""
    app = web.Application(client_max_size=MAX_DELIVERY_BYTES)
    app["emulator"] = emulator

    async def graph(request: web.Request) -> web.StreamResponse:
        path, query = _split_raw(request.raw_path, "/v1.0")
        base = f"{request.scheme}://{request.host}/v1.0"
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return web.json_response(
                {"error": {"code": "RequestEntityTooLarge", "message": "The request body exceeds 4 MB."}}, status=413
            )
        try:
            body = await _read_json(request)
        except GraphError as error:
            return _json_response(emulator.reject(error))
        rq = Request(request.method, path, query, request.headers, body, base)
        rq.prefer = parse_prefer(request.headers)
        return _json_response(await emulator.handle(rq, authenticated=False))

    async def on_startup(_: web.Application) -> None:
        await emulator.notifier.start()

    async def on_cleanup(_: web.Application) -> None:
        await emulator.notifier.close()

    app.router.add_route("*", "/v1.0/{tail:.*}", graph)
    add_admin_routes(app, emulator)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
