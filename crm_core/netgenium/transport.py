"""The HTTP transport of the NET Genium record API: how a request reaches the API and its answer comes back.

The adapter is split where httpx draws the line: this module knows URLs, headers, status codes and
the contract's payloads (openapi.yaml) but no installation's tables or columns, which the
schema-mapped client (`client.py`) adds on top. Here the HTTP half of "never lose, never duplicate
a customer e-mail" is kept:

- every request has a timeout and a bounded retry (`crm_core.netgenium.retry`) on 429/502/503/504 and on
  connection errors and timeouts, honouring `Retry-After`; other 4xx are not retried;
- a write that may already have been carried out (no answer, or a gateway error) is repeated only
  when repeating is harmless: updates, deletes and file uploads (which replace a file of the same
  name) always; inserts only when the caller says a second insert would be refused (`repeatable`);
- every failure becomes a typed error (`errors.py`) that says whether retrying can help, and an
  answer outside the contract is a `NetGeniumProtocolError` before any value of it is used.

One pooled `httpx.AsyncClient` per instance; create one instance per process and close it
(`aclose()` or `async with`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from crm_core.domain.errors import parse_retry_after
from crm_core.netgenium import filters as f
from crm_core.netgenium.errors import (
    NetGeniumAuthError,
    NetGeniumConflict,
    NetGeniumNotFound,
    NetGeniumProtocolError,
    NetGeniumRejected,
    NetGeniumUnavailable,
)
from crm_core.netgenium.models import Created, ErrorBody, RecordsPage, StoredFile, TableInfo
from crm_core.netgenium.retry import RetryPolicy, retry_async

API = "/api/v1"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Statuses after which the contract guarantees nothing was done (so even an insert may be repeated).
NOT_CARRIED_OUT = frozenset({429, 503})

M = TypeVar("M", bound=BaseModel)


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def contract_error(status: int, code: str | None, what: str, *, retry_after: float | None = None) -> Exception:
    """The typed error for a contract error answer (openapi.yaml), whichever way it came.

    429 and 503 mean the contract guarantees nothing was done; any other 5xx may have been
    carried out (`ambiguous`), which decides whether a write may be repeated.
    """
    if status in (401, 403):
        return NetGeniumAuthError(what, status=status, code=code)
    if status == 404:
        return NetGeniumNotFound(what, status=status, code=code)
    if status == 409:
        return NetGeniumConflict(what, status=status, code=code)
    if status == 429 or status >= 500:
        return NetGeniumUnavailable(
            what, status=status, code=code, retry_after=retry_after, ambiguous=status not in NOT_CARRIED_OUT
        )
    return NetGeniumRejected(what, status=status, code=code)


def retry_decision(idempotent: bool) -> Callable[[BaseException], bool]:
    """Whether a failed request may be sent again: a retryable status, and a write only when
    repeating it is harmless or it was certainly not carried out."""

    def retryable(exc: BaseException) -> bool:
        if not isinstance(exc, NetGeniumUnavailable):
            return False
        if exc.status is not None and exc.status not in RETRY_STATUSES:
            return False
        return idempotent or not exc.ambiguous

    return retryable


def retry_after_hint(exc: BaseException) -> float | None:
    """The wait an unavailable answer asked for."""
    return exc.retry_after if isinstance(exc, NetGeniumUnavailable) else None


class RecordTransport(Protocol):
    """How the client reaches the record API: over HTTP (`NetGeniumTransport`), or in this
    process over the bridge's store (`crm_core.netgenium.direct`, direct mode)."""

    base_url: str
    api_key_header: str
    retry: RetryPolicy
    page_size: int

    async def aclose(self) -> None: ...
    async def health(self) -> dict[str, Any]: ...
    async def get_table(self, table: str) -> TableInfo: ...
    def iter_records(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]: ...
    async def query(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
    ) -> list[dict[str, Any]]: ...
    async def get_record(
        self, table: str, record_id: int, *, columns: Sequence[str] | None = None
    ) -> dict[str, Any]: ...
    async def insert(self, table: str, values: dict[str, Any], *, repeatable: bool = False) -> int: ...
    async def update(self, table: str, record_id: int, values: dict[str, Any]) -> None: ...
    async def delete(self, table: str, record_id: int) -> None: ...
    async def attach_file(
        self, table: str, record_id: int, column: str, filename: str, content: bytes
    ) -> StoredFile: ...


class NetGeniumTransport:
    """The NET Genium record API (contract: openapi.yaml) over HTTP, without the schema map."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        api_key_header: str = "X-Api-Key",
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        page_size: int = 500,
        max_connections: int = 20,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an absolute http(s) URL, got {base_url!r}")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("the NET Genium API needs https (http is allowed on loopback only)")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be 1..1000 (the contract's `top` limit)")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.base_url = base_url.strip().rstrip("/")
        self.api_key_header = api_key_header
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={api_key_header: key, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- one request: timeout, retry, typed errors ------------------------------------------

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None,
        json: Any,
        content: bytes | None,
        headers: dict[str, str] | None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, path, params=params, json=json, content=content, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NetGeniumUnavailable(f"NET Genium is unreachable ({type(exc).__name__}) for {method} {path}") from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise NetGeniumUnavailable(
                f"no answer from NET Genium ({type(exc).__name__}) for {method} {path}",
                ambiguous=True,
            ) from exc
        if response.is_success:
            return response
        raise self._error(method, path, response)

    def _error(self, method: str, path: str, response: httpx.Response) -> Exception:
        status = response.status_code
        code: str | None = None
        detail = ""
        try:
            body = ErrorBody.model_validate_json(response.content)
            code, detail = body.error.code, body.error.message
        except ValidationError:
            detail = f"(not a contract error body: {response.headers.get('content-type', '?')})"
        what = f"NET Genium answered {status} {code or ''} to {method} {path}: {detail}"
        if status in (401, 403):
            return NetGeniumAuthError(
                f"{what}. Check NETGENIUM_API_KEY and that the API expects the key in the "
                f"{self.api_key_header!r} header (NETGENIUM_API_KEY_HEADER)",
                status=status,
                code=code,
            )
        return contract_error(status, code, what, retry_after=parse_retry_after(response.headers.get("Retry-After")))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        return await retry_async(
            lambda: self._send_once(method, path, params=params, json=json, content=content, headers=headers),
            policy=self.retry,
            is_retryable=retry_decision(idempotent),
            retry_after_of=retry_after_hint,
            sleep=self._sleep,
            description=f"NET Genium {method} {path}",
        )

    @staticmethod
    def _parse(model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise NetGeniumProtocolError(
                f"NET Genium answered {response.status_code} to {response.request.method} "
                f"{response.request.url.path} with a body the contract does not allow "
                f"({exc.error_count()} problems, e.g. {exc.errors()[0]['msg']})",
                status=response.status_code,
            ) from None

    @staticmethod
    def _records_path(table: str, record_id: int | None = None) -> str:
        path = f"{API}/tables/{quote(table, safe='')}/records"
        return path if record_id is None else f"{path}/{int(record_id)}"

    # --- the record API --------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """The API's health answer (no key needed); raises when it is unreachable."""
        response = await self._request("GET", f"{API}/health")
        data = response.json()
        if not isinstance(data, dict):
            raise NetGeniumProtocolError("the health answer is not a JSON object")
        return data

    async def get_table(self, table: str) -> TableInfo:
        """A table's columns with types and lengths, as `crmservice netgenium check` compares them."""
        response = await self._request("GET", f"{API}/tables/{quote(table, safe='')}")
        return self._parse(TableInfo, response)

    async def iter_records(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching record, page by page, following the continuation token."""
        params: dict[str, str] = {"top": str(page_size or self.page_size)}
        if filter:
            params["filter"] = filter.text()
        if columns:
            params["columns"] = ",".join(columns)
        if orderby:
            params["orderby"] = orderby
        path = self._records_path(table)
        while True:
            page = self._parse(RecordsPage, await self._request("GET", path, params=params))
            for record in page.records:
                yield record
            if not page.continuation:
                return
            params = {**params, "continuation": page.continuation}

    async def query(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every matching record in one list."""
        return [record async for record in self.iter_records(table, filter, columns=columns, orderby=orderby)]

    async def get_record(self, table: str, record_id: int, *, columns: Sequence[str] | None = None) -> dict[str, Any]:
        """One record; NetGeniumNotFound when it does not exist."""
        params = {"columns": ",".join(columns)} if columns else None
        response = await self._request("GET", self._records_path(table, record_id), params=params)
        data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise NetGeniumProtocolError(f"the record {table}/{record_id} is not a JSON object with id")
        return data

    async def insert(self, table: str, values: dict[str, Any], *, repeatable: bool = False) -> int:
        """Insert a record and return its id.

        `repeatable` says a unique column makes a second insert fail with 409 rather than store a
        duplicate, so the insert may be repeated after a lost answer.
        """
        response = await self._request("POST", self._records_path(table), json=values, idempotent=repeatable)
        return self._parse(Created, response).id

    async def update(self, table: str, record_id: int, values: dict[str, Any]) -> None:
        """Change some columns of a record; NetGeniumNotFound when it does not exist."""
        await self._request("PATCH", self._records_path(table, record_id), json=values)

    async def delete(self, table: str, record_id: int) -> None:
        """Delete a record; NetGeniumNotFound when it does not exist."""
        await self._request("DELETE", self._records_path(table, record_id))

    async def attach_file(self, table: str, record_id: int, column: str, filename: str, content: bytes) -> StoredFile:
        """Attach (or replace, by name) a file in a record's files column."""
        response = await self._request(
            "POST",
            self._records_path(table, record_id) + "/files",
            params={"column": column, "filename": filename},
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        return self._parse(StoredFile, response)
