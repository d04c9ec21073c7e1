"""What the database's own catalog says about the mapped tables: the only names a request can reach.

The bridge reflects each table the schema map names (SQLAlchemy's inspector reads the catalog of
SQL Server, Firebird or SQLite) and keeps, per table, the system columns and the mapped columns
that really exist, with the types and lengths the database declares. So the metadata endpoint
reports what the installation has (and `crmservice netgenium check` can say what is missing), and
every other table or column is simply not there: a request naming it gets a 404 or 400, never SQL.

Statements are built over `sa.table()`/`sa.column()` objects made here with plain types (no
collation, no dialect-specific class), so what is bound is typed as the contract means it and a
dialect's bind casts stay valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeEngine

from crm_core.netgenium.schema_map import SYSTEM_COLUMNS, ColumnMap, SchemaMap

INT_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
# A text column longer than this (or without a length) is a memo (nvarchar(max), BLOB SUB_TYPE TEXT).
MAX_TEXT_LENGTH = 4000
_CI_COLLATION_MARKERS = ("_ci", "nocase", "unicode_ci")


@dataclass(frozen=True)
class Column:
    """A reachable column: its contract type and what the catalog says about it."""

    name: str
    type: str
    max_length: int | None = None
    nullable: bool = True
    unique: bool = False
    system: bool = False
    auto: str | None = None
    int_bits: int = 64
    case_insensitive: bool = True
    stored_bool_as_int: bool = False

    def describe(self) -> dict[str, Any]:
        """The column as the metadata endpoint shows it."""
        return {
            "name": self.name,
            "type": self.type,
            "max_length": self.max_length,
            "nullable": self.nullable,
            "unique": self.unique,
            "system": self.system,
        }

    def sa_type(self) -> TypeEngine[Any]:
        """The type values are bound with: plain, so every dialect renders it as it should."""
        if self.type == "int" or self.stored_bool_as_int:
            return {16: sa.SmallInteger(), 32: sa.Integer()}.get(self.int_bits, sa.BigInteger())
        if self.type == "text":
            return sa.Unicode(self.max_length)
        if self.type == "memo":
            return sa.UnicodeText()
        if self.type == "datetime":
            return sa.DateTime()
        if self.type == "bool":
            return sa.Boolean()
        if self.type == "decimal":
            return sa.Float()
        return sa.UnicodeText()


@dataclass(frozen=True)
class TableDef:
    """A reachable table: its columns by name, and the clause statements are built over."""

    name: str
    columns: dict[str, Column]
    clause: sa.TableClause = field(compare=False)

    def stored(self) -> list[Column]:
        """The columns that hold values in the table (files are kept by the files store)."""
        return [c for c in self.columns.values() if c.type != "files"]

    def c(self, name: str) -> sa.ColumnClause[Any]:
        """The column as an expression."""
        column: sa.ColumnClause[Any] = self.clause.c[name]
        return column


def _contract_type(db_type: TypeEngine[Any], mapped: str | None) -> tuple[str, int | None, int]:
    """(contract type, max_length, int bits) of a catalog type; the map decides only compatible pairs."""
    if mapped == "files":
        return "files", None, 64
    if isinstance(db_type, sa.Boolean):
        return "bool", None, 64
    if isinstance(db_type, sa.Integer):
        name = type(db_type).__visit_name__.lower()
        bits = INT_BITS.get(name, 16 if "small" in name else 64 if "big" in name else 32)
        return ("bool" if mapped == "bool" else "int"), None, bits
    if isinstance(db_type, sa.DateTime | sa.Date):
        return "datetime", None, 64
    if isinstance(db_type, sa.Numeric):  # Float is a Numeric
        scale = getattr(db_type, "scale", None)
        if scale == 0 and not isinstance(db_type, sa.Float):
            return ("bool" if mapped == "bool" else "int"), None, 64
        return "decimal", None, 64
    if isinstance(db_type, sa.String):  # Text, Unicode, NVARCHAR, CHAR ...
        length = db_type.length
        if isinstance(db_type, sa.Text) or length is None or length > MAX_TEXT_LENGTH or length < 0:
            return "memo", None, 64
        return "text", length, 64
    return type(db_type).__visit_name__.lower(), None, 64


def _case_insensitive(db_type: TypeEngine[Any], dialect: str) -> bool:
    collation = getattr(db_type, "collation", None)
    if collation:
        return any(marker in collation.lower() for marker in _CI_COLLATION_MARKERS)
    # No collation named: SQL Server reports the column's own, so none means the database
    # default (case-insensitive unless the administrator chose otherwise); elsewhere assume binary.
    return dialect == "mssql"


def _unique_columns(inspector: sa.Inspector, table: str) -> set[str]:
    unique = {str(c).lower() for c in inspector.get_pk_constraint(table).get("constrained_columns", [])}
    for index in inspector.get_indexes(table):
        names = [str(n).lower() for n in index.get("column_names", []) if n]
        if index.get("unique") and len(names) == 1:
            unique.add(names[0])
    for constraint in inspector.get_unique_constraints(table):
        names = [str(n).lower() for n in constraint.get("column_names", [])]
        if len(names) == 1:
            unique.add(names[0])
    return unique


def reflect_table(engine: Engine, table: str, mapped: dict[str, ColumnMap]) -> TableDef | None:
    """The reachable part of one table, or None when the database has no such table."""
    inspector = sa.inspect(engine)
    if not inspector.has_table(table):
        return None
    infos = [(str(i["name"]), i["type"], bool(i.get("nullable", True))) for i in inspector.get_columns(table)]
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        infos = _sqlite_collations(engine, table, infos)
    return build_table(table, infos, _unique_columns(inspector, table), mapped, backend)


def _sqlite_collations(
    engine: Engine, table: str, infos: list[tuple[str, TypeEngine[Any], bool]]
) -> list[tuple[str, TypeEngine[Any], bool]]:
    """SQLite's reflection drops a column's COLLATE: read it from the table's own DDL."""
    with engine.connect() as connection:
        ddl = connection.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": table}
        ).scalar()
    out = []
    for name, db_type, nullable in infos:
        pattern = rf'(?im)^\s*"?{re.escape(name)}"?\s+[^,\n]*\bCOLLATE\s+"?(\w+)'
        found = re.search(pattern, str(ddl or ""))
        if found and isinstance(db_type, sa.String) and not db_type.collation:
            db_type = type(db_type)(length=db_type.length, collation=found.group(1))
        out.append((name, db_type, nullable))
    return out


def build_table(
    table: str,
    infos: list[tuple[str, TypeEngine[Any], bool]],
    unique: set[str],
    mapped: dict[str, ColumnMap],
    backend: str,
) -> TableDef | None:
    """A table from its catalog columns (name, type, nullable): only system and mapped ones are kept."""
    columns: dict[str, Column] = {}
    for raw_name, db_type, nullable in infos:
        name = raw_name.lower()
        column_map = mapped.get(name)
        if name not in SYSTEM_COLUMNS and column_map is None:
            continue  # not in the map: not reachable
        wanted = SYSTEM_COLUMNS.get(name) or (column_map.type if column_map else None)
        contract, length, bits = _contract_type(db_type, wanted)
        if backend == "sqlite":
            bits = 64  # every SQLite integer is 64-bit, whatever the declared type
        columns[name] = Column(
            name=name,
            type=contract,
            max_length=length,
            nullable=nullable and name != "id",
            unique=name in unique,
            system=name in SYSTEM_COLUMNS,
            auto=column_map.auto if column_map else None,
            int_bits=bits,
            case_insensitive=_case_insensitive(db_type, backend),
            stored_bool_as_int=contract == "bool" and not isinstance(db_type, sa.Boolean),
        )
    if "id" not in columns:
        return None  # not an edit form's table
    ordered = {name: columns[name] for name in (*SYSTEM_COLUMNS, *mapped) if name in columns}
    clause = sa.table(table, *(sa.column(c.name, c.sa_type()) for c in ordered.values() if c.type != "files"))
    return TableDef(table, ordered, clause)


def reflect(engine: Engine, schema_map: SchemaMap) -> dict[str, TableDef]:
    """Every mapped table the database has, with its reachable columns."""
    tables: dict[str, TableDef] = {}
    for table, mapped in schema_map.tables().items():
        found = reflect_table(engine, table, {c.name: c for c in mapped.values()})
        if found is not None:
            tables[table] = found
    return tables
