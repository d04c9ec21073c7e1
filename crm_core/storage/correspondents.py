"""Unmatched correspondents: who writes to the company and is missing from the address book.

Only the address, a count and the last time are kept, never a subject or a body: this table is
for an operator deciding whom to add as a contact, and it must not become a copy of the mail.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from crm_core.domain.state import Correspondent as Correspondent
from crm_core.storage.tables import CORRESPONDENTS_TABLE, TableStorage, partition_of, row_key, storage_error

_MAX_CONFLICTS = 40


class UnmatchedCorrespondents:
    """Counts per normalized address, safe under concurrent workers (ETag-checked increments)."""

    def __init__(self, storage: TableStorage) -> None:
        self._storage = storage

    async def record(self, address: str, *, seen: datetime | None = None) -> None:
        """Count one more mail from this address."""
        if not address:
            return
        seen = seen or datetime.now(UTC)
        key = row_key(address)
        table = await self._storage.table(CORRESPONDENTS_TABLE)
        for attempt in range(_MAX_CONFLICTS):
            if attempt:
                # Spread the racing workers out a little, so that each round lets one through.
                await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 - jitter, not crypto
            try:
                entity = await table.get_entity(partition_of(key), key)
            except ResourceNotFoundError:
                new = {
                    "PartitionKey": partition_of(key),
                    "RowKey": key,
                    "Address": address,
                    "Count": 1,
                    "LastSeen": seen,
                }
                try:
                    await table.create_entity(new)
                    return
                except ResourceExistsError:
                    continue
            except AzureError as exc:
                raise storage_error(exc, "reading an unmatched correspondent") from exc
            last = entity.get("LastSeen")
            update: dict[str, Any] = {
                "PartitionKey": entity["PartitionKey"],
                "RowKey": entity["RowKey"],
                "Address": address,
                "Count": int(entity.get("Count", 0)) + 1,
                "LastSeen": max(seen, last) if isinstance(last, datetime) else seen,
            }
            try:
                await table.update_entity(
                    update,
                    mode=UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            except AzureError as exc:
                raise storage_error(exc, "counting an unmatched correspondent") from exc
        # Contention this high means many workers on one address at once; a lost count is harmless.
        return

    async def top(self, limit: int = 100) -> list[Correspondent]:
        """The most frequent unmatched senders, most frequent first."""
        table = await self._storage.table(CORRESPONDENTS_TABLE)
        try:
            rows = [entity async for entity in table.list_entities()]
        except AzureError as exc:
            raise storage_error(exc, "listing unmatched correspondents") from exc
        found = [Correspondent(row["Address"], int(row["Count"]), row["LastSeen"]) for row in rows]
        found.sort(key=lambda c: (-c.count, c.address))
        return found[:limit]
