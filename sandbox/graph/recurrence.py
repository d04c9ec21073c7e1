"""Graph's `patternedRecurrence`: checked as Graph checks it, and expanded into the dates of a series.

A pattern says how often (`daily`, `weekly`, `absoluteMonthly`, `relativeMonthly`, `absoluteYearly`,
`relativeYearly`, each every `interval` units) and a range says for how long (`endDate`, `noEnd`,
`numbered`), from `range.startDate`. The dates are local dates in the series' time zone; the caller
puts the series' wall-clock time on each and converts it to UTC in that zone, so a 09:00 meeting
stays at 09:00 across a DST change. Every series is expanded up to `HORIZON_DAYS` after its start
or after today, whichever is later; one without an end keeps only its last year before today.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox.graph.odata import bad_request

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
INDEXES = ("first", "second", "third", "fourth", "last")
PATTERN_TYPES = ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly")
RANGE_TYPES = ("endDate", "noEnd", "numbered")
HORIZON_DAYS = 3 * 366
MAX_OCCURRENCES = 1500
_PATTERN_KEYS = ("type", "interval", "month", "dayOfMonth", "daysOfWeek", "firstDayOfWeek", "index")
_REQUIRED = {
    "daily": (),
    "weekly": ("daysOfWeek",),
    "absoluteMonthly": ("dayOfMonth",),
    "relativeMonthly": ("daysOfWeek",),
    "absoluteYearly": ("dayOfMonth", "month"),
    "relativeYearly": ("daysOfWeek", "month"),
}


def _invalid(what: str) -> Exception:
    return bad_request(f"Recurrence: {what}", "ErrorInvalidRequest")


def _enum(value: Any, allowed: tuple[str, ...], what: str) -> str:
    lookup = {item.lower(): item for item in allowed}
    if not isinstance(value, str) or value.lower() not in lookup:
        raise _invalid(f"{what} must be one of {', '.join(allowed)}.")
    return lookup[value.lower()]


def _int(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(f"{what} must be an integer from {low} to {high}.")
    return value


def _date(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise _invalid(f"{what} must be a date (yyyy-MM-dd).") from None


def normalize(value: Any, start_date: date, zone_name: str) -> dict[str, Any]:
    """The recurrence as Graph stores and returns it; 400 for what Graph refuses."""
    if not isinstance(value, dict) or not isinstance(value.get("pattern"), dict):
        raise _invalid("a patternedRecurrence needs a pattern and a range.")
    raw, rng = value["pattern"], value.get("range")
    if not isinstance(rng, dict):
        raise _invalid("a patternedRecurrence needs a range.")
    kind = _enum(raw.get("type"), PATTERN_TYPES, "pattern.type")
    for key in _REQUIRED[kind]:
        if raw.get(key) in (None, [], 0):
            raise _invalid(f"pattern.{key} is required for a {kind} pattern.")
    days = raw.get("daysOfWeek") or []
    if not isinstance(days, list):
        raise _invalid("pattern.daysOfWeek must be a list.")
    pattern = {
        "type": kind,
        "interval": _int(raw.get("interval", 1), "pattern.interval", 1, 999),
        "month": _int(raw["month"], "pattern.month", 1, 12) if raw.get("month") else 0,
        "dayOfMonth": _int(raw["dayOfMonth"], "pattern.dayOfMonth", 1, 31) if raw.get("dayOfMonth") else 0,
        "daysOfWeek": [_enum(d, DAYS, "pattern.daysOfWeek") for d in days],
        "firstDayOfWeek": _enum(raw.get("firstDayOfWeek") or "sunday", DAYS, "pattern.firstDayOfWeek"),
        "index": _enum(raw.get("index") or "first", INDEXES, "pattern.index"),
    }
    unknown = set(raw) - set(_PATTERN_KEYS) - {"@odata.type"}
    if unknown:
        raise _invalid(f"unknown pattern properties {sorted(unknown)}.")
    range_type = _enum(rng.get("type"), RANGE_TYPES, "range.type")
    if rng.get("startDate") is None:
        raise _invalid("range.startDate is required.")
    first = _date(rng["startDate"], "range.startDate")
    if first != start_date:
        raise _invalid("range.startDate must be the date of the event's start.")
    out_range: dict[str, Any] = {
        "type": range_type,
        "startDate": first.isoformat(),
        "endDate": "0001-01-01",
        "recurrenceTimeZone": str(rng.get("recurrenceTimeZone") or zone_name),
        "numberOfOccurrences": 0,
    }
    if range_type == "endDate":
        end = _date(rng.get("endDate"), "range.endDate")
        if end < first:
            raise _invalid("range.endDate is before range.startDate.")
        out_range["endDate"] = end.isoformat()
    elif range_type == "numbered":
        out_range["numberOfOccurrences"] = _int(rng.get("numberOfOccurrences"), "range.numberOfOccurrences", 1, 999)
    return {"pattern": pattern, "range": out_range}


def _months(first: date, step: int, limit: date) -> list[tuple[int, int]]:
    out, year, month = [], first.year, first.month
    while True:
        out.append((year, month))
        month += step
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        if date(year, month, 1) > limit:
            return out


def _clamped(year: int, month: int, day: int) -> date:
    # Outlook puts "day 31" on the last day of a shorter month (and 29 February on the 28th).
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _relative(year: int, month: int, days: list[str], index: str) -> date:
    wanted = {DAYS.index(d) for d in days}
    matches = [
        date(year, month, n)
        for n in range(1, calendar.monthrange(year, month)[1] + 1)
        if date(year, month, n).weekday() in wanted
    ]
    return matches[-1] if index == "last" else matches[INDEXES.index(index)]


def _candidates(pattern: dict[str, Any], first: date, limit: date) -> list[date]:
    kind, step = pattern["type"], int(pattern["interval"])
    if kind == "daily":
        return [first + timedelta(days=n) for n in range(0, (limit - first).days + 1, step)]
    if kind == "weekly":
        week_start = DAYS.index(pattern["firstDayOfWeek"])
        origin = first - timedelta(days=(first.weekday() - week_start) % 7)
        wanted = {DAYS.index(d) for d in pattern["daysOfWeek"]}
        out = []
        day = origin
        while day <= limit:
            if ((day - origin).days // 7) % step == 0 and day.weekday() in wanted:
                out.append(day)
            day += timedelta(days=1)
        return out
    if kind in ("absoluteMonthly", "relativeMonthly"):
        months = _months(first, step, limit)
    else:
        month = int(pattern["month"])
        months = [(y, month) for y in range(first.year, limit.year + 2, step)]
    if kind.startswith("absolute"):
        return [_clamped(y, m, int(pattern["dayOfMonth"])) for y, m in months]
    return [_relative(y, m, pattern["daysOfWeek"], pattern["index"]) for y, m in months]


def dates(recurrence: dict[str, Any]) -> list[date]:
    """The local dates of a series, in order: on or after startDate, within its range."""
    rng = recurrence["range"]
    first = date.fromisoformat(rng["startDate"])
    today = datetime.now(UTC).date()
    limit = max(first, today) + timedelta(days=HORIZON_DAYS)
    out = [d for d in _candidates(recurrence["pattern"], first, limit) if first <= d <= limit]
    if rng["type"] == "noEnd":
        out = [d for d in out if d >= today - timedelta(days=366)]
    elif rng["type"] == "endDate":
        end = date.fromisoformat(rng["endDate"])
        out = [d for d in out if d <= end]
    elif rng["type"] == "numbered":
        out = out[: int(rng["numberOfOccurrences"])]
    return sorted(set(out))[:MAX_OCCURRENCES]
