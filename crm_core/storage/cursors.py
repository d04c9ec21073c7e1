"""Where each sync left off: Graph delta links per mailbox or calendar, and NET Genium watermarks.

A lost cursor costs a full resync, never a lost mail (the ledger drops what was already stored),
so cursors are written after the work they cover is done.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from crm_core.storage.tables import CURSORS_TABLE, TableStorage, partition_of, row_key, storage_error


class SyncCursors:
    """Named cursors (`mail-delta:<mailbox>`, `calendar-delta:<user>`, `ng-calendar-watermark`)."""

    def __init__(self, storage: TableStorage) -> None:
        self._storage = storage

    async def get(self, name: str) -> str | None:
        key = row_key(name)
        table = await self._storage.table(CURSORS_TABLE)
        try:
            entity = await table.get_entity(partition_of(key), key)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(exc, f"reading cursor {name}") from exc
        value = entity.get("Value")
        return str(value) if value is not None else None

    async def set(self, name: str, value: str) -> None:
        key = row_key(name)
        table = await self._storage.table(CURSORS_TABLE)
        try:
            await table.upsert_entity(
                {"PartitionKey": partition_of(key), "RowKey": key, "Name": name, "Value": value},
                mode=UpdateMode.REPLACE,
            )
        except AzureError as exc:
            raise storage_error(exc, f"saving cursor {name}") from exc

    async def clear(self, name: str) -> None:
        key = row_key(name)
        table = await self._storage.table(CURSORS_TABLE)
        try:
            await table.delete_entity(partition_of(key), key)
        except AzureError as exc:
            raise storage_error(exc, f"clearing cursor {name}") from exc
