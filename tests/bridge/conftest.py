"""Fixtures: `python -m bridge serve --config bridge.toml` as an administrator runs it, per backend.

Each backend gets its own database of NET Genium-like tables plus what a real installation also
has and the schema map does not name (a table `ng_secrets`, a column `ng_password` in ng_users),
so the tests can show the bridge never reaches them. The bridge runs as its own process with a
config file (hashed key, Europe/Prague, small body limits, files in a folder), over real HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bridge.keys import hash_key
from crm_core.netgenium import default_schema_map
from sandbox.launch import REPO_ROOT, free_port
from sandbox.netgenium.ddl import create_tables
from sandbox.netgenium.firebird import FirebirdServer

KEY = "bridge-test-key-0123456789abcdef"
HEADER = "X-Api-Key"
MAX_BODY = 4096
MAX_FILE = 8192


@dataclass
class RunningBridge:
    """A bridge process and what the tests need to talk to it and to its database."""

    backend: str
    base_url: str
    database_url: str
    log_path: Path
    files_folder: Path
    http: httpx.Client

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {HEADER: KEY, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return self.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def rows(self, table: str) -> list[tuple[object, ...]]:
        """Every row of a table, read straight from the database (not through the bridge)."""
        engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                return [tuple(r) for r in connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]
        finally:
            engine.dispose()

    def value(self, table: str, column: str, record: int) -> object:
        """One stored value, read straight from the database."""
        engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                statement = sa.select(sa.column(column)).select_from(sa.table(table)).where(sa.column("id") == record)
                return connection.execute(statement).scalar_one()
        finally:
            engine.dispose()

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")


def add_unmapped(database_url: str) -> None:
    """What an installation has beyond the map: another table, and another column in a mapped one."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE ng_secrets (id INTEGER NOT NULL PRIMARY KEY, ng_value VARCHAR(50))"
            )
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE ng_users ADD ng_password VARCHAR(100)")
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO ng_secrets (id, ng_value) VALUES (1, 'top secret')")
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def bridge_firebird() -> Iterator[FirebirdServer]:
    with FirebirdServer() as server:
        yield server


def _start(backend: str, database_url: str, tmp: Path) -> Iterator[RunningBridge]:
    port = free_port()
    folder = tmp / "files"
    config = tmp / "bridge.toml"
    config.write_text(
        "\n".join(
            [
                f"database_url = {database_url!r}".replace("'", '"'),
                f'api_key_hashes = ["{hash_key(KEY)}"]',
                f'api_key_header = "{HEADER}"',
                'time_zone = "Europe/Prague"',
                f'listen = "127.0.0.1:{port}"',
                f"max_body_bytes = {MAX_BODY}",
                f"max_file_bytes = {MAX_FILE}",
                "[files]",
                'strategy = "folder"',
                'folder = "files"',
                "",
            ]
        ),
        "utf-8",
    )
    log_path = tmp / "bridge.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--config", str(config)], cwd=REPO_ROOT, env=env, stderr=log
        )
    base_url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=base_url, timeout=30)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if http.get("/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the bridge did not start: " + log_path.read_text()
            time.sleep(0.1)
        yield RunningBridge(backend, base_url, database_url, log_path, folder, http)
    finally:
        http.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session", params=["sqlite", "firebird"])
def bridge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBridge]:
    tmp = tmp_path_factory.mktemp(f"bridge-{request.param}")
    if request.param == "firebird":
        firebird: FirebirdServer = request.getfixturevalue("bridge_firebird")
        database_url = firebird.create_database("bridge")
    else:
        database_url = f"sqlite:///{tmp / 'netgenium.sqlite3'}"
        engine = sa.create_engine(database_url)
        create_tables(engine, default_schema_map())
        engine.dispose()
    add_unmapped(database_url)
    yield from _start(request.param, database_url, tmp)
