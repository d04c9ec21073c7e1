"""NCRONTAB schedules fire at the instants the Functions host would fire them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.runner.ncrontab import CronSchedule, IntervalSchedule, ScheduleError, parse_schedule, parse_timespan


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def upcoming(expression: str, start: str, count: int) -> list[str]:
    schedule = parse_schedule(expression)
    moments: list[str] = []
    moment = at(start)
    for _ in range(count):
        moment = schedule.next_after(moment)
        moments.append(moment.strftime("%Y-%m-%d %H:%M:%S"))
    return moments


def test_every_five_minutes() -> None:
    assert upcoming("0 */5 * * * *", "2025-03-01T10:02:30", 3) == [
        "2025-03-01 10:05:00",
        "2025-03-01 10:10:00",
        "2025-03-01 10:15:00",
    ]


def test_next_is_strictly_after_an_exact_match() -> None:
    assert upcoming("0 */5 * * * *", "2025-03-01T10:05:00", 1) == ["2025-03-01 10:10:00"]
    assert upcoming("* * * * * *", "2025-03-01T10:05:00.900", 2) == ["2025-03-01 10:05:01", "2025-03-01 10:05:02"]


def test_lists_ranges_and_steps() -> None:
    assert upcoming("15,45 0-1 9-17/4 * * *", "2025-03-01T08:00:00", 5) == [
        "2025-03-01 09:00:15",
        "2025-03-01 09:00:45",
        "2025-03-01 09:01:15",
        "2025-03-01 09:01:45",
        "2025-03-01 13:00:15",
    ]
    assert upcoming("10/20 0 0 * * *", "2025-03-01T00:00:00", 3) == [
        "2025-03-01 00:00:10",
        "2025-03-01 00:00:30",
        "2025-03-01 00:00:50",
    ]


def test_rolls_over_days_months_and_years() -> None:
    assert upcoming("0 30 9 * * *", "2025-12-31T10:00:00", 1) == ["2026-01-01 09:30:00"]
    assert upcoming("0 0 0 31 * *", "2025-04-01T00:00:00", 2) == ["2025-05-31 00:00:00", "2025-07-31 00:00:00"]
    assert upcoming("0 0 12 29 Feb *", "2025-01-01T00:00:00", 1) == ["2028-02-29 12:00:00"]


def test_weekday_names_and_numbers_with_sunday_zero() -> None:
    # 2025-03-01 is a Saturday.
    assert upcoming("0 0 9 * * Mon-Fri", "2025-03-01T00:00:00", 2) == ["2025-03-03 09:00:00", "2025-03-04 09:00:00"]
    assert upcoming("0 0 9 * * 0", "2025-03-01T00:00:00", 1) == ["2025-03-02 09:00:00"]
    assert upcoming("0 0 9 * * sun,SAT", "2025-03-01T10:00:00", 2) == ["2025-03-02 09:00:00", "2025-03-08 09:00:00"]


def test_day_of_month_and_weekday_must_both_match() -> None:
    # NCrontab ANDs them: Friday the 13th, not "every 13th or every Friday".
    assert upcoming("0 0 0 13 * Fri", "2025-01-01T00:00:00", 2) == ["2025-06-13 00:00:00", "2026-02-13 00:00:00"]


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("0 */5 * * *", "six"),
        ("0 0 0 * * * *", "six"),
        ("60 * * * * *", "second: 60"),
        ("0 0 24 * * *", "hour: 24"),
        ("0 0 0 0 * *", "day: 0"),
        ("0 0 0 * 13 *", "month: 13"),
        ("0 0 0 * * 7", "day-of-week: 7"),
        ("0 */0 * * * *", "step"),
        ("0 5-1 * * * *", "backwards"),
        ("0 1,,2 * * * *", "empty"),
        ("0 x * * * *", "not a number"),
        ("0 0 0 30 Feb *", "never fires"),
    ],
)
def test_invalid_schedules_name_the_problem(expression: str, fragment: str) -> None:
    with pytest.raises(ScheduleError, match=fragment):
        schedule = parse_schedule(expression)
        schedule.next_after(at("2025-01-01T00:00:00"))


def test_timespan_schedules_are_intervals() -> None:
    schedule = parse_schedule("00:05:00")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(at("2025-01-01T10:00:07")) == at("2025-01-01T10:05:07")
    assert parse_timespan("1.02:03:04.5") == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    with pytest.raises(ScheduleError):
        parse_schedule("00:00:00")
    with pytest.raises(ScheduleError):
        parse_timespan("00:61:00")


def test_naive_datetimes_are_utc() -> None:
    schedule = CronSchedule.parse("0 0 * * * *")
    assert schedule.next_after(datetime(2025, 1, 1, 10, 30)) == at("2025-01-01T11:00:00")


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
    st.sampled_from(["*/7 * * * * *", "0 */5 * * * *", "0 0 */3 * * *", "30 15 10 * * Mon-Fri", "0 0 0 1,15 * *"]),
)
def test_next_occurrence_matches_and_nothing_is_skipped(moment: datetime, expression: str) -> None:
    schedule = CronSchedule.parse(expression)
    found = schedule.next_after(moment)
    start = moment.replace(tzinfo=UTC)
    assert found > start
    assert found.second in schedule.seconds
    assert found.minute in schedule.minutes
    assert found.hour in schedule.hours
    assert found.day in schedule.days
    assert (found.weekday() + 1) % 7 in schedule.weekdays
    # No matching second lies between the start and the answer (checked over a bounded window).
    probe = start.replace(microsecond=0) + timedelta(seconds=1)
    for _ in range(min(int((found - probe).total_seconds()), 3600)):
        assert not (
            probe.second in schedule.seconds
            and probe.minute in schedule.minutes
            and probe.hour in schedule.hours
            and probe.day in schedule.days
            and (probe.weekday() + 1) % 7 in schedule.weekdays
        )
        probe += timedelta(seconds=1)
