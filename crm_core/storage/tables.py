"""Azure Table storage clients for the service's state, from the app's storage setting.

One `TableStorage` per process holds a client per table; tables are created on first use, so a
fresh storage account (or Azurite) needs no set-up step. With `AzureWebJobsStorage__accountName`
the managed identity is used, so no storage key is ever in the app settings.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import urllib.request
from types import TracebackType
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ServiceRequestError
from azure.data.tables.aio import TableClient, TableServiceClient

from crm_core.domain.errors import ServiceRejected, ServiceUnavailable
from crm_core.domain.settings import Settings

# The tables of docs/DESIGN.md section 6 (State); one name each, used nowhere else.
LEDGER_TABLE = "CaptureLedger"
CONVERSATIONS_TABLE = "ConversationOrders"
CORRESPONDENTS_TABLE = "UnmatchedCorrespondents"
SUBSCRIPTIONS_TABLE = "Subscriptions"
CURSORS_TABLE = "SyncCursors"
FAILURES_TABLE = "QueueFailures"
LEASES_TABLE = "MailboxLeases"
# Calendar sync (crm_core.storage.calendar): event-activity pairs, overwritten edits, who is in sync.
CALENDAR_PAIRS_TABLE = "CalendarPairs"
CALENDAR_CONFLICTS_TABLE = "CalendarConflicts"
CALENDAR_USERS_TABLE = "CalendarUsers"


@functools.cache
def client_options() -> dict[str, Any]:
    """Keyword arguments for every storage client of the process.

    azure-core's aiohttp transport, unless told otherwise, looks up the proxy variables and reads
    ~/.netrc in a thread pool before every request: a fifth of the worker's CPU in the soak's
    profile. Storage is reached with a key or a managed identity, never netrc; so the lookups are
    kept only when the environment names a proxy (read once, when the first client is made).
    """
    return {"use_env_settings": bool(urllib.request.getproxies_environment())}


class StorageUnavailable(ServiceUnavailable):
    """Table storage did not answer, or answered with a server error: retry later."""


class StorageRejected(ServiceRejected):
    """Table storage refused the request itself (bad key, too large): retrying cannot help."""


def storage_error(exc: AzureError, what: str) -> ServiceUnavailable | ServiceRejected:
    """Classify an SDK error; status 408, 429 and 5xx (and no status at all) are worth a retry."""
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    if status is None or status in (408, 429) or status >= 500:
        return StorageUnavailable(f"table storage unavailable while {what} ({type(exc).__name__}, status {status})")
    return StorageRejected(
        f"table storage refused {what} (status {status}, {exc.reason if hasattr(exc, 'reason') else ''})"
    )


def row_key(value: str) -> str:
    """A Table-safe key for any text (message ids hold `/`, `#`, `?` which keys may not)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def partition_of(key: str) -> str:
    """Spread keys over 256 partitions, so that one hot partition never throttles capture."""
    return key[:2]


class TableStorage:
    """Clients for the service's tables, created lazily and closed together."""

    def __init__(self, service: TableServiceClient, *, prefix: str = "") -> None:
        # A prefix lets several installations (or test runs) share one storage account.
        if prefix and not (prefix.isascii() and prefix.isalnum() and prefix[0].isalpha()):
            raise ValueError("a table prefix is letters and digits, starting with a letter")
        self._service = service
        self._prefix = prefix
        self._tables: dict[str, TableClient] = {}
        self._creating: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TableStorage:
        connection = settings.azure_web_jobs_storage.get_secret_value()
        if connection:
            return cls(TableServiceClient.from_connection_string(connection, **client_options()))
        from azure.identity.aio import DefaultAzureCredential

        account = settings.azure_web_jobs_storage_account_name
        return cls(
            TableServiceClient(
                f"https://{account}.table.core.windows.net", credential=DefaultAzureCredential(), **client_options()
            )
        )

    @classmethod
    def from_connection_string(cls, connection: str, *, prefix: str = "") -> TableStorage:
        return cls(TableServiceClient.from_connection_string(connection, **client_options()), prefix=prefix)

    async def table(self, name: str) -> TableClient:
        """The client of one table, which exists once this returns."""
        name = self._prefix + name
        client = self._tables.get(name)
        if client is not None:
            return client
        # Many tasks start at once on a cold worker: one creates the table, the others wait for it
        # (sixteen concurrent creates made Azurite drop connections, failing whole sync runs).
        async with self._creating.setdefault(name, asyncio.Lock()):
            client = self._tables.get(name)
            if client is None:
                await self._create(name)
                client = self._service.get_table_client(name)
                self._tables[name] = client
        return client

    async def _create(self, name: str) -> None:
        """Create the table; one that exists is fine. Creating is a POST, which azure-core does not
        retry when the connection breaks after the request was sent ("Server disconnected": a
        kept-alive connection the server had just closed); here a second try is safe, since a
        table created by the first is a 409, so one connection failure is retried."""
        for attempt in (1, 2):
            try:
                await self._service.create_table(name)
                return
            except ResourceExistsError:
                return
            except ServiceRequestError as exc:
                if attempt == 2:
                    raise storage_error(exc, f"creating table {name}") from exc
            except AzureError as exc:
                raise storage_error(exc, f"creating table {name}") from exc

    async def close(self) -> None:
        for client in self._tables.values():
            await client.close()
        self._tables.clear()
        await self._service.close()

    async def __aenter__(self) -> TableStorage:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def clean(entity: Any) -> dict[str, Any]:
    """An entity as a plain dict, without the SDK's metadata."""
    return {key: value for key, value in dict(entity).items() if not key.startswith("odata.")}
