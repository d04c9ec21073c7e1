"""Storage clients skip aiohttp's per-request proxy and netrc lookups unless a proxy is configured
(they cost a fifth of the worker's CPU in the soak's profile), and still work either way."""

from __future__ import annotations

import pytest

from crm_core.storage.tables import TableStorage, client_options
from sandbox.azurite import Azurite


@pytest.fixture(autouse=True)
def fresh_options() -> object:
    client_options.cache_clear()
    yield
    client_options.cache_clear()


def test_without_a_proxy_the_environment_is_not_consulted_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert client_options() == {"use_env_settings": False}


def test_a_configured_proxy_keeps_the_environment_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.firma.example:3128")
    assert client_options() == {"use_env_settings": True}


async def test_tables_work_with_the_lookups_off(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with TableStorage.from_connection_string(azurite.connection_string, prefix="opts") as storage:
        table = await storage.table("Probe")
        await table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "Value": 1})
        assert (await table.get_entity("p", "r"))["Value"] == 1
        transport = table._client._client._pipeline._transport
        while hasattr(transport, "_transport"):  # a table client wraps its service's transport
            transport = transport._transport
        assert transport._use_env_settings is False
