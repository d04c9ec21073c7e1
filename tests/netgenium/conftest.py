"""Fixtures: one NET Genium emulator process for the session, reset before each test that uses it.

The emulator is a real server over TCP (sandbox/launch.py starts and stops it); it expects the
key in a non-default header, so every passing client test also shows the header is configurable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from crm_core.netgenium import NetGeniumClient
from sandbox.launch import ServerProcess
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER, FAST_RETRY, MAX_FILE_BYTES, Admin


@pytest.fixture(scope="session")
def emulator() -> Iterator[ServerProcess]:
    server = ServerProcess(
        "sandbox.netgenium",
        [
            "--db",
            ":memory:",
            "--api-key",
            API_KEY,
            "--api-key-header",
            API_KEY_HEADER,
            "--max-file-bytes",
            str(MAX_FILE_BYTES),
        ],
        health_path="/api/v1/health",
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def admin_session(emulator: ServerProcess) -> Iterator[Admin]:
    admin = Admin(emulator.base_url)
    yield admin
    admin.close()


@pytest.fixture
def admin(admin_session: Admin) -> Admin:
    """The admin API, after a reset of data, faults and counts."""
    admin_session.reset()
    return admin_session


@pytest.fixture
async def client(emulator: ServerProcess, admin: Admin) -> AsyncIterator[NetGeniumClient]:
    async with NetGeniumClient(emulator.base_url, API_KEY, api_key_header=API_KEY_HEADER, retry=FAST_RETRY) as ng:
        yield ng
