"""Dates: UTC in the contract, the installation's wall-clock time (Europe/Prague) in the database.

Across both daylight-saving changes of a year every instant converts to the wall-clock time a
Prague clock showed and back, except the one the database cannot tell: in the autumn hour that
happens twice, the second pass is stored as the same wall-clock time as the first and read back
as the first. Through the running bridge, on SQLite and Firebird, what the database holds is read
straight from it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.values import LocalTime
from tests.bridge.conftest import RunningBridge

PRAGUE = LocalTime("Europe/Prague")
ACTIVITIES = "/api/v1/tables/ng_activities/records"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "offset_before", "offset_after"), [("2024-03-31T01:00", 1, 2), ("2024-10-27T01:00", 2, 1)]
)
def test_every_quarter_hour_around_a_change_round_trips(change: str, offset_before: int, offset_after: int) -> None:
    moment = _utc(change)
    for quarter in range(-8 * 4, 8 * 4):
        instant = moment + timedelta(minutes=15 * quarter)
        stored = PRAGUE.to_db(instant)
        offset = offset_before if instant < moment else offset_after
        assert stored == (instant + timedelta(hours=offset)).replace(tzinfo=None)
        repeated = offset_after < offset_before and moment <= instant < moment + timedelta(hours=1)
        back = _utc(PRAGUE.from_db(stored).removesuffix("Z"))
        assert back == (instant - timedelta(hours=1) if repeated else instant), instant


def test_the_spring_gap_and_milliseconds() -> None:
    assert PRAGUE.from_db(datetime(2024, 3, 31, 2, 30)) == "2024-03-31T01:30:00.000Z"  # a time no clock showed
    assert PRAGUE.to_db(PRAGUE.parse("2024-07-01T10:00:00.123456+00:00")) == datetime(2024, 7, 1, 12, 0, 0, 123000)
    assert PRAGUE.to_db(PRAGUE.parse("2024-01-15T08:00:00+05:00")) == datetime(2024, 1, 15, 4, 0)
    assert PRAGUE.from_db(datetime(2024, 1, 15, 4, 0, 0, 999999)) == "2024-01-15T03:00:00.999Z"


def test_the_bridge_stores_prague_time_and_answers_utc(bridge: RunningBridge) -> None:
    written = {
        "2024-07-01T10:00:00Z": datetime(2024, 7, 1, 12),
        "2024-12-01T10:00:00.250Z": datetime(2024, 12, 1, 11, 0, 0, 250000),
    }
    ids = []
    for instant in written:
        answer = bridge.api("POST", ACTIVITIES, json={"ng_kind": "calendar", "ng_start": instant, "ng_subject": "tz"})
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    stored = [bridge.value("ng_activities", "ng_start", record) for record in ids]
    # SQLite keeps the wall-clock time as text, Firebird as a TIMESTAMP: either way Prague time.
    assert [v if isinstance(v, datetime) else datetime.fromisoformat(str(v)) for v in stored] == list(written.values())
    for record, instant in zip(ids, written, strict=True):
        got = bridge.api("GET", f"{ACTIVITIES}/{record}", params={"columns": "ng_start"}).json()["ng_start"]
        assert got == instant.replace("Z", ".000Z") if "." not in instant else got == instant
    summer = bridge.api(
        "GET",
        ACTIVITIES,
        params={"filter": "ng_start ge '2024-07-01T10:00:00Z' and ng_start le '2024-07-01T10:00:00Z'"},
    )
    assert [r["id"] for r in summer.json()["records"]] == [ids[0]]
    before = bridge.api("GET", ACTIVITIES, params={"filter": "ng_start le '2024-07-01T09:59:59.999Z'"})
    assert before.json()["records"] == []
    for record in ids:
        assert bridge.api("DELETE", f"{ACTIVITIES}/{record}").status_code == 204
