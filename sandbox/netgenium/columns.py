"""A column of an emulated table, and how its values travel between JSON, filters and SQLite.

Values are converted and checked here (types, lengths in UTF-16 code units, dates to canonical
UTC text, integers within SQLite's 64-bit range) before the store binds them as parameters; the
only things that ever become SQL text are names, through `quote`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.netgenium.errors import bad_request
from sandbox.netgenium.filter_parser import Literal
from sandbox.netgenium.integers import in_int64, parse_int


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


def sql_type(column: ColumnDef) -> str:
    """The column's type in SQLite (text compares case-insensitively, as SQL Server's default)."""
    if column.type in ("text", "memo"):
        return "TEXT COLLATE NOCASE"
    if column.type == "datetime":
        return "TEXT"
    if column.type == "decimal":
        return "REAL"
    return "INTEGER"


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,80}$")


def quote(identifier: str) -> str:
    """A table, column or index name for SQL text (the only things that are ever SQL text).

    Names reach here only after they were matched against the schema; the pattern is a second
    fence, so even a bug upstream cannot put a value into a statement. (That is why the store's
    statements carry `noqa: S608`: their variable parts are `quote`d names and `?` marks.)
    """
    if not _IDENTIFIER.match(identifier):
        raise ValueError(f"refusing an identifier that is not a plain name: {identifier[:40]!r}")
    return '"' + identifier + '"'


def to_db(table: str, column: ColumnDef, value: Any) -> Any:
    """A JSON value written to the column, as SQLite stores it, or 400 saying why not."""
    where = f"{table}.{column.name}"
    if column.type == "files":
        raise bad_request("bad_value", f"{where} is a files column: attach files through /files")
    if value is None:
        if column.name == "system":
            raise bad_request("bad_value", "system must be true or false")
        return None
    if column.type == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not in_int64(value):
            raise bad_request("bad_value", f"{where} expects a 64-bit integer")
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


def literal_to_db(table: str, column: ColumnDef, literal: Literal) -> Any:
    """A filter literal compared with the column, as SQLite compares it, or 400 `bad_filter`."""
    where = f"{table}.{column.name}"
    value = literal.value
    if column.type == "files":
        raise bad_request("bad_filter", f"{where} is a files column and cannot be filtered")
    if column.type == "int":
        if literal.kind == "string" and isinstance(value, str):
            return parse_int(value, f"{where} (quoted digits)", code="bad_filter")
        if literal.kind != "number" or not isinstance(value, int):
            raise bad_request("bad_filter", f"{where} compares with integers")
        if not in_int64(value):
            raise bad_request("bad_filter", f"{where}: integer out of range of 64 bits")
        return value
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


def from_db(column: ColumnDef, value: Any) -> Any:
    """A stored value as the API answers it."""
    if column.type == "bool":
        return None if value is None else bool(value)
    return value
