"""The engine for a database URL, and how many operations may run on it at once.

SQL Server and Firebird get a connection pool and as many worker threads as pooled connections.
No pre-ping (it would cost a round trip and a statement per request): a pooled connection that
a restarted server dropped fails its request with 503 (not carried out, so the client repeats
it), and SQLAlchemy then drops the whole pool; connections are also renewed hourly.
SQLite (the sandbox) gets one connection and one worker: its transactions are serialized anyway,
and an in-memory database exists only inside its one connection.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

POOL_SIZE = 8


def open_database(url: str) -> tuple[Engine, int]:
    """The engine and the number of worker threads for it."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False, "isolation_level": None}
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine, 1
    engine = sa.create_engine(parsed, pool_size=POOL_SIZE, max_overflow=0, pool_recycle=3600)
    if parsed.get_backend_name() == "firebird":
        sa.event.listen(engine, "connect", _firebird_read_committed)
    return engine, POOL_SIZE


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    # pysqlite's own transaction handling is off (isolation_level=None); SQLAlchemy's begin is this.
    connection.exec_driver_sql("BEGIN")


def _firebird_read_committed(connection: Any, _record: Any) -> None:
    """READ COMMITTED (record version), as SQL Server's default, instead of firebird-driver's SNAPSHOT.

    A SNAPSHOT transaction copies the state of every transaction since the oldest interesting one
    when it starts (measured here: 3.5 ms a request); sqlalchemy-firebird cannot set the isolation
    level on firebird-driver 2 connections, so the default transaction parameter block is set.
    """
    from firebird.driver import Isolation, tpb

    connection.main_transaction.default_tpb = tpb(Isolation.READ_COMMITTED_RECORD_VERSION)
