"""Direct mode: the NET Genium bridge's store in this process, behind the client's transport port.

Where the Function App reaches NET Genium's database itself (NET Genium on an Azure VM or Azure
SQL, through VNet integration), NETGENIUM_DATABASE_URL replaces NETGENIUM_BASE_URL and no bridge
is installed: the record API's operations run on `bridge.store.Store`, the same code that
`python -m bridge serve` and the sandbox's emulator serve over HTTP. So both modes keep one
contract: the store checks names against the catalog, values against their columns, and its
errors are the contract's (`ApiError` with the HTTP status the bridge would answer), which become
the same typed errors and the same retry decisions as over HTTP (`transport.contract_error`).

What HTTP adds and direct mode has no need of: the API key (the database credential in the URL
is the authentication) and body limits (nothing crosses a network). This is the only module of
`crm_core` that imports `bridge` (pyproject.toml's import contract), and it is imported only in
direct mode, so the default deployment never loads SQLAlchemy or a database driver
(`requirements-direct.txt` is the opt-in).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from crm_core.netgenium import filters as f
from crm_core.netgenium.models import Created, RecordsPage, StoredFile, TableInfo
from crm_core.netgenium.retry import RetryPolicy, retry_async
from crm_core.netgenium.schema_map import SchemaMap
from crm_core.netgenium.transport import contract_error, retry_after_hint, retry_decision

if TYPE_CHECKING:
    from bridge.store import Store
    from crm_core.domain.settings import Settings

logger = logging.getLogger("crm_core.netgenium.direct")


def redacted(database_url: str) -> str:
    """The database URL without its password, to name the database in messages."""
    import sqlalchemy as sa

    return sa.engine.make_url(database_url).render_as_string(hide_password=True)


def open_store(database_url: str, schema_map: SchemaMap, *, time_zone: str, files_folder: str) -> tuple[Store, int]:
    """The bridge's store over the database, and how many operations may run on it at once.

    Reflects the mapped tables from the database's catalog, so it does I/O: call it off the event loop.
    """
    from bridge.database import open_database
    from bridge.files import FileStore
    from bridge.store import Store
    from bridge.values import LocalTime

    engine, workers = open_database(database_url)
    folder = Path(files_folder) if files_folder else None
    files = FileStore(engine, table="ng_bridge_files", strategy="folder" if folder else "blob", folder=folder)
    return Store(engine, schema_map, files=files, clock=LocalTime(time_zone)), workers


class StoreTransport:
    """The record API's operations on the bridge's store, run in worker threads (the store is
    synchronous SQLAlchemy), with the HTTP transport's errors and retries."""

    api_key_header = ""

    def __init__(
        self,
        opener: Callable[[], tuple[Store, int]],
        *,
        name: str,
        retry: RetryPolicy | None = None,
        page_size: int = 500,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be 1..1000 (the contract's `top` limit)")
        self.base_url = name
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self._opener = opener
        self._sleep = sleep
        self._store: Store | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._opening = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, schema_map: SchemaMap, **options: Any) -> StoreTransport:
        """Direct mode as the app settings configure it (NETGENIUM_DATABASE_URL and its neighbours)."""
        url = settings.netgenium_database_url.get_secret_value()
        opener = partial(
            open_store,
            url,
            schema_map,
            time_zone=settings.crm_calendar_time_zone,
            files_folder=settings.netgenium_files_folder,
        )
        return cls(opener, name=f"direct:{redacted(url)}", **options)

    async def aclose(self) -> None:
        """Stop the worker threads and close the database connections."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._store is not None:
            self._store.engine.dispose()
            self._store = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- one operation: a worker thread, the contract's errors, the retry --------------------

    async def _opened(self) -> tuple[Store, ThreadPoolExecutor]:
        """The store, opened on first use: a database that cannot be reached at start is an
        unavailable answer (retried, then deferred) as a bridge that is down, not a crashed worker."""
        async with self._opening:
            if self._store is None or self._executor is None:
                try:
                    store, workers = await asyncio.get_running_loop().run_in_executor(None, self._opener)
                except Exception as exc:
                    logger.warning("cannot open NET Genium's database %s: %s", self.base_url, type(exc).__name__)
                    message = f"NET Genium's database ({self.base_url}) cannot be opened: {type(exc).__name__}"
                    raise contract_error(503, "unavailable", message) from None
                self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ng-direct")
                self._store = store
            return self._store, self._executor

    async def _store_call(self, what: str, operation: str, *args: Any, idempotent: bool = True, **kw: Any) -> Any:
        """One store operation in a worker thread, with the contract's errors and the retry."""
        from bridge.errors import ApiError

        async def once() -> Any:
            store, executor = await self._opened()
            call = partial(getattr(store, operation), *args, **kw)
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, call)
            except ApiError as exc:
                message = f"NET Genium's database answered {exc.status} {exc.code} to {what}: {exc.message}"
                raise contract_error(exc.status, exc.code, message) from None
            except Exception as exc:
                # What the bridge answers as 500 `internal`: maybe carried out, so never repeated blindly.
                logger.exception("unexpected error in direct mode (%s)", what)
                message = f"unexpected error in direct mode ({type(exc).__name__}) for {what}"
                raise contract_error(500, "internal", message) from None

        return await retry_async(
            once,
            policy=self.retry,
            is_retryable=retry_decision(idempotent),
            retry_after_of=retry_after_hint,
            sleep=self._sleep,
            description=f"NET Genium (direct) {what}",
        )

    # --- the record API ----------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """As the bridge answers health: the database answers a statement."""
        await self._store_call("health", "ping")
        return {"status": "ok", "version": "1"}

    async def get_table(self, table: str) -> TableInfo:
        """A table's columns with types and lengths, from the database's catalog."""
        described = await self._store_call(f"table {table}", "describe", table)
        return TableInfo.model_validate(described)

    async def iter_records(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching record, page by page (the filter goes through the contract's grammar)."""
        continuation: str | None = None
        while True:
            answer = await self._store_call(
                f"query {table}",
                "query",
                table,
                filter_text=filter.text() if filter else None,
                columns=",".join(columns) if columns else None,
                orderby=orderby,
                top=str(page_size or self.page_size),
                continuation=continuation,
            )
            page = RecordsPage.model_validate(answer)
            for record in page.records:
                yield record
            if not page.continuation:
                return
            continuation = page.continuation

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
        chosen = ",".join(columns) if columns else None
        found: dict[str, Any] = await self._store_call(f"get {table}/{record_id}", "get", table, int(record_id), chosen)
        return found

    async def insert(self, table: str, values: dict[str, Any], *, repeatable: bool = False) -> int:
        """Insert a record and return its id (repeated after an ambiguous failure only when
        `repeatable`: a unique column turns a second insert into a conflict)."""
        created = await self._store_call(f"insert {table}", "insert", table, _as_json(values), idempotent=repeatable)
        return Created.model_validate({"id": created}).id

    async def update(self, table: str, record_id: int, values: dict[str, Any]) -> None:
        """Change some columns of a record; NetGeniumNotFound when it does not exist."""
        await self._store_call(f"update {table}/{record_id}", "update", table, int(record_id), _as_json(values))

    async def delete(self, table: str, record_id: int) -> None:
        """Delete a record; NetGeniumNotFound when it does not exist."""
        await self._store_call(f"delete {table}/{record_id}", "delete", table, int(record_id))

    async def attach_file(self, table: str, record_id: int, column: str, filename: str, content: bytes) -> StoredFile:
        """Attach (or replace, by name) a file in a record's files column."""
        stored = await self._store_call(
            f"attach {table}/{record_id}", "attach", table, int(record_id), column, filename, content
        )
        return StoredFile.model_validate(stored)


def _as_json(values: dict[str, Any]) -> Any:
    """The values as the bridge receives them over HTTP: what JSON can carry, nothing else (a
    value JSON cannot hold is refused here as the HTTP client would refuse to send it)."""
    return json.loads(json.dumps(values, ensure_ascii=False, allow_nan=False))
