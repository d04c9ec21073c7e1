"""Between the SDK and the calls: `GraphCalls._send` bounds every Graph call and types its failure.

Why it is done here, once:

- Every operation has an overall deadline, retries and Retry-After waits included, so a 429 storm
  ends in `GraphUnavailable` (retryable, with Graph's Retry-After) instead of holding a function
  hostage.
- Graph allows 4 concurrent requests per mailbox per app; more are answered 429 `MailboxConcurrency`.
  The adapter keeps at most 4 in flight per mailbox itself, across the mail and the calendar calls.
- A use case should not read HTTP codes or SDK exceptions: it gets a `crm_core.graph.errors` error
  that says whether retrying can help, with the Retry-After read by `crm_core.domain.errors`.
- Ids are immutable (`Prefer: IdType="ImmutableId"`) unless a call says otherwise, so a message moved
  between folders keeps its id in the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from crm_core.domain.errors import parse_retry_after
from crm_core.graph.errors import (
    FullResyncNeeded,
    GraphAccessDenied,
    GraphNotFound,
    GraphRejected,
    GraphUnavailable,
)
from crm_core.graph.models import MessageDeltaPage
from crm_core.graph.options import GraphOptions

T = TypeVar("T")

IMMUTABLE_IDS = 'IdType="ImmutableId"'
# Error codes with which Outlook says a delta token is no longer usable.
_RESYNC_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired", "invaliddeltatoken"})


def to_json(parsable: Any) -> dict[str, Any]:
    """An SDK model back to Graph JSON, through kiota's own serializer, because the core reads Graph's JSON."""
    from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter

    writer = JsonSerializationWriter()
    writer.write_object_value(None, parsable)
    data = json.loads(writer.get_serialized_content())
    return data if isinstance(data, dict) else {}


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    with contextlib.suppress(AttributeError, TypeError):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    return None


def _retry_after(headers: Any) -> float | None:
    return parse_retry_after(_header(headers, "Retry-After"))


def _translate(operation: str, exc: BaseException, *, delta: bool) -> Exception | None:
    """The adapter's typed error for an SDK, HTTP or credential failure; None if it is none of those."""
    import httpx
    from kiota_abstractions.api_error import APIError

    if isinstance(exc, APIError):
        status = exc.response_status_code
        code, message = "", exc.message or ""
        odata = getattr(exc, "error", None)
        if odata is not None:
            code = str(getattr(odata, "code", "") or "")
            message = str(getattr(odata, "message", "") or message)
        text = f"{operation}: Graph answered {status} {code}: {message}".strip()
        if delta and (status == 410 or code.lower() in _RESYNC_CODES):
            return FullResyncNeeded(text, status=status, code=code)
        if status is not None and (status in (408, 429) or status >= 500):
            return GraphUnavailable(text, retry_after=_retry_after(exc.response_headers), status=status, code=code)
        if status == 404:
            return GraphNotFound(text, status=status, code=code)
        if status in (401, 403):
            return GraphAccessDenied(text, status=status, code=code)
        return GraphRejected(text, status=status, code=code)
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return GraphUnavailable(f"{operation}: {type(exc).__name__} talking to Graph")
    with contextlib.suppress(ImportError):
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        if isinstance(exc, ClientAuthenticationError):
            return GraphAccessDenied(f"{operation}: could not get a Graph token: {type(exc).__name__}")
        if isinstance(exc, ServiceRequestError):
            return GraphUnavailable(f"{operation}: the token endpoint was unreachable")
    return None


def unreadable(operation: str, exc: ValidationError) -> GraphRejected:
    """A page (or an item of it) that does not have the shape Graph documents."""
    return GraphRejected(f"{operation}: a page Graph sent is not readable ({exc.error_count()} errors)")


class GraphCalls:
    """The base of `GraphAdapter`: the mail and the calendar calls are methods of one object so that
    they share one deadline policy and, above all, one semaphore per mailbox."""

    def __init__(self, client: Any, options: GraphOptions | None = None, *, credential: Any = None) -> None:
        self.client = client
        self.options = options or GraphOptions()
        self._credential = credential
        self._limits: dict[str, asyncio.Semaphore] = {}

    def _limiter(self, mailbox: str | None) -> contextlib.AbstractAsyncContextManager[Any]:
        if mailbox is None or self.options.mailbox_concurrency <= 0:
            return contextlib.nullcontext()
        key = mailbox.strip().lower()
        if key not in self._limits:
            self._limits[key] = asyncio.Semaphore(self.options.mailbox_concurrency)
        return self._limits[key]

    async def _send(
        self, operation: str, mailbox: str | None, call: Callable[[], Awaitable[T]], *, delta: bool = False
    ) -> T:
        try:
            async with asyncio.timeout(self.options.operation_timeout), self._limiter(mailbox):
                return await call()
        except TimeoutError:
            raise GraphUnavailable(
                f"{operation}: no answer from Graph within {self.options.operation_timeout:g} s"
            ) from None
        except Exception as exc:
            translated = _translate(operation, exc, delta=delta)
            if translated is None:
                raise
            raise translated from exc

    async def _json_page(
        self,
        operation: str,
        mailbox: str,
        builder: Any,
        link: str | None,
        query: Any,
        *,
        prefer: tuple[str, ...],
        delta: bool = False,
    ) -> MessageDeltaPage:
        """One page of a list or a delta: from `link` (a next or delta link Graph gave) or, without
        one, from `query`. Sent through the SDK (auth, retry, redirects), read as JSON: the SDK's
        object model cost more CPU than the rest of a mail's capture."""
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        if link:
            request = builder.with_url(link).to_get_request_information(self._config(prefer=prefer))
        else:
            request = builder.to_get_request_information(self._config(query, prefer=prefer))
        adapter = self.client.request_adapter
        send = functools.partial(adapter.send_primitive_async, request, "bytes", {"XXX": ODataError})
        raw = await self._send(operation, mailbox, send, delta=delta)
        try:
            return MessageDeltaPage.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise unreadable(operation, exc) from None

    def _config(self, query: Any = None, *, prefer: tuple[str, ...] = (IMMUTABLE_IDS,)) -> Any:
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        config: Any = RequestConfiguration(query_parameters=query)
        for value in prefer:
            config.headers.add("Prefer", value)
        return config

    def _user(self, mailbox: str) -> Any:
        return self.client.users.by_user_id(mailbox)


__all__ = ["IMMUTABLE_IDS", "GraphCalls", "to_json", "unreadable"]
