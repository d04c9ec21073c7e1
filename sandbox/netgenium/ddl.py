"""NET Genium-like tables for the schema map, in SQLite or Firebird (or, compiled, SQL Server).

What an installation's database looks like where the service can tell: one table `ng_<name>` per
edit form with the system columns `id` (64-bit, generated), `pid`, `pform`, `userid` (int ids) and
`system`; text as `nvarchar`-like columns with a case-insensitive collation (NOCASE in SQLite,
UNICODE_CI in Firebird), memo as unbounded text, links to other records as int ids, indexes on
the `indexed` columns and unique indexes on the `unique` ones, and the e-mail and calendar
activities sharing one table. The bridge reflects these tables as it reflects a real installation.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_core.netgenium.schema_map import ColumnMap, SchemaMap

# sqlalchemy-firebird names its dialect "firebird.firebird"; a variant is keyed by that name.
_CI = {"sqlite": "NOCASE", "firebird": "UNICODE_CI", "firebird.firebird": "UNICODE_CI"}


def _text(length: int | None) -> sa.types.TypeEngine[Any]:
    base: sa.types.TypeEngine[Any] = sa.Unicode(length) if length else sa.UnicodeText()
    for dialect, collation in _CI.items():
        if length or dialect == "sqlite":
            variant = sa.Unicode(length, collation=collation) if length else sa.UnicodeText(collation=collation)
            base = base.with_variant(variant, dialect)
    return base


def _type(column: ColumnMap) -> sa.types.TypeEngine[Any]:
    if column.type == "text":
        return _text(column.max_length)
    if column.type == "memo":
        return _text(None)
    if column.type == "files":
        return _text(255)  # the file names, as NET Genium shows them; the bytes are kept elsewhere
    plain: dict[str, sa.types.TypeEngine[Any]] = {
        "int": sa.Integer(),
        "datetime": sa.DateTime(),
        "bool": sa.Boolean(),
        "decimal": sa.Float(),
    }
    return plain[column.type]


def metadata_for(schema_map: SchemaMap) -> sa.MetaData:
    """The tables of the map as NET Genium would hold them."""
    metadata = sa.MetaData()
    for table, columns in schema_map.tables().items():
        definition = sa.Table(
            table,
            metadata,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), primary_key=True),
            sa.Column("pid", sa.Integer()),
            sa.Column("pform", sa.Integer()),
            sa.Column("userid", sa.Integer()),
            sa.Column("system", sa.SmallInteger(), nullable=False, server_default="0"),
            *(sa.Column(c.name, _type(c)) for c in columns.values()),
            sqlite_autoincrement=True,
        )
        for column in columns.values():
            if column.unique or column.indexed:
                sa.Index(
                    f"ix_{table}_{column.name}"[:31],
                    definition.c[column.name],
                    unique=column.unique,
                    mssql_where=definition.c[column.name].isnot(None) if column.unique else None,
                )
    return metadata


def create_tables(engine: Engine, schema_map: SchemaMap) -> None:
    """Create the map's tables that are missing (existing ones are left as they are)."""
    metadata_for(schema_map).create_all(engine, checkfirst=True)
