"""The emulator's admin operations on the bridge's store: seed records with ids, and reset.

Seeding writes ids (and system or stamped columns) that the API never lets a client write, then
moves the table's id generator past them, as a NET Genium import would: in Firebird with
`ALTER TABLE ... ALTER COLUMN id RESTART WITH`, in SQLite AUTOINCREMENT follows by itself.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bridge.errors import ApiError, bad_request
from bridge.store import Store


def _restart_ids(store: Store, table: str, last: int) -> None:
    """Make the next generated id `last + 1` (Firebird 3 hands out the value after RESTART WITH)."""
    if store.engine.url.get_backend_name() != "firebird":
        return
    quoted = store.engine.dialect.identifier_preparer.quote(table)
    with store.engine.begin() as connection:
        connection.exec_driver_sql(f"ALTER TABLE {quoted} ALTER COLUMN id RESTART WITH {int(last)}")


def seed(store: Store, table: str, records: Any) -> int:
    """Insert records with the ids they carry; how many."""
    definition = store.table(table)
    if not isinstance(records, list):
        raise bad_request("bad_request", "records must be a list")
    rows: list[dict[str, Any]] = []
    for record in records:
        values = store.write_values(definition, record, seeding=True)
        if not isinstance(values.get("id"), int) or values["id"] < 1:
            raise bad_request("bad_request", "every seeded record needs a positive integer id")
        values.setdefault("system", 0)
        rows.append(values)
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for values in rows:
        by_shape.setdefault(tuple(values), []).append(values)
    try:
        with store.transaction() as connection:
            for shape_rows in by_shape.values():
                connection.execute(sa.insert(definition.clause), shape_rows)
    except ApiError as exc:
        if exc.status == 409:
            raise ApiError(409, "conflict", f"a seeded record conflicts with another ({exc.message})") from None
        raise
    if rows:
        with store.engine.connect() as connection:
            last = connection.execute(sa.select(sa.func.max(definition.c("id")))).scalar()
        _restart_ids(store, table, int(last or 0))
    return len(rows)


def reset(store: Store) -> None:
    """Delete every record and file, and start the ids again at 1."""
    with store.transaction() as connection:
        for definition in store.tables.values():
            connection.execute(sa.delete(definition.clause))
        store.files.clear(connection)
        if store.engine.url.get_backend_name() == "sqlite":
            connection.exec_driver_sql("DELETE FROM sqlite_sequence")
    for table in [*store.tables, store.files.table.name]:
        _restart_ids(store, table, 0)
