"""The Azurite harness: a real emulator on loopback ports that the storage SDKs accept."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

from sandbox.azurite import ACCOUNT_NAME, Azurite, AzuriteNotInstalledError


def test_connection_string_names_loopback_endpoints(azurite: Azurite) -> None:
    parts = dict(part.split("=", 1) for part in azurite.connection_string.rstrip(";").split(";"))
    assert parts["AccountName"] == ACCOUNT_NAME
    for key in ("QueueEndpoint", "TableEndpoint"):
        assert parts[key].startswith("http://127.0.0.1:")
        assert parts[key].endswith(f"/{ACCOUNT_NAME}")
    assert len({azurite.blob_port, azurite.queue_port, azurite.table_port}) == 3


def test_queues_and_tables_work_through_the_sdks(azurite: Azurite) -> None:
    name = f"harness-{uuid.uuid4().hex[:8]}"
    with QueueClient.from_connection_string(azurite.connection_string, name) as queue:
        queue.create_queue()
        queue.send_message("hello")
        message = queue.receive_message(visibility_timeout=30)
        assert message is not None
        assert (message.content, message.dequeue_count) == ("hello", 1)
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        table = service.create_table_if_not_exists(name.replace("-", ""))
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "value": 7})
        assert table.get_entity("p", "r")["value"] == 7


def test_blob_service_answers_too(azurite: Azurite) -> None:
    # No blob SDK is installed; an unsigned request is refused by the service, which proves it is there.
    request = urllib.request.Request(f"{azurite.blob_endpoint}?comp=list")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code in (401, 403)
    assert refused.value.headers.get("x-ms-request-id")


def test_every_start_is_empty_and_stop_ends_the_process() -> None:
    with Azurite() as first:
        with QueueClient.from_connection_string(first.connection_string, "leftover") as queue:
            queue.create_queue()
        process = first.process
    assert not first.running
    assert process is not None and process.returncode is not None
    with Azurite() as second, QueueServiceClient.from_connection_string(second.connection_string) as service:
        assert [q.name for q in service.list_queues()] == []


def test_missing_node_modules_says_to_run_npm_ci(tmp_path: Path) -> None:
    with pytest.raises(AzuriteNotInstalledError, match="npm ci"):
        Azurite(root=tmp_path).start()
