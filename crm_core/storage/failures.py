"""Why a queue item failed: the reason stays beside the poison queue, which keeps only the item.

The Functions host moves an item to `<queue>-poison` after `maxDequeueCount` failed attempts,
unchanged and without a word of why. Each failure writes its reason here (the error's type and
message, never a mail's content), keyed by the item, so `crmservice poison list` can say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from crm_core.storage.tables import FAILURES_TABLE, TableStorage, partition_of, row_key, storage_error

_MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    attempts: int
    last_at: datetime


class FailureLog:
    def __init__(self, storage: TableStorage) -> None:
        self._storage = storage

    async def record(self, queue: str, item: str, reason: str, attempt: int) -> None:
        key = row_key(f"{queue}\n{item}")
        table = await self._storage.table(FAILURES_TABLE)
        entity = {
            "PartitionKey": partition_of(key),
            "RowKey": key,
            "Queue": queue,
            "Reason": reason[:_MAX_REASON],
            "Attempts": attempt,
            "LastAt": datetime.now(UTC),
        }
        try:
            await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise storage_error(exc, "recording a failure") from exc

    async def get(self, queue: str, item: str) -> Failure | None:
        key = row_key(f"{queue}\n{item}")
        table = await self._storage.table(FAILURES_TABLE)
        try:
            entity = await table.get_entity(partition_of(key), key)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(exc, "reading a failure") from exc
        return Failure(str(entity["Reason"]), int(entity["Attempts"]), entity["LastAt"])

    async def forget(self, queue: str, item: str) -> None:
        key = row_key(f"{queue}\n{item}")
        table = await self._storage.table(FAILURES_TABLE)
        try:
            await table.delete_entity(partition_of(key), key)
        except AzureError as exc:
            raise storage_error(exc, "forgetting a failure") from exc
