"""NCRONTAB schedules, as the Azure Functions timer trigger reads them.

The Functions host uses the NCrontab library with six fields
(`second minute hour day month day-of-week`) and evaluates them in UTC unless
WEBSITE_TIME_ZONE says otherwise. The local runner has to fire timers at the same instants as
the deployed app, so this module follows NCrontab's rules rather than Vixie cron's:

- each field accepts `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, and lists of those;
- months accept `Jan`..`Dec`, days of week `Sun`..`Sat` (0 is Sunday, 0-6), case-insensitive;
- when both day-of-month and day-of-week are restricted, a day must match both (NCrontab ANDs
  them, where Vixie cron would OR them).

A TimeSpan schedule (`hh:mm:ss`, allowed by the host on App Service plans) is an interval instead.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTHS = {name: i for i, name in enumerate(_MONTH_NAMES, start=1)}
_DAYS = {name: i for i, name in enumerate(_DAY_NAMES)}

# (name, lowest, highest, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")

# 29 February falls on every weekday within 28 years, so a schedule that can fire at all fires within them;
# one that cannot (30 February) is reported instead of looping forever.
_SEARCH_DAYS = 366 * 28


class ScheduleError(ValueError):
    """A schedule the Functions host would refuse at start, with the field that is wrong."""


def _value(token: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    lowered = token.lower()
    if lowered in names:
        return names[lowered]
    if not token.isdigit():
        raise ScheduleError(f"{field}: {token!r} is not a number")
    number = int(token)
    if not low <= number <= high:
        raise ScheduleError(f"{field}: {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> tuple[int, ...]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"{field}: empty list item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, field, low, high, names)
            end = _value(last, field, low, high, names)
            if start > end:
                raise ScheduleError(f"{field}: range {base!r} runs backwards")
        else:
            start = _value(base, field, low, high, names)
            # `a/n` means "from a, every n" (as in NCrontab); a plain number is just itself.
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return tuple(sorted(values))


@dataclass(frozen=True)
class CronSchedule:
    """A parsed six-field NCRONTAB expression; `next_after` gives the instants the host fires at."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Refuse what the host refuses, naming the field, so a typo fails at start and not at 3 a.m."""
        parts = expression.split()
        if len(parts) != 6:
            raise ScheduleError(
                f"{expression!r} has {len(parts)} fields; Azure Functions needs six: "
                "second minute hour day month day-of-week"
            )
        fields = [_parse_field(text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
        return cls(expression, *fields)

    def _day_matches(self, day: date) -> bool:
        # Python: Monday is 0; NCRONTAB: Sunday is 0.
        return day.month in self.months and day.day in self.days and (day.weekday() + 1) % 7 in self.weekdays

    def _first_time_at_or_after(self, hour: int, minute: int, second: int) -> tuple[int, int, int] | None:
        for h in self.hours[bisect.bisect_left(self.hours, hour) :]:
            if h > hour:
                return h, self.minutes[0], self.seconds[0]
            for m in self.minutes[bisect.bisect_left(self.minutes, minute) :]:
                if m > minute:
                    return h, m, self.seconds[0]
                index = bisect.bisect_left(self.seconds, second)
                if index < len(self.seconds):
                    return h, m, self.seconds[index]
        return None

    def next_after(self, moment: datetime) -> datetime:
        """The first instant strictly after `moment` (naive datetimes are taken as UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        start = moment.replace(microsecond=0) + timedelta(seconds=1)
        day = start.date()
        for offset in range(_SEARCH_DAYS):
            if self._day_matches(day):
                found = (
                    self._first_time_at_or_after(start.hour, start.minute, start.second)
                    if offset == 0
                    else (self.hours[0], self.minutes[0], self.seconds[0])
                )
                if found is not None:
                    return datetime(day.year, day.month, day.day, *found, tzinfo=start.tzinfo)
            day += timedelta(days=1)
        raise ScheduleError(f"{self.expression!r} never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: fire every `interval`, counted from the previous firing."""

    expression: str
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        """The previous firing plus the interval (the host counts from the last run, not from midnight)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment + self.interval


Schedule = CronSchedule | IntervalSchedule


def parse_timespan(text: str) -> timedelta:
    """.NET TimeSpan text (`[d.]hh:mm:ss[.fffffff]`), the format host.json and timer schedules use."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ScheduleError(f"{text!r} is not a TimeSpan ([d.]hh:mm:ss[.fffffff])")
    days, hours, minutes, seconds, fraction = match.groups()
    if int(minutes) > 59 or int(seconds) > 59 or int(hours) > 23:
        raise ScheduleError(f"{text!r} is not a TimeSpan: hours 0-23, minutes and seconds 0-59")
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=int((fraction or "0").ljust(7, "0")) // 10,
    )


def parse_schedule(expression: str) -> Schedule:
    """Either form the timer trigger accepts: an NCRONTAB expression, or a TimeSpan interval."""
    stripped = expression.strip()
    if _TIMESPAN.match(stripped):
        interval = parse_timespan(stripped)
        if interval <= timedelta(0):
            raise ScheduleError(f"{expression!r}: an interval must be longer than zero")
        return IntervalSchedule(stripped, interval)
    return CronSchedule.parse(stripped)
