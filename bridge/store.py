"""The record API's operations over one NET Genium database (SQL Server, Firebird or SQLite).

Each operation is one transaction on a pooled connection. It checks names against the reflected
catalog (catalog.py), values against their columns (values.py) and builds Core statements
(query.py): that is the whole contract, shared by `python -m bridge serve` and the sandbox's
emulator. The database answers what it enforces (unique indexes, the id sequence), and its
errors become the contract's: a unique violation is 409 `conflict`, a lost connection 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from bridge.catalog import Column, TableDef, reflect
from bridge.continuations import Continuations, query_fingerprint
from bridge.errors import ApiError, bad_request
from bridge.files import FileStore
from bridge.filter_parser import FilterError, parse_filter
from bridge.integers import INT64_MAX, parse_int
from bridge.query import chosen_columns, column_of, order_by, page_select, where
from bridge.values import LocalTime, from_db, int_range, to_db, utf16_len
from crm_core.netgenium.schema_map import SchemaMap

MAX_TOP = 1000
DEFAULT_TOP = 100
MAX_FILENAME = 255
# Firebird's "violation of PRIMARY or UNIQUE KEY constraint" and "attempt to store duplicate value".
_FIREBIRD_UNIQUE = {335544665, 335544349}


def is_unique_violation(exc: DBAPIError) -> bool:
    """Whether the database refused a second equal value of a unique column."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    return bool(_FIREBIRD_UNIQUE & set(getattr(exc.orig, "gds_codes", ()) or ()))


class Store:
    """The contract's operations on one engine, for the mapped tables the database has."""

    def __init__(
        self,
        engine: Engine,
        schema_map: SchemaMap,
        *,
        files: FileStore,
        clock: LocalTime,
        continuations: Continuations | None = None,
    ) -> None:
        self.engine = engine
        self.schema_map = schema_map
        self.files = files
        self.clock = clock
        self.continuations = continuations or Continuations()
        self.tables: dict[str, TableDef] = reflect(engine, schema_map)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; a unique violation is 409, a database gone away 503."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except DBAPIError as exc:
            if is_unique_violation(exc):
                raise ApiError(409, "conflict", "a unique column already holds this value") from None
            if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
                raise ApiError(503, "unavailable", "the database is not reachable right now") from exc
            raise

    def table(self, name: str) -> TableDef:
        """A reachable table, or 400 unknown_table."""
        found = self.tables.get(name)
        if found is None:
            raise bad_request("unknown_table", f"there is no table {name[:80]!r}")
        return found

    def describe(self, name: str) -> dict[str, Any]:
        """The metadata answer (404 when the map or the database has no such table)."""
        found = self.tables.get(name)
        if found is None:
            raise ApiError(404, "not_found", f"there is no table {name[:80]!r}")
        return {"table": name, "columns": [c.describe() for c in found.columns.values()]}

    def ping(self) -> None:
        """Raise 503 unless the database answers."""
        with self.transaction() as connection:
            connection.execute(sa.select(sa.literal(1)))

    # --- reads -------------------------------------------------------------------------------

    def _records(
        self, connection: Connection, table: TableDef, chosen: list[Column], statement: sa.Select[Any]
    ) -> list[dict[str, Any]]:
        stored = [c for c in chosen if c.type != "files"]
        records = [
            {c.name: from_db(c, value, self.clock) for c, value in zip(stored, row, strict=True)}
            for row in connection.execute(statement)
        ]
        for column in (c for c in chosen if c.type == "files"):
            listing = self.files.listing(connection, table.name, column.name, (r["id"] for r in records))
            for record in records:
                record[column.name] = listing[record["id"]]
        return records

    def query(
        self,
        name: str,
        *,
        filter_text: str | None,
        columns: str | None,
        orderby: str | None,
        top: str | None,
        continuation: str | None,
    ) -> dict[str, Any]:
        """One page of matching records and the token for the next page."""
        table = self.table(name)
        size = DEFAULT_TOP if top is None else parse_int(top, "top", minimum=1, maximum=MAX_TOP)
        try:
            conditions = parse_filter(filter_text) if filter_text is not None else []
        except FilterError as exc:
            raise bad_request("bad_filter", str(exc)) from None
        clauses = where(table, conditions, self.clock)
        chosen = chosen_columns(table, columns)
        order = order_by(table, orderby)
        fingerprint = query_fingerprint(name, filter_text, columns, orderby, size)
        offset = self.continuations.offset(continuation, fingerprint, max_offset=INT64_MAX - 2 * MAX_TOP)
        statement = page_select(table, chosen, clauses, order, limit=size + 1, offset=offset)
        with self.transaction() as connection:
            records = self._records(connection, table, chosen, statement)
        token = None
        if len(records) > size:
            records = records[:size]
            token = self.continuations.issue(offset + size, fingerprint)
        return {"records": records, "continuation": token}

    def _id_fits(self, table: TableDef, record_id: int) -> bool:
        low, high = int_range(table.columns["id"])
        return low <= record_id <= high

    def get(self, name: str, record_id: int, columns: str | None) -> dict[str, Any]:
        """One record, or 404."""
        table = self.table(name)
        chosen = chosen_columns(table, columns)
        if self._id_fits(table, record_id):
            statement = page_select(table, chosen, [table.c("id") == record_id], [], limit=1, offset=0)
            with self.transaction() as connection:
                rows = self._records(connection, table, chosen, statement)
            if rows:
                return rows[0]
        raise ApiError(404, "not_found", f"{name} has no record {record_id}")

    def _exists(self, connection: Connection, table: TableDef, record_id: int) -> Any:
        if not self._id_fits(table, record_id):
            return None
        return connection.execute(sa.select(table.c("system")).where(table.c("id") == record_id)).first()

    # --- writes ------------------------------------------------------------------------------

    def write_values(self, table: TableDef, body: Any, *, seeding: bool = False) -> dict[str, Any]:
        """A request body as column values to bind (400 for anything that does not fit)."""
        if not isinstance(body, dict):
            raise bad_request("bad_request", "the body must be a JSON object of column values")
        values: dict[str, Any] = {}
        for key, value in body.items():
            column = column_of(table, key)
            if column.name == "id" and not seeding:
                raise bad_request("bad_request", "id is assigned by NET Genium")
            if column.auto and not seeding:
                continue  # the platform stamps it
            values[column.name] = to_db(table.name, column, value, self.clock)
        if not seeding:
            for column in table.columns.values():
                if column.auto == "modified":
                    values[column.name] = self.clock.now()
        return values

    def insert(self, name: str, body: Any) -> int:
        """Insert a record; its new id."""
        table = self.table(name)
        values = self.write_values(table, body)
        values.setdefault("system", to_db(name, table.columns["system"], False, self.clock))
        try:
            with self.transaction() as connection:
                result = connection.execute(sa.insert(table.clause).values(values).returning(table.c("id")))
                new_id = int(result.scalar_one())
                if new_id < 1:  # a generator past its largest value wraps (Firebird): undo
                    raise ApiError(409, "conflict", f"{name} has no id left: its id generator ran out")
                return new_id
        except (DBAPIError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status != 503:
                raise
            # An id sequence past the largest id the column holds: like an IDENTITY overflow.
            largest = int_range(table.columns["id"])[1]
            if self._last_id(name) == largest:
                raise ApiError(409, "conflict", f"{name} has no id left: it holds the largest, {largest}") from None
            raise

    def _last_id(self, name: str) -> int | None:
        table = self.table(name)
        with self.engine.connect() as connection:
            last = connection.execute(sa.select(sa.func.max(table.c("id")))).scalar()
        return None if last is None else int(last)

    def update(self, name: str, record_id: int, body: Any) -> None:
        """Change columns of a record, or 404."""
        table = self.table(name)
        values = self.write_values(table, body)
        with self.transaction() as connection:
            if self._exists(connection, table, record_id) is None:
                raise ApiError(404, "not_found", f"{name} has no record {record_id}")
            if values:
                connection.execute(sa.update(table.clause).where(table.c("id") == record_id).values(values))

    def delete(self, name: str, record_id: int) -> None:
        """Delete a record and its files; 404 when missing, 409 for a system record."""
        table = self.table(name)
        with self.transaction() as connection:
            row = self._exists(connection, table, record_id)
            if row is None:
                raise ApiError(404, "not_found", f"{name} has no record {record_id}")
            if row[0]:
                raise ApiError(409, "conflict", f"record {record_id} of {name} is a system record")
            connection.execute(sa.delete(table.clause).where(table.c("id") == record_id))
            removed = self.files.delete_record(connection, name, record_id)
        self.files.forget(removed)

    # --- files -------------------------------------------------------------------------------

    def attach(
        self, name: str, record_id: int, column: str | None, filename: str | None, content: bytes
    ) -> dict[str, Any]:
        """Store (or replace, by file name) a file of a record's files column."""
        table = self.table(name)
        if not column:
            raise bad_request("bad_request", "the column parameter is required")
        files_column = column_of(table, column)
        if files_column.type != "files":
            raise bad_request("bad_request", f"{name}.{files_column.name} is not a files column")
        if not filename or utf16_len(filename) > MAX_FILENAME or filename.strip(" .") != filename:
            raise bad_request("bad_request", f"filename must be 1..{MAX_FILENAME} characters, not padded")
        if any(ch in filename for ch in '/\\:*?"<>|') or any(ord(ch) < 32 for ch in filename):
            raise bad_request("bad_request", "filename must not hold path separators or control characters")
        with self.transaction() as connection:
            if self._exists(connection, table, record_id) is None:
                raise ApiError(404, "not_found", f"{name} has no record {record_id}")
            file_id, stored_as, replaced = self.files.put(
                connection, name, record_id, files_column.name, filename, content
            )
        self.files.forget(replaced)
        return {"file_id": file_id, "filename": stored_as, "size": len(content)}

    def file_content(self, name: str, record_id: int, file_id: int) -> bytes:
        """A stored file's bytes, or 404."""
        self.table(name)
        with self.transaction() as connection:
            content = self.files.content(connection, name, record_id, file_id)
        if content is None:
            raise ApiError(404, "not_found", f"record {record_id} of {name} has no file {file_id}")
        return content
