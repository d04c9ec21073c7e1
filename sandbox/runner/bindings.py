"""What the worker hands to a function and takes back from it, converted as the worker converts it.

The app is typed against `azure.functions`, so it must get the same objects here as in Azure:
`func.HttpRequest` in and `func.HttpResponse` out, `func.Out[T]` for output bindings, `func.Context`
when asked for, and queue bodies in host.json's message encoding.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import uuid
from typing import Any, TypeVar, cast

import azure.functions as func
from aiohttp import web

log = logging.getLogger(__name__)

T = TypeVar("T")


class Out(func.Out[T]):
    """The value a function sets on an output binding; written only if the function succeeds."""

    def __init__(self) -> None:
        self._value: T | None = None
        self.is_set = False

    def set(self, val: T) -> None:
        self._value = val
        self.is_set = True

    def get(self) -> T:
        # None before `set`, as with the worker's own Out; the runner reads it only once `is_set`.
        return cast(T, self._value)


class _TraceContext:
    """W3C trace context; a fresh trace per invocation, as no caller propagates one here."""

    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext:
    """Function-level retry policies are not imitated, so this always says 'first try'."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:  # `RpcException` in azure.functions; there is none on a first try
        return None


class InvocationContext(func.Context):
    """`context: func.Context` for functions that ask for it, so logging and tracing code runs unchanged."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._thread_local = threading.local()
        self._trace = _TraceContext()
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:  # azure.functions declares the class, the worker hands an instance
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:  # azure.functions keeps its TraceContext type private
        return self._trace

    @property
    def retry_context(self) -> Any:  # see `_RetryContext.exception`
        return self._retry


def encode_queue_message(value: object, encoding: str) -> list[str]:
    """Queue output values as the worker's converter accepts them (str, bytes, QueueMessage, or a list)."""
    items = value if isinstance(value, list | tuple) else [value]
    bodies: list[bytes] = []
    for item in items:
        if isinstance(item, str):
            bodies.append(item.encode("utf-8"))
        elif isinstance(item, bytes | bytearray):
            bodies.append(bytes(item))
        elif isinstance(item, func.QueueMessage):
            bodies.append(item.get_body())
        else:
            raise TypeError(f"a queue output accepts str, bytes or QueueMessage, not {type(item).__name__}")
    if encoding == "base64":
        return [base64.b64encode(body).decode("ascii") for body in bodies]
    return [body.decode("utf-8") for body in bodies]


def decode_queue_message(content: str, encoding: str) -> bytes:
    """The body a trigger sees; raises ValueError for text that is not the configured encoding."""
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error as error:
            raise ValueError("message is not valid base64") from error
    return content.encode("utf-8")


async def to_http_request(request: web.Request, route_params: dict[str, str]) -> func.HttpRequest:
    """Repeated headers joined with ", " as ASP.NET joins them, since `func.HttpRequest` keeps one value per name."""
    body = await request.read()
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        params={key: request.query[key] for key in request.query},
        route_params=route_params,
        body=body,
    )


def to_web_response(result: object) -> web.Response:
    """The function's return value as the host's HTTP output binding sends it."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(status=200, body=result.encode("utf-8"), content_type="text/plain", charset="utf-8")
    if not isinstance(result, func.HttpResponse):
        log.error("HTTP function returned %s, not HttpResponse", type(result).__name__)
        return web.Response(status=500)
    headers: dict[str, str] = {}
    for name, value in result.headers.items():
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            continue
        headers[name] = value
    if not any(name.lower() == "content-type" for name in headers):
        mimetype = result.mimetype
        headers["Content-Type"] = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
    return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
