"""Creating a table survives one broken connection: azure-core does not retry a POST whose
connection broke after sending ("Server disconnected" on a kept-alive connection Azurite had just
closed stopped a backfill at its first page), and a second create is safe (409 if the first won)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from crm_core.storage.tables import StorageUnavailable, TableStorage
from sandbox.azurite import Azurite


class Flaky:
    """The service client, with its first `failures` creates broken after sending."""

    def __init__(self, service: Any, failures: int, *, reached: bool = True) -> None:
        self._service, self.failures, self.reached, self.creates = service, failures, reached, 0

    async def create_table(self, name: str) -> Any:
        self.creates += 1
        if self.failures:
            self.failures -= 1
            if self.reached:
                await self._service.create_table(name)  # it reached the server...
            raise ServiceRequestError("Server disconnected")  # ...and the answer was lost
        return await self._service.create_table(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)


async def test_one_broken_connection_while_creating_a_table_is_retried(azurite: Azurite) -> None:
    async with TableStorage.from_connection_string(azurite.connection_string, prefix="flaky1") as storage:
        flaky = Flaky(storage._service, failures=1)
        storage._service = flaky  # type: ignore[assignment]
        table = await storage.table("Probe")
        await table.upsert_entity({"PartitionKey": "p", "RowKey": "r"})
        assert flaky.creates == 2  # the second create found the table the first had made


async def test_two_broken_connections_are_a_storage_outage(azurite: Azurite) -> None:
    async with TableStorage.from_connection_string(azurite.connection_string, prefix="flaky2") as storage:
        storage._service = Flaky(storage._service, failures=2, reached=False)  # type: ignore[assignment]
        with pytest.raises(StorageUnavailable, match="creating table flaky2Probe"):
            await storage.table("Probe")
