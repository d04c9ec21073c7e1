"""Fixtures for the local Functions runner's tests: Azurite and the runner as real processes.

`azurite` (session) is the emulator from sandbox/azurite.py; `sample_runner` (module) is
`python -m sandbox.runner` serving tests/host/apps/sample against it, with fresh queue names and a
folder where the sample app records what its functions received.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.azurite import Azurite
from sandbox.launch import ServerProcess
from tests.host.helpers import SAMPLE_APP, Runner


def start_runner(
    storage: Azurite, record_dir: Path, *, app_dir: Path = SAMPLE_APP, extra_env: dict[str, str] | None = None
) -> Runner:
    queue = f"sample-{uuid.uuid4().hex[:12]}"
    server = ServerProcess(
        "sandbox.runner",
        ["--app-dir", str(app_dir), "--message-lease", "10", "--shutdown-grace", "3"],
        health_path="/admin/host/status",
        env={
            "AzureWebJobsStorage": storage.connection_string,
            "SAMPLE_QUEUE": queue,
            "SAMPLE_RECORD_DIR": str(record_dir),
            **(extra_env or {}),
        },
    )
    server.start()
    return Runner(server=server, record_dir=record_dir, queue=queue, connection_string=storage.connection_string)


@pytest.fixture(scope="module")
def sample_runner(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    runner = start_runner(azurite, tmp_path_factory.mktemp("records"))
    try:
        yield runner
    finally:
        runner.server.stop()
