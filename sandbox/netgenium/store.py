"""The emulator's database: NET Genium `ng_` tables in SQLite, built from the schema map.

It behaves like the MS SQL database behind a NET Genium installation where the service can tell:
every table has the system columns (id, pid, pform, userid, system); text columns refuse values
longer than their length (counted in UTF-16 code units, as `nvarchar` does) instead of cutting
them; text compares case-insensitively (SQL Server's default collation); unique columns refuse a
second equal value; a `system` record may not be deleted; a column marked `auto = "modified"` is
stamped on every save. Identifiers are checked against the schema and values are only ever bound
as parameters, never written into SQL text. Integers from the request are ASCII digits within 64
bits (integers.py), and a query's continuation token is signed by this process (continuations.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from crm_core.netgenium.schema_map import SYSTEM_COLUMNS, SchemaMap
from sandbox.netgenium.columns import (
    ColumnDef,
    from_db,
    literal_to_db,
    now_text,
    quote,
    sql_type,
    to_db,
    utf16_len,
)
from sandbox.netgenium.continuations import Continuations, query_fingerprint
from sandbox.netgenium.errors import ApiError, bad_request
from sandbox.netgenium.filter_parser import Condition, FilterError, parse_filter
from sandbox.netgenium.integers import INT64_MAX, parse_int

MAX_TOP = 1000
DEFAULT_TOP = 100
MAX_FILENAME = 255
_OPERATORS = {"eq": "=", "ge": ">=", "le": "<="}


class Store:
    """All tables of one emulated installation in one SQLite database."""

    def __init__(
        self,
        path: str,
        schema_map: SchemaMap,
        *,
        connect: Callable[[str], sqlite3.Connection] | None = None,
    ) -> None:
        self.db = (connect or (lambda p: sqlite3.connect(p, isolation_level=None)))(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=OFF")
        self.continuations = Continuations()
        self.tables: dict[str, dict[str, ColumnDef]] = {}
        for table, columns in schema_map.tables().items():
            defs = {name: ColumnDef(name, type_, system=True) for name, type_ in SYSTEM_COLUMNS.items()}
            for column in columns.values():
                defs[column.name] = ColumnDef(
                    column.name,
                    column.type,
                    column.max_length,
                    column.unique,
                    column.indexed,
                    column.auto,
                )
            self.tables[table] = defs
        self._create()

    # --- schema ------------------------------------------------------------------------------

    def _create(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS _files (id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, "
            "record_id INTEGER NOT NULL, col TEXT NOT NULL, filename TEXT NOT NULL COLLATE NOCASE, "
            "content BLOB NOT NULL, UNIQUE (tbl, record_id, col, filename))"
        )
        for table, columns in self.tables.items():
            stored = [c for c in columns.values() if c.type != "files" and c.name != "id"]
            body = ", ".join(
                ["id INTEGER PRIMARY KEY AUTOINCREMENT"]
                + [
                    f"{quote(c.name)} {sql_type(c)}" + (" NOT NULL DEFAULT 0" if c.name == "system" else "")
                    for c in stored
                ]
            )
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body})")
            present = {row[1] for row in self.db.execute(f"PRAGMA table_info({quote(table)})")}
            for column in stored:
                if column.name not in present:
                    self.db.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column.name)} {sql_type(column)}")
            for column in stored:
                if column.unique or column.indexed:
                    kind = "UNIQUE INDEX" if column.unique else "INDEX"
                    index = quote(f"ix_{table}_{column.name}")
                    self.db.execute(f"CREATE {kind} IF NOT EXISTS {index} ON {quote(table)} ({quote(column.name)})")

    def table(self, name: str) -> dict[str, ColumnDef]:
        """The table's columns, or 400 unknown_table."""
        columns = self.tables.get(name)
        if columns is None:
            raise bad_request("unknown_table", f"there is no table {name[:80]!r}")
        return columns

    def column(self, table: str, name: str) -> ColumnDef:
        """A column of the table, or 400 unknown_column."""
        column = self.table(table).get(name.strip().lower())
        if column is None:
            raise bad_request("unknown_column", f"{table} has no column {name.strip()[:80]!r}")
        return column

    def describe(self, table: str) -> dict[str, Any]:
        """The metadata answer (404 when there is no such table)."""
        if table not in self.tables:
            raise ApiError(404, "not_found", f"there is no table {table[:80]!r}")
        return {"table": table, "columns": [c.describe() for c in self.tables[table].values()]}

    def reset(self) -> None:
        """Delete every record and file (the admin API's reset)."""
        for table in self.tables:
            self.db.execute(f"DELETE FROM {quote(table)}")  # noqa: S608
        self.db.execute("DELETE FROM _files")
        self.db.execute("DELETE FROM sqlite_sequence")

    # --- queries -----------------------------------------------------------------------------

    def _where(self, table: str, conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for condition in conditions:
            column = self.column(table, condition.column)
            name = quote(column.name)
            if condition.op == "eq" and condition.values[0].kind == "null":
                if column.type == "files":
                    raise bad_request("bad_filter", f"{table}.{column.name} cannot be filtered")
                clauses.append(f"{name} IS NULL")
                continue
            values = [literal_to_db(table, column, v) for v in condition.values]
            if condition.op == "in":
                clauses.append(f"{name} IN ({','.join('?' * len(values))})")
            else:
                clauses.append(f"{name} {_OPERATORS[condition.op]} ?")
            params.extend(values)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _columns(self, table: str, columns: str | None) -> list[ColumnDef]:
        defs = self.table(table)
        if columns is None or not columns.strip():
            return list(defs.values())
        chosen = [defs["id"]]
        for name in columns.split(","):
            column = self.column(table, name)
            if column not in chosen:
                chosen.append(column)
        return chosen

    def _orderby(self, table: str, orderby: str | None) -> str:
        terms: list[str] = []
        names: set[str] = set()
        for part in (orderby or "").split(","):
            words = part.split()
            if not words:
                if orderby and orderby.strip():
                    raise bad_request("bad_request", "orderby has an empty term")
                continue
            if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise bad_request("bad_request", f"orderby term {part.strip()[:60]!r} is not `column [asc|desc]`")
            column = self.column(table, words[0])
            if column.type == "files":
                raise bad_request("bad_request", f"{table}.{column.name} cannot be ordered by")
            direction = "DESC" if len(words) == 2 and words[1].lower() == "desc" else "ASC"
            terms.append(f"{quote(column.name)} {direction}")
            names.add(column.name)
        if "id" not in names:
            terms.append('"id" ASC')
        return " ORDER BY " + ", ".join(terms)

    def _files_of(self, table: str, column: str, ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        id_list = list(ids)
        out: dict[int, list[dict[str, Any]]] = {record_id: [] for record_id in id_list}
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            rows = self.db.execute(
                "SELECT id, record_id, filename, length(content) FROM _files WHERE tbl = ? AND col = ? "  # noqa: S608
                f"AND record_id IN ({','.join('?' * len(chunk))}) ORDER BY id",
                [table, column, *chunk],
            )
            for file_id, record_id, filename, size in rows:
                out[record_id].append({"file_id": file_id, "filename": filename, "size": size})
        return out

    def _rows(self, table: str, chosen: list[ColumnDef], sql_tail: str, params: list[Any]) -> list[dict[str, Any]]:
        stored = [c for c in chosen if c.type != "files"]
        select = ", ".join(quote(c.name) for c in stored)
        rows = self.db.execute(f"SELECT {select} FROM {quote(table)}{sql_tail}", params).fetchall()  # noqa: S608
        records = [{c.name: from_db(c, value) for c, value in zip(stored, row, strict=True)} for row in rows]
        for column in (c for c in chosen if c.type == "files"):
            files = self._files_of(table, column.name, (r["id"] for r in records))
            for record in records:
                record[column.name] = files[record["id"]]
        return records

    def query(
        self,
        table: str,
        *,
        filter_text: str | None,
        columns: str | None,
        orderby: str | None,
        top: str | None,
        continuation: str | None,
    ) -> dict[str, Any]:
        """One page of matching records and the token for the next page."""
        self.table(table)
        size = DEFAULT_TOP if top is None else parse_int(top, "top", minimum=1, maximum=MAX_TOP)
        try:
            conditions = parse_filter(filter_text) if filter_text is not None else []
        except FilterError as exc:
            raise bad_request("bad_filter", str(exc)) from None
        where, params = self._where(table, conditions)
        chosen = self._columns(table, columns)
        order = self._orderby(table, orderby)
        fingerprint = query_fingerprint(table, filter_text, columns, orderby, size)
        offset = self.continuations.offset(continuation, fingerprint, max_offset=INT64_MAX - 2 * MAX_TOP)
        records = self._rows(table, chosen, f"{where}{order} LIMIT ? OFFSET ?", [*params, size + 1, offset])
        token = None
        if len(records) > size:
            records = records[:size]
            token = self.continuations.issue(offset + size, fingerprint)
        return {"records": records, "continuation": token}

    def get(self, table: str, record_id: int, columns: str | None) -> dict[str, Any]:
        """One record, or 404."""
        chosen = self._columns(table, columns)
        rows = self._rows(table, chosen, ' WHERE "id" = ?', [record_id])
        if not rows:
            raise ApiError(404, "not_found", f"{table} has no record {record_id}")
        return rows[0]

    def exists(self, table: str, record_id: int) -> bool:
        """Whether the record exists."""
        row = self.db.execute(f'SELECT 1 FROM {quote(self._known(table))} WHERE "id" = ?', [record_id])  # noqa: S608
        return row.fetchone() is not None

    def _known(self, table: str) -> str:
        self.table(table)
        return table

    # --- writes ------------------------------------------------------------------------------

    def _write_values(self, table: str, body: Any, *, seeding: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("bad_request", "the body must be a JSON object of column values")
        values: dict[str, Any] = {}
        for name, value in body.items():
            column = self.column(table, name)
            if column.name == "id" and not seeding:
                raise bad_request("bad_request", "id is assigned by NET Genium")
            if column.auto and not seeding:
                continue  # the platform stamps it
            values[column.name] = to_db(table, column, value)
        if not seeding:
            for column in self.tables[table].values():
                if column.auto == "modified":
                    values[column.name] = now_text()
        return values

    def _execute_write(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ApiError(409, "conflict", f"a unique column already holds this value ({exc})") from None

    def insert(self, table: str, body: Any) -> int:
        """Insert a record; its new id."""
        values = self._write_values(self._known(table), body)
        values.setdefault("system", 0)
        names = ", ".join(quote(name) for name in values)
        marks = ", ".join("?" * len(values))
        try:
            cursor = self._execute_write(
                f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})",  # noqa: S608
                list(values.values()),
            )
        except sqlite3.OperationalError as exc:
            # AUTOINCREMENT after the largest 64-bit id: SQLITE_FULL, like an IDENTITY overflow.
            last = self.db.execute(f'SELECT max("id") FROM {quote(table)}').fetchone()[0]  # noqa: S608
            if exc.sqlite_errorname != "SQLITE_FULL" or last != INT64_MAX:
                raise
            raise ApiError(409, "conflict", f"{table} has no id left: it holds the largest, {INT64_MAX}") from None
        return int(cursor.lastrowid or 0)

    def update(self, table: str, record_id: int, body: Any) -> None:
        """Change columns of a record, or 404."""
        values = self._write_values(self._known(table), body)
        if not self.exists(table, record_id):
            raise ApiError(404, "not_found", f"{table} has no record {record_id}")
        if not values:
            return
        assignments = ", ".join(f"{quote(name)} = ?" for name in values)
        self._execute_write(
            f'UPDATE {quote(table)} SET {assignments} WHERE "id" = ?',  # noqa: S608
            [*values.values(), record_id],
        )

    def delete(self, table: str, record_id: int) -> None:
        """Delete a record and its files; 404 when missing, 409 for a system record."""
        row = self.db.execute(
            f'SELECT "system" FROM {quote(self._known(table))} WHERE "id" = ?',  # noqa: S608
            [record_id],
        ).fetchone()
        if row is None:
            raise ApiError(404, "not_found", f"{table} has no record {record_id}")
        if row[0]:
            raise ApiError(409, "conflict", f"record {record_id} of {table} is a system record")
        self.db.execute(f'DELETE FROM {quote(table)} WHERE "id" = ?', [record_id])  # noqa: S608
        self.db.execute("DELETE FROM _files WHERE tbl = ? AND record_id = ?", [table, record_id])

    def seed(self, table: str, records: Any) -> int:
        """Insert records with the ids (and any system or stamped columns) they carry."""
        self.table(table)
        if not isinstance(records, list):
            raise bad_request("bad_request", "records must be a list")
        rows: list[dict[str, Any]] = []
        for record in records:
            values = self._write_values(table, record, seeding=True)
            if not isinstance(values.get("id"), int) or values["id"] < 1:
                raise bad_request("bad_request", "every seeded record needs a positive integer id")
            values.setdefault("system", 0)
            rows.append(values)
        by_shape: dict[tuple[str, ...], list[list[Any]]] = {}
        for values in rows:
            by_shape.setdefault(tuple(values), []).append(list(values.values()))
        self.db.execute("BEGIN")
        try:
            for shape, params in by_shape.items():
                names = ", ".join(quote(name) for name in shape)
                marks = ", ".join("?" * len(shape))
                self.db.executemany(f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})", params)  # noqa: S608
        except sqlite3.IntegrityError as exc:
            self.db.execute("ROLLBACK")
            raise ApiError(409, "conflict", f"a seeded record conflicts with another ({exc})") from None
        self.db.execute("COMMIT")
        return len(rows)

    # --- files -------------------------------------------------------------------------------

    def _files_column(self, table: str, column: str | None) -> ColumnDef:
        if not column:
            raise bad_request("bad_request", "the column parameter is required")
        found = self.column(table, column)
        if found.type != "files":
            raise bad_request("bad_request", f"{table}.{found.name} is not a files column")
        return found

    def attach(
        self, table: str, record_id: int, column: str | None, filename: str | None, content: bytes
    ) -> dict[str, Any]:
        """Store (or replace, by file name) a file of a record's files column."""
        files_column = self._files_column(table, column)
        if not filename or utf16_len(filename) > MAX_FILENAME or filename.strip(" .") != filename:
            raise bad_request("bad_request", f"filename must be 1..{MAX_FILENAME} characters, not padded")
        if any(ch in filename for ch in '/\\:*?"<>|') or any(ord(ch) < 32 for ch in filename):
            raise bad_request("bad_request", "filename must not hold path separators or control characters")
        if not self.exists(table, record_id):
            raise ApiError(404, "not_found", f"{table} has no record {record_id}")
        self.db.execute(
            "INSERT INTO _files (tbl, record_id, col, filename, content) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (tbl, record_id, col, filename) DO UPDATE SET content = excluded.content",
            [table, record_id, files_column.name, filename, content],
        )
        row = self.db.execute(
            "SELECT id, filename FROM _files WHERE tbl = ? AND record_id = ? AND col = ? AND filename = ?",
            [table, record_id, files_column.name, filename],
        ).fetchone()
        return {"file_id": row[0], "filename": row[1], "size": len(content)}

    def file_content(self, table: str, record_id: int, file_id: int) -> bytes:
        """A stored file's bytes, or 404."""
        self.table(table)
        row = self.db.execute(
            "SELECT content FROM _files WHERE tbl = ? AND record_id = ? AND id = ?",
            [table, record_id, file_id],
        ).fetchone()
        if row is None:
            raise ApiError(404, "not_found", f"record {record_id} of {table} has no file {file_id}")
        return bytes(row[0])
