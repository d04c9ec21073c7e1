"""The statements the bridge sends to SQL Server, compiled with the mssql dialect (no live server here).

SQL Server cannot be installed on these machines, so what is checked is what can be without one:
the catalog's reading of SQL Server's types (nvarchar lengths, nvarchar(max), bit, the collation),
and the compiled statements: OFFSET/FETCH paging after a total order, identifiers quoted where
SQL Server needs it, every value a bound parameter typed with the column's length, integers out
of an int column's range cast to bigint, a filtered unique index for the activity keys.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateIndex

from bridge.catalog import TableDef, build_table
from bridge.errors import ApiError
from bridge.filter_parser import parse_filter
from bridge.query import chosen_columns, order_by, page_select, where
from bridge.values import LocalTime, to_db
from crm_core.netgenium import default_schema_map
from sandbox.netgenium.ddl import metadata_for


def _sql_server_2019() -> Any:
    """The dialect as SQLAlchemy sets it up after connecting to SQL Server 2019 (version 15)."""
    dialect = mssql.dialect()
    dialect.server_version_info = (15, 0, 2000)
    dialect._setup_version_attributes()
    return dialect


DIALECT = _sql_server_2019()
CI = "SQL_Latin1_General_CP1_CI_AS"
CLOCK = LocalTime("Europe/Prague")


def _users(extra: list[tuple[str, Any, bool]] | None = None, collation: str | None = CI) -> TableDef:
    """ng_users as SQL Server's catalog reports it."""
    infos: list[tuple[str, Any, bool]] = [
        ("id", mssql.INTEGER(), False),
        ("pid", mssql.INTEGER(), True),
        ("pform", mssql.INTEGER(), True),
        ("userid", mssql.INTEGER(), True),
        ("system", mssql.BIT(), False),
        ("ng_email", mssql.NVARCHAR(255, collation=collation), True),
        ("ng_name", mssql.NVARCHAR(200, collation=collation), True),
        ("ng_notes", mssql.NVARCHAR(None, collation=collation), True),
        *(extra or []),
    ]
    mapped = {c.name: c for c in default_schema_map().tables()["ng_users"].values()}
    mapped["end"] = mapped["ng_name"].model_copy(update={"name": "end"})
    table = build_table("ng_users", infos, {"id"}, mapped, "mssql")
    assert table is not None
    return table


def _compile(statement: sa.ClauseElement) -> Any:
    return statement.compile(dialect=DIALECT)


def test_the_catalog_reads_sql_server_types() -> None:
    table = _users([("end", mssql.NVARCHAR(50, collation=CI), True), ("ng_secret", mssql.NVARCHAR(10), True)])
    described = {c["name"]: c for c in (c.describe() for c in table.columns.values())}
    assert described["ng_email"] == {
        "name": "ng_email",
        "type": "text",
        "max_length": 255,
        "nullable": True,
        "unique": False,
        "system": False,
    }
    assert described["system"]["type"] == "bool" and described["id"]["unique"] and not described["id"]["nullable"]
    assert described["end"]["max_length"] == 50
    assert "ng_secret" not in described and "ng_notes" not in described  # not in the map: not reachable
    assert table.columns["ng_email"].case_insensitive and table.columns["id"].int_bits == 32


def test_a_page_is_offset_fetch_after_a_total_order_with_every_value_bound() -> None:
    table = _users([("end", mssql.NVARCHAR(50, collation=CI), True)])
    marker = "zq' ; DROP TABLE ng_users; --"
    conditions = parse_filter(f"ng_email in ('a@x.example', '{marker.replace(chr(39), chr(39) * 2)}') and end ge 'b'")
    statement = page_select(
        table,
        chosen_columns(table, "ng_email,end"),
        where(table, conditions, CLOCK),
        order_by(table, "end desc"),
        limit=101,
        offset=200,
    )
    compiled = _compile(statement)
    sql = str(compiled)
    assert "ORDER BY ng_users.[end] DESC, ng_users.id ASC" in sql
    assert "OFFSET :param_1 ROWS" in sql and "FETCH FIRST :param_2 ROWS ONLY" in sql
    assert "SELECT ng_users.id, ng_users.ng_email, ng_users.[end]" in sql
    assert "zq" not in sql and "DROP" not in sql and "a@x.example" not in sql
    assert compiled.params["param_1"] == 200 and compiled.params["param_2"] == 101
    assert marker in compiled.params.values()
    binds = {name: compiled.binds[name].type for name in compiled.binds if name.startswith("f")}
    assert all(isinstance(t, sa.Unicode) for t in binds.values())
    assert sorted(t.length for t in binds.values()) == [50, 255, 255]  # nvarchar lengths of the columns
    assert "lower(" not in sql  # a case-insensitive collation compares by itself, the index serves


def test_a_case_sensitive_column_compares_through_lower() -> None:
    table = _users(collation="Latin1_General_100_CS_AS")
    compiled = _compile(
        page_select(
            table,
            chosen_columns(table, None),
            where(table, parse_filter("ng_email eq 'A@X'"), CLOCK),
            order_by(table, None),
            limit=1,
            offset=0,
        )
    )
    assert "lower(ng_users.ng_email) = :f0" in str(compiled)
    assert compiled.params["f0"] == "a@x"


def test_integers_beyond_an_int_column_are_cast_not_overflowed() -> None:
    table = _users()
    compiled = _compile(
        sa.select(table.c("id")).where(*where(table, parse_filter("id le 9223372036854775807 and pid eq 5"), CLOCK))
    )
    sql = str(compiled)
    assert "ng_users.id <= CAST(:f0 AS BIGINT)" in sql and "ng_users.pid = :f1" in sql
    with pytest.raises(ApiError) as refused:
        to_db("ng_users", table.columns["pid"], 2**31, CLOCK)
    assert refused.value.code == "bad_value" and "2147483647" in refused.value.message


def test_writes_bind_values_and_return_the_id() -> None:
    table = _users()
    values = {
        "ng_email": "o'brien@x.example",
        "ng_name": "N",
        "system": to_db("ng_users", table.columns["system"], False, CLOCK),
    }
    compiled = _compile(sa.insert(table.clause).values(values).returning(table.c("id")))
    sql = str(compiled)
    assert sql.startswith(
        "INSERT INTO ng_users (system, ng_email, ng_name) OUTPUT inserted.id VALUES (:system, :ng_email, :ng_name)"
    )
    assert compiled.params["ng_email"] == "o'brien@x.example" and "brien" not in sql
    update = str(_compile(sa.update(table.clause).where(table.c("id") == 7).values(ng_name="x")))
    assert update == "UPDATE ng_users SET ng_name=:ng_name WHERE ng_users.id = :id_1"
    with pytest.raises(ApiError) as refused:
        to_db("ng_users", table.columns["ng_name"], "x" * 201, CLOCK)
    assert refused.value.code == "value_too_long"


def test_the_unique_activity_keys_get_filtered_unique_indexes() -> None:
    activities = metadata_for(default_schema_map()).tables["ng_activities"]
    indexes = {index.name: str(CreateIndex(index).compile(dialect=DIALECT)) for index in activities.indexes}
    key = next(sql for name, sql in indexes.items() if name and name.endswith("message_key"))
    assert key.startswith("CREATE UNIQUE INDEX") and key.endswith("WHERE ng_message_key IS NOT NULL")
    message_id = next(sql for name, sql in indexes.items() if name and name.endswith("message_id"))
    assert "UNIQUE" not in message_id
    ddl = str(sa.schema.CreateTable(activities).compile(dialect=DIALECT))
    assert "ng_subject NVARCHAR(255)" in ddl and "ng_body NVARCHAR(max)" in ddl
