"""A fresh set of tables for each test, in the session's Azurite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from crm_core.storage.tables import TableStorage
from sandbox.azurite import Azurite


@pytest.fixture
async def storage(azurite: Azurite) -> AsyncIterator[TableStorage]:
    # Tables are per test (by prefix), so that tests never see each other's rows.
    prefix = "t" + uuid.uuid4().hex[:10]
    async with TableStorage.from_connection_string(azurite.connection_string, prefix=prefix) as store:
        yield store
