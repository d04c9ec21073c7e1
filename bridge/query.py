"""Requests to SQLAlchemy Core statements: filters, chosen columns, order and paging.

Names in a request are looked up among the reachable columns (catalog.py) and only the column
objects made there ever reach a statement; values become bound parameters. So no text of a
request is ever SQL text, whatever the dialect. Text compares case-insensitively, as the contract
says: through the column's own collation where the catalog shows a case-insensitive one (so an
index still serves the lookup), else through lower() on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from bridge.catalog import Column, TableDef
from bridge.errors import bad_request
from bridge.filter_parser import Condition
from bridge.values import LocalTime, int_range, literal_to_db, utf16_len

ColumnExpression = sa.ColumnElement[Any]


def column_of(table: TableDef, name: str) -> Column:
    """A reachable column of the table, or 400 unknown_column."""
    column = table.columns.get(name.strip().lower())
    if column is None:
        raise bad_request("unknown_column", f"{table.name} has no column {name.strip()[:80]!r}")
    return column


def _operand(table: TableDef, column: Column) -> ColumnExpression:
    expression: ColumnExpression = table.c(column.name)
    if column.type in ("text", "memo") and not column.case_insensitive:
        return sa.func.lower(expression)
    return expression


def _bind(column: Column, value: Any, name: str) -> ColumnExpression:
    """A bound parameter typed for the column; an integer beyond a narrow column's range is cast wider."""
    if column.type == "int" and isinstance(value, int):
        low, high = int_range(column)
        if not low <= value <= high:
            return sa.cast(sa.bindparam(name, value, type_=sa.BigInteger()), sa.BigInteger())
    if column.type in ("text", "memo") and isinstance(value, str):
        if not column.case_insensitive:
            value = value.lower()
        length = column.max_length
        wide = sa.Unicode(max(length, utf16_len(value))) if length is not None else sa.UnicodeText()
        return sa.bindparam(name, value, type_=wide)
    return sa.bindparam(name, value, type_=column.sa_type())


def where(table: TableDef, conditions: Sequence[Condition], clock: LocalTime) -> list[ColumnExpression]:
    """The conditions as bound SQLAlchemy expressions (400 for names or values that do not fit)."""
    clauses: list[ColumnExpression] = []
    for number, condition in enumerate(conditions):
        column = column_of(table, condition.column)
        if column.type == "files":
            raise bad_request("bad_filter", f"{table.name}.{column.name} is a files column and cannot be filtered")
        operand = _operand(table, column)
        if condition.op == "eq" and condition.values[0].kind == "null":
            clauses.append(table.c(column.name).is_(None))
            continue
        values = [literal_to_db(table.name, column, literal, clock) for literal in condition.values]
        if condition.op in ("eq", "in"):
            too_long = column.max_length is not None
            kept = [
                v for v in values if not (too_long and isinstance(v, str) and utf16_len(v) > (column.max_length or 0))
            ]
            if not kept:
                clauses.append(sa.false())  # nothing longer than the column can be stored in it
                continue
            if len(kept) == 1:
                clauses.append(operand == _bind(column, kept[0], f"f{number}"))
            else:
                binds = [_bind(column, v, f"f{number}_{i}") for i, v in enumerate(kept)]
                clauses.append(operand.in_(binds))
        elif condition.op == "ge":
            clauses.append(operand >= _bind(column, values[0], f"f{number}"))
        else:
            clauses.append(operand <= _bind(column, values[0], f"f{number}"))
    return clauses


def chosen_columns(table: TableDef, columns: str | None) -> list[Column]:
    """The columns to answer with: all, or `id` and the named ones."""
    if columns is None or not columns.strip():
        return list(table.columns.values())
    chosen = [table.columns["id"]]
    for name in columns.split(","):
        column = column_of(table, name)
        if column not in chosen:
            chosen.append(column)
    return chosen


def order_by(table: TableDef, orderby: str | None) -> list[ColumnExpression]:
    """`col [asc|desc], ...` as order terms, `id` always the last key so the order is total."""
    terms: list[ColumnExpression] = []
    names: set[str] = set()
    for part in (orderby or "").split(","):
        words = part.split()
        if not words:
            if orderby and orderby.strip():
                raise bad_request("bad_request", "orderby has an empty term")
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise bad_request("bad_request", f"orderby term {part.strip()[:60]!r} is not `column [asc|desc]`")
        column = column_of(table, words[0])
        if column.type == "files":
            raise bad_request("bad_request", f"{table.name}.{column.name} cannot be ordered by")
        expression = table.c(column.name)
        terms.append(expression.desc() if len(words) == 2 and words[1].lower() == "desc" else expression.asc())
        names.add(column.name)
    if "id" not in names:
        terms.append(table.c("id").asc())
    return terms


def page_select(
    table: TableDef,
    chosen: Sequence[Column],
    clauses: Sequence[ColumnExpression],
    order: Sequence[ColumnExpression],
    *,
    limit: int,
    offset: int,
) -> sa.Select[Any]:
    """One page: the stored chosen columns, filtered and ordered, `limit` rows from `offset`."""
    stored = [table.c(c.name) for c in chosen if c.type != "files"]
    statement = sa.select(*stored).select_from(table.clause).where(*clauses).order_by(*order)
    return statement.limit(limit).offset(offset)
