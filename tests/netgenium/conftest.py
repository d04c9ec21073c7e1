"""Fixtures: one NET Genium emulator process per backend for the session, reset before each test.

The emulator is the bridge (bridge/) behind a real server over TCP (sandbox/launch.py starts and
stops it), with its faults and admin API around it. Every test that uses it runs twice: on SQLite
(the sandbox), and on a real Firebird 3 server that the session starts on a free loopback port
with a fresh database of NET Genium-like tables, its dates kept in Europe/Prague. It expects the
key in a non-default header, so every passing client test also shows the header is configurable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from crm_core.netgenium import NetGeniumClient
from sandbox.launch import ServerProcess
from sandbox.netgenium.firebird import FirebirdServer
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER, FAST_RETRY, MAX_FILE_BYTES, Admin

BACKENDS = ["sqlite", "firebird"]


@pytest.fixture(scope="session")
def firebird_server() -> Iterator[FirebirdServer]:
    """A private Firebird 3 server (Debian's firebird3.0-server must be installed: scripts/test.sh does)."""
    with FirebirdServer() as server:
        yield server


@pytest.fixture(scope="session", params=BACKENDS)
def emulator(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    if request.param == "firebird":
        firebird: FirebirdServer = request.getfixturevalue("firebird_server")
        database = ["--db", firebird.create_database("netgenium"), "--time-zone", "Europe/Prague"]
    else:
        database = ["--db", ":memory:"]
    server = ServerProcess(
        "sandbox.netgenium",
        [
            *database,
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
