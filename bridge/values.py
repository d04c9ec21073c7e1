"""Values between JSON, filter literals and the database: types, lengths, ranges and time zones.

Every value is checked here before it is bound as a parameter: a wrong type is 400 `bad_value`
(`bad_filter` in a filter), text longer than its column 400 `value_too_long` (counted in UTF-16
code units, as `nvarchar` counts; never cut), an integer outside its column's range a 400 rather
than a database overflow. Dates: the contract speaks UTC; NET Genium keeps wall-clock times of
the installation's time zone, so the bridge converts with zoneinfo, exactly across daylight
saving changes (see `LocalTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bridge.catalog import Column
from bridge.errors import bad_request
from bridge.filter_parser import Literal
from bridge.integers import parse_int

_INT_RANGE = {bits: (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (16, 32, 64)}


def utf16_len(value: str) -> int:
    """The length `nvarchar` counts."""
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def int_range(column: Column) -> tuple[int, int]:
    """The smallest and largest integer the column holds."""
    return _INT_RANGE.get(column.int_bits, _INT_RANGE[64])


class LocalTime:
    """Converts between the contract's UTC and the installation's wall-clock time.

    To the database: an instant becomes the local wall-clock time, to the millisecond (what SQL
    Server's datetime and the contract keep). From it: a wall-clock time is read with `fold=0`,
    so in the autumn hour that happens twice the first one is meant (the database cannot say
    which), and a time in the spring gap (which a clock never shows) is read as if the change had
    not happened yet; every other time converts back to the instant it came from.
    """

    def __init__(self, name: str = "Europe/Prague") -> None:
        self.name = name
        self.zone = UTC if name.upper() == "UTC" else ZoneInfo(name)

    def parse(self, text: str) -> datetime:
        """An ISO 8601 text as an aware UTC instant (no offset means UTC), or ValueError."""
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 date and time: {text[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
        return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)

    def to_db(self, instant: datetime) -> datetime:
        """The naive wall-clock time the database keeps for an aware instant."""
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def from_db(self, stored: datetime) -> str:
        """A stored wall-clock time as the contract's UTC text."""
        instant = stored.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        instant -= timedelta(microseconds=instant.microsecond % 1000)
        return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"

    def now(self) -> datetime:
        """Now, as the platform stamps it."""
        return self.to_db(self.parse(datetime.now(UTC).isoformat()))


def to_db(table: str, column: Column, value: Any, clock: LocalTime) -> Any:
    """A JSON value written to the column, as the database binds it, or 400 saying why not."""
    where = f"{table}.{column.name}"
    if column.type == "files":
        raise bad_request("bad_value", f"{where} is a files column: attach files through /files")
    if value is None:
        if column.name in ("system", "id"):
            raise bad_request("bad_value", f"{column.name} must not be null")
        return None
    if column.type == "int":
        low, high = int_range(column)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise bad_request("bad_value", f"{where} expects an integer in {low}..{high}")
        return value
    if column.type in ("text", "memo"):
        if not isinstance(value, str):
            raise bad_request("bad_value", f"{where} expects a string")
        if "\x00" in value:
            raise bad_request("bad_value", f"{where}: text may not hold NUL characters")
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
            return clock.to_db(_in_range(clock.parse(value)))
        except (ValueError, OverflowError) as exc:
            raise bad_request("bad_value", f"{where}: {exc}") from None
    if column.type == "bool":
        if not isinstance(value, bool):
            raise bad_request("bad_value", f"{where} expects true or false")
        return int(value) if column.stored_bool_as_int else value
    if column.type == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_request("bad_value", f"{where} expects a number")
        return float(value)
    raise bad_request("bad_value", f"{where} has a type the bridge cannot write ({column.type})")


def _in_range(instant: datetime) -> datetime:
    """Years 1753..9999 only: SQL Server's datetime starts in 1753, and a zone shift must not overflow."""
    if not 1753 <= instant.year <= 9998:
        raise ValueError("dates must lie between the years 1753 and 9998")
    return instant


def literal_to_db(table: str, column: Column, literal: Literal, clock: LocalTime) -> Any:
    """A filter literal compared with the column, as the database compares it, or 400 `bad_filter`."""
    where = f"{table}.{column.name}"
    value = literal.value
    if column.type == "files":
        raise bad_request("bad_filter", f"{where} is a files column and cannot be filtered")
    if column.type == "int":
        if literal.kind == "string" and isinstance(value, str):
            return parse_int(value, f"{where} (quoted digits)", code="bad_filter")
        if literal.kind != "number" or not isinstance(value, int):
            raise bad_request("bad_filter", f"{where} compares with integers")
        return parse_int(str(value), where, code="bad_filter")
    if column.type == "decimal":
        if literal.kind == "number" and isinstance(value, int | float):
            return float(value)
        raise bad_request("bad_filter", f"{where} compares with numbers")
    if column.type == "bool":
        if literal.kind == "bool" or (literal.kind == "number" and value in (0, 1)):
            return int(bool(value)) if column.stored_bool_as_int else bool(value)
        raise bad_request("bad_filter", f"{where} compares with true or false")
    if literal.kind != "string" or not isinstance(value, str):
        raise bad_request("bad_filter", f"{where} compares with quoted strings")
    if column.type == "datetime":
        try:
            return clock.to_db(_in_range(clock.parse(value)))
        except (ValueError, OverflowError) as exc:
            raise bad_request("bad_filter", f"{where}: {exc}") from None
    if "\x00" in value:
        raise bad_request("bad_filter", f"{where}: text may not hold NUL characters")
    return value


def from_db(column: Column, value: Any, clock: LocalTime) -> Any:
    """A stored value as the API answers it."""
    if value is None:
        return None
    if column.type == "bool":
        return bool(value)
    if column.type == "datetime" and isinstance(value, datetime):
        return clock.from_db(value)
    if column.type == "int":
        return int(value)
    if column.type == "decimal":
        return float(value)
    return value
