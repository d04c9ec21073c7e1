"""The emulator's database: NET Genium `ng_` tables in SQLite, built from the schema map.

It behaves like the MS SQL database behind a NET Genium installation where the service can tell:
every table has the system columns (id, pid, pform, userid, system); text columns refuse values
longer than their length (counted in UTF-16 code units, as `nvarchar` does) instead of cutting
them; text compares case-insensitively (SQL Server's default collation); unique columns refuse a
second equal value; a `system` record may not be deleted; a column marked `auto = "modified"` is
stamped on every save. Identifiers are checked against the schema and values are only ever bound
as parameters, never written into SQL text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_core.netgenium.schema_map import SYSTEM_COLUMNS, SchemaMap
from sandbox.netgenium.filter_parser import Condition, FilterError, Literal, parse_filter

MAX_TOP = 1000
DEFAULT_TOP = 100
MAX_FILENAME = 255
_OPERATORS = {"eq": "=", "ge": ">=", "le": "<="}


class ApiError(Exception):
    """An answer of the contract's error form."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(code: str, message: str) -> ApiError:
    """A 400 with the contract's code."""
    return ApiError(400, code, message)


@dataclass(frozen=True)
class ColumnDef:
    """A column of an emulated table."""

    name: str
    type: str
    max_length: int | None = None
    unique: bool = False
    indexed: bool = False
    auto: str | None = None
    system: bool = False

    def describe(self) -> dict[str, Any]:
        """The column as the metadata endpoint shows it."""
        return {
            "name": self.name,
            "type": self.type,
            "max_length": self.max_length,
            "nullable": self.name not in ("id", "system"),
            "unique": self.unique or self.name == "id",
            "system": self.system,
        }


def utf16_len(value: str) -> int:
    """The length `nvarchar` counts."""
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def canonical_datetime(text: str) -> str:
    """ISO 8601 in UTC with milliseconds and Z (naive means UTC), so text order is time order."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 date and time: {text[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


def now_text() -> str:
    """Now, as the platform stamps it."""
    return canonical_datetime(datetime.now(UTC).isoformat())


def _sql_type(column: ColumnDef) -> str:
    if column.type in ("text", "memo"):
        return "TEXT COLLATE NOCASE"
    if column.type == "datetime":
        return "TEXT"
    if column.type == "decimal":
        return "REAL"
    return "INTEGER"


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,80}$")


def _quote(identifier: str) -> str:
    """A table, column or index name for SQL text (the only things that are ever SQL text).

    Names reach here only after they were matched against the schema; the pattern is a second
    fence, so even a bug upstream cannot put a value into a statement. (That is why the
    statements below carry `noqa: S608`: their variable parts are `_quote`d names and `?` marks.)
    """
    if not _IDENTIFIER.match(identifier):
        raise ValueError(f"refusing an identifier that is not a plain name: {identifier[:40]!r}")
    return '"' + identifier + '"'


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
                    f"{_quote(c.name)} {_sql_type(c)}" + (" NOT NULL DEFAULT 0" if c.name == "system" else "")
                    for c in stored
                ]
            )
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {_quote(table)} ({body})")
            present = {row[1] for row in self.db.execute(f"PRAGMA table_info({_quote(table)})")}
            for column in stored:
                if column.name not in present:
                    self.db.execute(f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(column.name)} {_sql_type(column)}")
            for column in stored:
                if column.unique or column.indexed:
                    kind = "UNIQUE INDEX" if column.unique else "INDEX"
                    index = _quote(f"ix_{table}_{column.name}")
                    self.db.execute(f"CREATE {kind} IF NOT EXISTS {index} ON {_quote(table)} ({_quote(column.name)})")

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
            self.db.execute(f"DELETE FROM {_quote(table)}")  # noqa: S608
        self.db.execute("DELETE FROM _files")
        self.db.execute("DELETE FROM sqlite_sequence")

    # --- values ------------------------------------------------------------------------------

    def _to_db(self, table: str, column: ColumnDef, value: Any) -> Any:
        where = f"{table}.{column.name}"
        if column.type == "files":
            raise bad_request("bad_value", f"{where} is a files column: attach files through /files")
        if value is None:
            if column.name == "system":
                raise bad_request("bad_value", "system must be true or false")
            return None
        if column.type == "int":
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
                raise bad_request("bad_value", f"{where} expects an integer")
            return value
        if column.type in ("text", "memo"):
            if not isinstance(value, str):
                raise bad_request("bad_value", f"{where} expects a string")
            if column.max_length is not None and utf16_len(value) > column.max_length:
                raise bad_request(
                    "value_too_long",
                    f"{where} holds at most {column.max_length} characters (String or binary data would be truncated)",
                )
            return value
        if column.type == "datetime":
            if not isinstance(value, str):
                raise bad_request("bad_value", f"{where} expects an ISO 8601 date and time")
            try:
                return canonical_datetime(value)
            except ValueError as exc:
                raise bad_request("bad_value", f"{where}: {exc}") from None
        if column.type == "bool":
            if not isinstance(value, bool):
                raise bad_request("bad_value", f"{where} expects true or false")
            return int(value)
        if column.type == "decimal":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad_request("bad_value", f"{where} expects a number")
            return float(value)
        raise bad_request("bad_value", f"{where} has a type the emulator does not know")

    def _literal_to_db(self, table: str, column: ColumnDef, literal: Literal) -> Any:
        where = f"{table}.{column.name}"
        value = literal.value
        if column.type == "files":
            raise bad_request("bad_filter", f"{where} is a files column and cannot be filtered")
        if column.type == "int":
            if literal.kind == "number" and isinstance(value, int):
                parsed = value
            elif literal.kind == "string" and isinstance(value, str) and value.lstrip("-").isdigit():
                parsed = int(value)
            else:
                raise bad_request("bad_filter", f"{where} compares with integers")
            if abs(parsed) >= 2**63:
                raise bad_request("bad_filter", f"{where}: integer out of range")
            return parsed
        if column.type == "decimal":
            if literal.kind == "number" and isinstance(value, int | float):
                return float(value)
            raise bad_request("bad_filter", f"{where} compares with numbers")
        if column.type == "bool":
            if literal.kind == "bool" or (literal.kind == "number" and value in (0, 1)):
                return int(bool(value))
            raise bad_request("bad_filter", f"{where} compares with true or false")
        if literal.kind != "string" or not isinstance(value, str):
            raise bad_request("bad_filter", f"{where} compares with quoted strings")
        if column.type == "datetime":
            try:
                return canonical_datetime(value)
            except ValueError as exc:
                raise bad_request("bad_filter", f"{where}: {exc}") from None
        return value

    def _from_db(self, column: ColumnDef, value: Any) -> Any:
        if column.type == "bool":
            return None if value is None else bool(value)
        return value

    # --- queries -----------------------------------------------------------------------------

    def _where(self, table: str, conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for condition in conditions:
            column = self.column(table, condition.column)
            name = _quote(column.name)
            if condition.op == "eq" and condition.values[0].kind == "null":
                if column.type == "files":
                    raise bad_request("bad_filter", f"{table}.{column.name} cannot be filtered")
                clauses.append(f"{name} IS NULL")
                continue
            values = [self._literal_to_db(table, column, v) for v in condition.values]
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
            terms.append(f"{_quote(column.name)} {direction}")
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
        select = ", ".join(_quote(c.name) for c in stored)
        rows = self.db.execute(f"SELECT {select} FROM {_quote(table)}{sql_tail}", params).fetchall()  # noqa: S608
        records = [{c.name: self._from_db(c, value) for c, value in zip(stored, row, strict=True)} for row in rows]
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
        try:
            size = DEFAULT_TOP if top is None else int(top)
        except ValueError:
            raise bad_request("bad_request", "top must be an integer") from None
        if not 1 <= size <= MAX_TOP:
            raise bad_request("bad_request", f"top must be 1..{MAX_TOP}")
        try:
            conditions = parse_filter(filter_text) if filter_text is not None else []
        except FilterError as exc:
            raise bad_request("bad_filter", str(exc)) from None
        where, params = self._where(table, conditions)
        chosen = self._columns(table, columns)
        order = self._orderby(table, orderby)
        fingerprint = hashlib.sha256(json.dumps([table, filter_text, columns, orderby, size]).encode()).hexdigest()[:16]
        offset = self._offset(continuation, fingerprint)
        records = self._rows(table, chosen, f"{where}{order} LIMIT ? OFFSET ?", [*params, size + 1, offset])
        token = None
        if len(records) > size:
            records = records[:size]
            raw = json.dumps({"o": offset + size, "h": fingerprint}).encode()
            token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return {"records": records, "continuation": token}

    @staticmethod
    def _offset(continuation: str | None, fingerprint: str) -> int:
        if continuation is None:
            return 0
        try:
            padded = continuation + "=" * (-len(continuation) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            offset = data["o"]
            valid = isinstance(offset, int) and offset >= 0 and data["h"] == fingerprint
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
            valid = False
        if not valid:
            raise bad_request("bad_continuation", "the continuation token is not one this query handed out")
        return int(offset)

    def get(self, table: str, record_id: int, columns: str | None) -> dict[str, Any]:
        """One record, or 404."""
        chosen = self._columns(table, columns)
        rows = self._rows(table, chosen, ' WHERE "id" = ?', [record_id])
        if not rows:
            raise ApiError(404, "not_found", f"{table} has no record {record_id}")
        return rows[0]

    def exists(self, table: str, record_id: int) -> bool:
        """Whether the record exists."""
        row = self.db.execute(f'SELECT 1 FROM {_quote(self._known(table))} WHERE "id" = ?', [record_id])  # noqa: S608
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
            values[column.name] = self._to_db(table, column, value)
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
        names = ", ".join(_quote(name) for name in values)
        marks = ", ".join("?" * len(values))
        cursor = self._execute_write(
            f"INSERT INTO {_quote(table)} ({names}) VALUES ({marks})",  # noqa: S608
            list(values.values()),
        )
        return int(cursor.lastrowid or 0)

    def update(self, table: str, record_id: int, body: Any) -> None:
        """Change columns of a record, or 404."""
        values = self._write_values(self._known(table), body)
        if not self.exists(table, record_id):
            raise ApiError(404, "not_found", f"{table} has no record {record_id}")
        if not values:
            return
        assignments = ", ".join(f"{_quote(name)} = ?" for name in values)
        self._execute_write(
            f'UPDATE {_quote(table)} SET {assignments} WHERE "id" = ?',  # noqa: S608
            [*values.values(), record_id],
        )

    def delete(self, table: str, record_id: int) -> None:
        """Delete a record and its files; 404 when missing, 409 for a system record."""
        row = self.db.execute(
            f'SELECT "system" FROM {_quote(self._known(table))} WHERE "id" = ?',  # noqa: S608
            [record_id],
        ).fetchone()
        if row is None:
            raise ApiError(404, "not_found", f"{table} has no record {record_id}")
        if row[0]:
            raise ApiError(409, "conflict", f"record {record_id} of {table} is a system record")
        self.db.execute(f'DELETE FROM {_quote(table)} WHERE "id" = ?', [record_id])  # noqa: S608
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
                names = ", ".join(_quote(name) for name in shape)
                marks = ", ".join("?" * len(shape))
                self.db.executemany(f"INSERT INTO {_quote(table)} ({names}) VALUES ({marks})", params)  # noqa: S608
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
