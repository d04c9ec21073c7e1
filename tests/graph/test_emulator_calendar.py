"""The emulator's calendar against Graph's calendar documentation, over HTTP (docs/GRAPH.md, Calendar).

Recurring series expanded in their own time zone (DST exact), occurrences with stable ids, exceptions
and cancelled occurrences, `instances`, `Prefer: outlook.timezone`, all-day validation,
`transactionId`, single-value extended properties, and the invitations Graph would mail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.graph.conftest import MAILBOX, TOKEN, Admin

EVENTS = f"/users/{MAILBOX}/events"
VIEW = f"/users/{MAILBOX}/calendarView"
PROP = "String {6C1C5A43-2B8E-4B57-9A0C-3F5E2D9B7C41} Name NetGeniumActivityId"
def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


SPRING = {"startDateTime": "2026-03-01T00:00:00Z", "endDateTime": "2026-05-01T00:00:00Z"}


@pytest.fixture
async def http(graph_server: Any, admin: Admin) -> AsyncIterator[httpx.AsyncClient]:
    await admin.steady_tokens()
    async with httpx.AsyncClient(
        base_url=graph_server.base_url + "/v1.0", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        yield client


def weekly(start: str, zone: str = "Central Europe Standard Time", count: int = 4, **extra: Any) -> dict[str, Any]:
    end = start[:11] + f"{int(start[11:13]) + 1:02}" + start[13:]
    return {
        "subject": "Weekly", "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
            "range": {"type": "numbered", "startDate": start[:10], "numberOfOccurrences": count},
        },
        **extra,
    }


async def ok(answer: Any, status: int = 200) -> Any:
    response = await answer
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def view(http: httpx.AsyncClient, window: dict[str, str] = SPRING, **headers: str) -> list[dict[str, Any]]:
    body = await ok(http.get(VIEW, params=window, headers={"Prefer": "odata.maxpagesize=100", **headers}))
    return body["value"]  # type: ignore[no-any-return]


async def test_a_weekly_prague_series_keeps_its_local_time_across_dst(http: httpx.AsyncClient) -> None:
    master = await ok(http.post(EVENTS, json=weekly("2026-03-16T09:00:00")), 201)
    assert master["type"] == "seriesMaster" and master["recurrence"]["range"]["numberOfOccurrences"] == 4
    shown = await view(http)
    assert [e["start"]["dateTime"] for e in shown] == [
        "2026-03-16T08:00:00.0000000", "2026-03-23T08:00:00.0000000",  # CET, UTC+1
        "2026-03-30T07:00:00.0000000", "2026-04-06T07:00:00.0000000",  # CEST from 29 March, UTC+2
    ]
    assert {e["type"] for e in shown} == {"occurrence"} and master["id"] not in {e["id"] for e in shown}
    assert {e["seriesMasterId"] for e in shown} == {master["id"]}
    assert shown[2]["originalStart"] == "2026-03-30T07:00:00Z" and shown[2]["recurrence"] is None
    assert [e["id"] for e in await view(http)] == [e["id"] for e in shown]  # stable ids
    assert len({e["id"] for e in shown}) == 4
    one = await ok(http.get(f"{EVENTS}/{shown[1]['id']}"))
    assert one["type"] == "occurrence" and one["start"]["timeZone"] == "UTC"
    listed = await ok(http.get(EVENTS))
    assert [e["id"] for e in listed["value"]] == [master["id"]]  # /events: masters and single instances


async def test_iana_names_and_other_patterns(http: httpx.AsyncClient) -> None:
    monthly = {
        "subject": "Month end", "start": {"dateTime": "2026-01-31T10:00:00", "timeZone": "Europe/Prague"},
        "end": {"dateTime": "2026-01-31T11:00:00", "timeZone": "Europe/Prague"},
        "recurrence": {"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
                       "range": {"type": "endDate", "startDate": "2026-01-31", "endDate": "2026-04-30"}}}
    master = await ok(http.post(EVENTS, json=monthly), 201)
    window = {"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2026-12-31T00:00:00Z"}
    instances = await ok(http.get(f"{EVENTS}/{master['id']}/instances", params=window))
    assert [e["start"]["dateTime"][:10] for e in instances["value"]] == [
        "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
    daily = {
        "subject": "Every other day", "start": {"dateTime": "2026-06-01T12:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-06-01T12:30:00", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "daily", "interval": 2},
                       "range": {"type": "endDate", "startDate": "2026-06-01", "endDate": "2026-06-07"}}}
    master = await ok(http.post(EVENTS, json=daily), 201)
    instances = await ok(http.get(f"{EVENTS}/{master['id']}/instances", params=window))
    assert [e["start"]["dateTime"][:10] for e in instances["value"]] == [
        "2026-06-01", "2026-06-03", "2026-06-05", "2026-06-07"]
    yearly = {
        "subject": "Leap", "start": {"dateTime": "2028-02-29T08:00:00", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2028-02-29T09:00:00", "timeZone": "Pacific Standard Time"},
        "recurrence": {"pattern": {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2},
                       "range": {"type": "numbered", "startDate": "2028-02-29", "numberOfOccurrences": 2}}}
    master = await ok(http.post(EVENTS, json=yearly), 201)
    window = {"startDateTime": "2028-01-01T00:00:00Z", "endDateTime": "2030-01-01T00:00:00Z"}
    instances = await ok(http.get(f"{EVENTS}/{master['id']}/instances", params=window))
    assert [e["start"]["dateTime"] for e in instances["value"]] == [
        "2028-02-29T16:00:00.0000000", "2029-02-28T16:00:00.0000000"]
    bad = weekly("2026-03-16T09:00:00")
    bad["recurrence"]["pattern"]["type"] = "fortnightly"
    assert (await http.post(EVENTS, json=bad)).status_code == 400
    bad = weekly("2026-03-16T09:00:00", zone="Mars/Olympus_Mons")
    assert (await http.post(EVENTS, json=bad)).status_code == 400


async def test_exceptions_cancellations_and_instances(http: httpx.AsyncClient) -> None:
    master = await ok(http.post(EVENTS, json=weekly("2026-03-16T09:00:00")), 201)
    first, second, third, _ = await view(http)
    moved = await ok(http.patch(f"{EVENTS}/{second['id']}", json={
        "subject": "Moved", "start": {"dateTime": "2026-03-24T14:00:00", "timeZone": "Europe/Prague"},
        "end": {"dateTime": "2026-03-24T15:00:00", "timeZone": "Europe/Prague"}}))
    assert moved["id"] == second["id"] and moved["type"] == "exception"
    assert moved["originalStart"] == "2026-03-23T08:00:00Z"
    assert moved["start"]["dateTime"] == "2026-03-24T13:00:00.0000000"
    assert (await ok(http.delete(f"{EVENTS}/{third['id']}"), 204)) is None
    assert (await http.get(f"{EVENTS}/{third['id']}")).status_code == 404
    shown = await view(http)
    assert [(e["subject"], e["type"]) for e in shown] == [
        ("Weekly", "occurrence"), ("Moved", "exception"), ("Weekly", "occurrence")]
    instances = await ok(http.get(f"{EVENTS}/{master['id']}/instances", params=SPRING))
    assert [e["id"] for e in instances["value"]] == [e["id"] for e in shown]
    await ok(http.patch(f"{EVENTS}/{master['id']}", json={"subject": "Renamed"}))
    assert [e["subject"] for e in await view(http)] == ["Renamed", "Moved", "Renamed"]
    assert (await http.patch(f"{EVENTS}/{first['id']}", json={"recurrence": None})).status_code == 400
    await ok(http.delete(f"{EVENTS}/{master['id']}"), 204)
    assert await view(http) == [] and (await http.get(f"{EVENTS}/{first['id']}")).status_code == 404


async def test_prefer_outlook_timezone_and_all_day_events(http: httpx.AsyncClient) -> None:
    created = await ok(http.post(EVENTS, json={
        "subject": "Call", "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-07-01T10:00:00", "timeZone": "W. Europe Standard Time"}}), 201)
    assert created["start"] == {"dateTime": "2026-07-01T07:00:00.0000000", "timeZone": "UTC"}
    assert created["originalStartTimeZone"] == "W. Europe Standard Time"
    read = await http.get(f"{EVENTS}/{created['id']}", headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'})
    assert read.json()["start"] == {"dateTime": "2026-07-01T00:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert 'outlook.timezone="Pacific Standard Time"' in read.headers["Preference-Applied"]
    window = {"startDateTime": "2026-07-01T00:00:00Z", "endDateTime": "2026-07-02T00:00:00Z"}
    shown = await view(http, window, Prefer='outlook.timezone="Europe/Prague", odata.maxpagesize=5')
    assert shown[0]["start"]["dateTime"] == "2026-07-01T09:00:00.0000000"
    not_midnight = {"subject": "Holiday", "isAllDay": True,
                    "start": {"dateTime": "2026-07-06T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2026-07-07T00:00:00", "timeZone": "UTC"}}
    refused = await http.post(EVENTS, json=not_midnight)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "ErrorInvalidRequest"
    prague = {**not_midnight, "start": {"dateTime": "2026-07-06T00:00:00", "timeZone": "Europe/Prague"},
              "end": {"dateTime": "2026-07-07T00:00:00", "timeZone": "Europe/Prague"}}
    holiday = await ok(http.post(EVENTS, json=prague), 201)
    assert holiday["start"]["dateTime"] == "2026-07-06T00:00:00.0000000" and holiday["isAllDay"]
    assert (await http.patch(f"{EVENTS}/{holiday['id']}", json={
        "end": {"dateTime": "2026-07-07T12:00:00", "timeZone": "Europe/Prague"}})).status_code == 400
    utc_midnight_in_prague = {**not_midnight, "start": {"dateTime": "2026-07-05T22:00:00Z", "timeZone": "UTC"},
                              "end": {"dateTime": "2026-07-06T22:00:00Z", "timeZone": "UTC"}}
    assert (await http.post(EVENTS, json=utc_midnight_in_prague)).status_code == 400


async def test_transaction_id_and_extended_properties(http: httpx.AsyncClient) -> None:
    body = {"subject": "Visit", "transactionId": "tx-42", "sensitivity": "private",
            "start": {"dateTime": "2026-09-01T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-09-01T11:00:00", "timeZone": "UTC"},
            "singleValueExtendedProperties": [{"id": PROP, "value": "A-501"}]}
    first = await ok(http.post(EVENTS, json=body), 201)
    again = await ok(http.post(EVENTS, json={**body, "subject": "Visit again"}), 201)
    assert again["id"] == first["id"] and again["subject"] == "Visit" and first["sensitivity"] == "private"
    assert "singleValueExtendedProperties" not in first
    lower_guid = PROP.replace("6C1C5A43-2B8E-4B57-9A0C-3F5E2D9B7C41", "6c1c5a43-2b8e-4b57-9a0c-3f5e2d9b7c41")
    found = await ok(http.get(EVENTS, params={
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{lower_guid}' and ep/value eq 'a-501')"}))
    assert [e["id"] for e in found["value"]] == [first["id"]]
    assert "singleValueExtendedProperties" not in found["value"][0]
    other_name = PROP.replace("NetGeniumActivityId", "netgeniumactivityid")  # the name is case-sensitive
    none = await ok(http.get(EVENTS, params={
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{other_name}' and ep/value eq 'A-501')"}))
    assert none["value"] == []
    read = await ok(http.get(f"{EVENTS}/{first['id']}",
                             params={"$expand": f"singleValueExtendedProperties($filter=id eq '{lower_guid}')"}))
    assert read["singleValueExtendedProperties"] == [{"id": PROP, "value": "A-501"}]
    secret = {**body, "transactionId": "tx-43", "sensitivity": "secret"}
    assert (await http.post(EVENTS, json=secret)).status_code == 400
    window = {"startDateTime": "2026-08-01T00:00:00Z", "endDateTime": "2026-10-01T00:00:00Z"}
    for option in ("$select", "$expand", "$filter", "$orderby"):
        refused = await http.get(f"{VIEW}/delta", params={**window, option: "subject"})
        assert refused.status_code == 400, option


async def test_invitations_are_recorded_only_for_meetings(http: httpx.AsyncClient, admin: Admin) -> None:
    plain = {"subject": "Alone", "start": {"dateTime": "2026-09-01T10:00:00", "timeZone": "UTC"},
             "end": {"dateTime": "2026-09-01T11:00:00", "timeZone": "UTC"}}
    created = await ok(http.post(EVENTS, json=plain), 201)
    await ok(http.patch(f"{EVENTS}/{created['id']}", json={"subject": "Still alone"}))
    assert (await admin.call("GET", f"/users/{MAILBOX}/invitations")) == {"count": 0, "value": []}
    guest = {"emailAddress": {"address": "jan.novak@zakaznik.example"}, "type": "required"}
    meeting = await ok(http.post(EVENTS, json={**plain, "subject": "Meeting", "attendees": [guest]}), 201)
    await ok(http.patch(f"{EVENTS}/{meeting['id']}", json={"subject": "Meeting moved"}))
    await ok(http.delete(f"{EVENTS}/{meeting['id']}"), 204)
    sent = await admin.call("GET", f"/users/{MAILBOX}/invitations")
    assert sent["count"] == 3
    assert [(i["kind"], i["to"], i["source"]) for i in sent["value"]] == [
        ("request", ["jan.novak@zakaznik.example"], "graph"), ("update", ["jan.novak@zakaznik.example"], "graph"),
        ("cancellation", ["jan.novak@zakaznik.example"], "graph")]


async def test_the_employee_edits_occurrences_through_the_admin_api(http: httpx.AsyncClient, admin: Admin) -> None:
    master = await admin.call("POST", f"/users/{MAILBOX}/events", weekly("2026-03-16T09:00:00"))
    path = f"/users/{MAILBOX}/events/{master['id']}/occurrences"
    changed = await admin.call("PATCH", f"{path}/2026-03-23", {"subject": "Dentist clash"})
    assert changed["type"] == "exception" and changed["subject"] == "Dentist clash"
    await admin.call("DELETE", f"{path}/2026-03-30")
    missing = await admin.http.request("DELETE", f"{path}/2026-03-31")
    assert missing.status_code == 404
    calendar = await admin.call("GET", f"/users/{MAILBOX}/calendar",
                                params={"start": "2026-03-01T00:00:00Z", "end": "2026-05-01T00:00:00Z"})
    assert [(c["start"], c["type"], c["subject"]) for c in calendar["value"]] == [
        ("2026-03-16T08:00:00Z", "occurrence", "Weekly"), ("2026-03-23T08:00:00Z", "exception", "Dentist clash"),
        ("2026-04-06T07:00:00Z", "occurrence", "Weekly")]
    assert [e["id"] for e in await view(http)] == [c["id"] for c in calendar["value"]]


async def test_relative_patterns_and_a_series_without_end(http: httpx.AsyncClient) -> None:
    second_thursday = {
        "subject": "Board", "start": {"dateTime": "2026-01-08T15:00:00", "timeZone": "Eastern Standard Time"},
        "end": {"dateTime": "2026-01-08T16:00:00", "timeZone": "Eastern Standard Time"},
        "recurrence": {"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["Thursday"],
                                   "index": "second"},
                       "range": {"type": "numbered", "startDate": "2026-01-08", "numberOfOccurrences": 3}}}
    master = await ok(http.post(EVENTS, json=second_thursday), 201)
    window = {"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2026-12-31T00:00:00Z"}
    instances = await ok(http.get(f"{EVENTS}/{master['id']}/instances", params=window))
    assert [e["start"]["dateTime"] for e in instances["value"]] == [
        "2026-01-08T20:00:00.0000000", "2026-02-12T20:00:00.0000000", "2026-03-12T19:00:00.0000000"]
    endless = weekly("2020-01-06T09:00:00", zone="GMT Standard Time")
    endless["recurrence"]["range"] = {"type": "noEnd", "startDate": "2020-01-06"}
    await ok(http.post(EVENTS, json=endless), 201)
    now = datetime.now(UTC)
    around = {"startDateTime": iso(now), "endDateTime": iso(now + timedelta(days=28))}
    shown = [e for e in await view(http, around) if e["subject"] == "Weekly"]
    assert len(shown) == 4 and {e["type"] for e in shown} == {"occurrence"}


async def test_event_modification_times_keep_fractions_of_a_second_as_graph_writes_them(
    http: httpx.AsyncClient,
) -> None:
    """Two edits within one second stay ordered (event resource example: 2017-04-15T03:00:50.7579581Z)."""
    import re

    slot = {"dateTime": "2026-03-16T09:00:00", "timeZone": "UTC"}
    made = await ok(http.post(EVENTS, json={"subject": "A", "start": slot, "end": slot}), 201)
    first = await ok(http.patch(f"{EVENTS}/{made['id']}", json={"subject": "B"}))
    second = await ok(http.patch(f"{EVENTS}/{made['id']}", json={"subject": "C"}))
    stamps = [made["lastModifiedDateTime"], first["lastModifiedDateTime"], second["lastModifiedDateTime"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", stamp) for stamp in stamps), stamps
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
