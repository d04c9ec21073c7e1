"""Building record-API filters (`col eq 'v' and col in ('a','b')`) with every value escaped.

A value goes into a filter only through `literal()`, which quotes strings and doubles embedded
quotes, so a contact called O'Brien (or an address like o'brien@firma.example) is found and a
value can never change the filter's meaning. Column names come from the schema map, which has
already checked them against a strict pattern; they are checked again here because a filter is
the place where a mistake would matter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

FilterValue = str | int | bool | datetime | None

_COLUMN = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, the one form the contract compares correctly.

    A naive datetime is taken as UTC: the service produces only aware ones, and guessing a local
    zone on a server in Azure would be wrong everywhere.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def literal(value: FilterValue) -> str:
    """One value as the filter grammar writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return "'" + format_datetime(value) + "'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot put a {type(value).__name__} into a filter")


def column(name: str) -> str:
    """A column name, refused unless it is a plain identifier."""
    if not _COLUMN.match(name):
        raise ValueError(f"not a column name: {name!r}")
    return name


@dataclass(frozen=True)
class Filter:
    """A conjunction of conditions; `&` joins two filters."""

    conditions: tuple[str, ...] = ()

    def __and__(self, other: Filter) -> Filter:
        return Filter(self.conditions + other.conditions)

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def text(self) -> str:
        """The filter as the `filter` query parameter carries it."""
        return " and ".join(self.conditions)


def eq(name: str, value: FilterValue) -> Filter:
    """`name eq value` (`eq null` matches an empty column)."""
    return Filter((f"{column(name)} eq {literal(value)}",))


def ge(name: str, value: FilterValue) -> Filter:
    """`name ge value`."""
    return Filter((f"{column(name)} ge {literal(value)}",))


def le(name: str, value: FilterValue) -> Filter:
    """`name le value`."""
    return Filter((f"{column(name)} le {literal(value)}",))


def in_(name: str, values: Sequence[FilterValue]) -> Filter:
    """`name in (v1, v2, ...)`; an empty list is refused, since it cannot match anything."""
    if not values:
        raise ValueError("an `in` condition needs at least one value")
    return Filter((f"{column(name)} in ({','.join(literal(value) for value in values)})",))


def all_of(filters: Iterable[Filter]) -> Filter:
    """Every filter joined with `and`."""
    out = Filter()
    for item in filters:
        out = out & item
    return out


def chunked_in(
    name: str,
    values: Sequence[FilterValue],
    *,
    max_values: int,
    max_chars: int,
    base: Filter = Filter(),
) -> Iterator[Filter]:
    """`name in (...)` filters over `values`, each within `max_values` and `max_chars` (URL-encoded).

    IIS refuses query strings over 2,048 bytes by default, and the contract caps an `in` list, so
    one lookup of many addresses becomes as few requests as fit.
    """
    if max_values < 1:
        raise ValueError("max_values must be at least 1")
    prefix_len = len(quote(base.text() + " and " if base else "", safe="")) + len(
        quote(f"{column(name)} in ()", safe="")
    )
    chunk: list[FilterValue] = []
    size = prefix_len
    for value in values:
        cost = len(quote(literal(value), safe="")) + (3 if chunk else 0)  # %2C
        if chunk and (len(chunk) >= max_values or size + cost > max_chars):
            yield base & in_(name, chunk)
            chunk, size = [], prefix_len
            cost = len(quote(literal(value), safe=""))
        chunk.append(value)
        size += cost
    if chunk:
        yield base & in_(name, chunk)
