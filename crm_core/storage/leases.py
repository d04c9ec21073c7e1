"""Leases on mailboxes: one process at a time reads a mailbox through Graph.

Graph allows 4 concurrent requests per app per mailbox, across all of the app's instances. The
Graph adapter keeps each process under 4; this lease keeps the whole app there when the Functions
host scales out: only the process holding a mailbox's lease runs its delta rounds and reads its
mail. A lease names its holder and when it ends; a holder that dies loses it when it ends, and an
ETag check lets only one taker win.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from crm_core.domain.state import lease_is_free
from crm_core.storage.tables import LEASES_TABLE, TableStorage, partition_of, row_key, storage_error


class MailboxLeases:
    """Acquire and release a mailbox's lease (Table `MailboxLeases`)."""

    def __init__(self, storage: TableStorage) -> None:
        self._storage = storage
        # The ETag of each lease this process last wrote, so that giving it back is one delete
        # that fails if anyone wrote the row since (it is then no longer ours), not a read first.
        self._etags: dict[tuple[str, str], str] = {}

    async def acquire(self, mailbox: str, holder: str, seconds: float, *, now: datetime | None = None) -> bool:
        """Take the lease for `seconds` if it is free, ended, or already ours; False if another holds it."""
        now = now or datetime.now(UTC)
        key = row_key(mailbox.lower())
        table = await self._storage.table(LEASES_TABLE)
        entity = {
            "PartitionKey": partition_of(key),
            "RowKey": key,
            "Holder": holder,
            "Until": now + timedelta(seconds=seconds),
        }
        try:
            self._remember(key, holder, await table.create_entity(entity))
            return True
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise storage_error(exc, "taking a mailbox lease") from exc
        try:
            current = await table.get_entity(partition_of(key), key)
        except ResourceNotFoundError:
            return await self.acquire(mailbox, holder, seconds, now=now)
        except AzureError as exc:
            raise storage_error(exc, "reading a mailbox lease") from exc
        if not lease_is_free(str(current.get("Holder", "")), current.get("Until"), holder, now):
            return False
        try:
            written = await table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except AzureError as exc:
            raise storage_error(exc, "taking over a mailbox lease") from exc
        self._remember(key, holder, written)
        return True

    def _remember(self, key: str, holder: str, written: Mapping[str, Any]) -> None:
        etag = written.get("etag")
        if etag:
            self._etags[(key, holder)] = str(etag)

    async def release(self, mailbox: str, holder: str) -> None:
        """Give the lease back if it is still ours (a lease that ran out may belong to another)."""
        key = row_key(mailbox.lower())
        table = await self._storage.table(LEASES_TABLE)
        try:
            etag = self._etags.pop((key, holder), None)
            if etag is None:  # taken by another instance of this class (or process): read it first
                current = await table.get_entity(partition_of(key), key)
                if current.get("Holder") != holder:
                    return
                etag = current.metadata["etag"]
            await table.delete_entity(partition_of(key), key, etag=etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            return
        except AzureError as exc:
            raise storage_error(exc, "releasing a mailbox lease") from exc
