"""calendarView/delta over recurring series, and event notifications, under the real and ideal profiles.

A rule change or a series delete reports the occurrences that went as `@removed`; exceptions and
cancelled occurrences come through delta; rounds page, shuffle (real) and expire (410); changes
outside the window are `@removed` as the event: delta page warns; notifications name the master.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crm_core.domain.mailbox import event_resource
from crm_core.domain.notifications import ChangeType
from tests.graph.conftest import MAILBOX, TOKEN, Admin, Subscriber
from tests.graph.test_emulator_calendar import EVENTS, SPRING, VIEW, ok, weekly

DELTA = f"{VIEW}/delta"


async def _client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=base_url + "/v1.0", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def http(graph_server: Any, admin: Admin) -> AsyncIterator[httpx.AsyncClient]:
    await admin.steady_tokens()
    async for client in _client(graph_server.base_url):
        yield client


@pytest.fixture
async def ideal_http(ideal_server: Any, ideal_admin: Admin) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(ideal_server.base_url):
        yield client


async def round_of(
    http: httpx.AsyncClient, link: str | None = None, size: int = 2, window: dict[str, str] = SPRING
) -> tuple[list[dict[str, Any]], str, int]:
    """The items of one round, its delta link and how many pages it took."""
    headers = {"Prefer": f"odata.maxpagesize={size}"}
    answer = await (http.get(link, headers=headers) if link else http.get(DELTA, params=window, headers=headers))
    items, pages = [], 0
    while True:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        assert len(body["value"]) <= size
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], pages
        answer = await http.get(body["@odata.nextLink"], headers=headers)


def removed(items: list[dict[str, Any]]) -> set[str]:
    return {i["id"] for i in items if "@removed" in i}


def present(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in items if "@removed" not in i}


async def test_a_rule_change_reports_the_stale_occurrences_removed(http: httpx.AsyncClient) -> None:
    master = await ok(http.post(EVENTS, json=weekly("2026-03-16T09:00:00")), 201)
    items, link, pages = await round_of(http)
    assert pages == 2 and len(items) == 4 and not removed(items)
    assert master["id"] not in present(items) and {i["type"] for i in items} == {"occurrence"}
    ordered = sorted(items, key=lambda i: i["start"]["dateTime"])
    fewer = weekly("2026-03-16T09:00:00", count=2)["recurrence"]
    await ok(http.patch(f"{EVENTS}/{master['id']}", json={"recurrence": fewer}))
    items, link, _ = await round_of(http, link)
    assert removed(items) == {ordered[2]["id"], ordered[3]["id"]} and not present(items)
    later = weekly("2026-03-16T10:00:00", count=2)
    await ok(http.patch(f"{EVENTS}/{master['id']}", json={"start": later["start"], "end": later["end"]}))
    items, link, _ = await round_of(http, link)
    assert removed(items) == {ordered[0]["id"], ordered[1]["id"]}
    assert sorted(i["start"]["dateTime"] for i in present(items).values()) == [
        "2026-03-16T09:00:00.0000000", "2026-03-23T09:00:00.0000000"]
    survivors = set(present(items))
    await ok(http.delete(f"{EVENTS}/{master['id']}"), 204)
    items, _, _ = await round_of(http, link)
    assert removed(items) == survivors and all(i["@removed"] == {"reason": "deleted"} for i in items)


async def test_exceptions_and_cancelled_occurrences_come_through_delta(http: httpx.AsyncClient) -> None:
    await ok(http.post(EVENTS, json=weekly("2026-03-16T09:00:00")), 201)
    items, link, _ = await round_of(http, size=10)
    first, second, *_ = sorted(items, key=lambda i: i["start"]["dateTime"])
    await ok(http.patch(f"{EVENTS}/{first['id']}", json={"subject": "Only this one"}))
    await ok(http.delete(f"{EVENTS}/{second['id']}"), 204)
    items, link, _ = await round_of(http, link, size=10)
    assert removed(items) == {second["id"]}
    changed = present(items)[first["id"]]
    assert changed["type"] == "exception" and changed["subject"] == "Only this one"
    assert "body" in changed and "organizer" in changed  # calendarView delta returns events whole
    outside = {"subject": "Next year", "start": {"dateTime": "2027-03-01T10:00:00", "timeZone": "UTC"},
               "end": {"dateTime": "2027-03-01T11:00:00", "timeZone": "UTC"}}
    far = await ok(http.post(EVENTS, json=outside), 201)
    items, _, _ = await round_of(http, link, size=10)
    assert removed(items) == {far["id"]}  # "Events that are outside the date range ... have been added"


async def test_real_rounds_shuffle_and_expire_ideal_ones_do_not_shuffle(
    http: httpx.AsyncClient, admin: Admin, ideal_http: httpx.AsyncClient
) -> None:
    daily = {"subject": "Standup", "start": {"dateTime": "2026-04-01T09:00:00", "timeZone": "Europe/Prague"},
             "end": {"dateTime": "2026-04-01T09:15:00", "timeZone": "Europe/Prague"},
             "recurrence": {"pattern": {"type": "daily", "interval": 1},
                            "range": {"type": "numbered", "startDate": "2026-04-01", "numberOfOccurrences": 20}}}
    await ok(http.post(EVENTS, json=daily), 201)
    await ok(ideal_http.post(EVENTS, json=daily), 201)
    real, link, pages = await round_of(http, size=5)
    ideal, _, _ = await round_of(ideal_http, size=5)
    starts = [i["start"]["dateTime"] for i in real]
    assert pages == 4 and len(set(starts)) == 20 and starts != sorted(starts)
    assert [i["start"]["dateTime"] for i in ideal] == sorted(starts)
    await admin.faults(syncStateExpiryNext=1)
    gone = await http.get(link)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"
    assert (await http.get(link)).status_code == 410  # that sync state stays gone
    again, _, _ = await round_of(http, size=50)  # a new round without a token works
    assert len(again) == 20


async def test_delta_answers_in_the_preferred_time_zone(http: httpx.AsyncClient) -> None:
    await ok(http.post(EVENTS, json=weekly("2026-03-16T09:00:00", count=1)), 201)
    answer = await http.get(DELTA, params=SPRING, headers={"Prefer": 'outlook.timezone="Europe/Prague"'})
    assert answer.json()["value"][0]["start"] == {"dateTime": "2026-03-16T09:00:00.0000000",
                                                  "timeZone": "Europe/Prague"}


async def test_notifications_for_a_series_name_the_master(graph, admin: Admin, subscriber: Subscriber) -> None:
    await graph.create_subscription(
        resource=event_resource(MAILBOX), notification_url=f"{subscriber.url}/hook",
        lifecycle_notification_url=f"{subscriber.url}/lifecycle", client_state="s",
        expiration=datetime.now(UTC) + timedelta(hours=1))
    master = await admin.call("POST", f"/users/{MAILBOX}/events", weekly("2026-03-16T09:00:00"))
    created = await subscriber.next_batch()
    assert [(n.change_type, n.item_id) for n in created.changes] == [(ChangeType.CREATED, master["id"])]
    await admin.call("PATCH", f"/users/{MAILBOX}/events/{master['id']}/occurrences/2026-03-23", {"subject": "x"})
    changed = await subscriber.next_batch()
    assert [(n.change_type, n.item_id) for n in changed.changes] == [(ChangeType.UPDATED, master["id"])]
    await admin.call("DELETE", f"/users/{MAILBOX}/events/{master['id']}")
    deleted = await subscriber.next_batch()
    assert [(n.change_type, n.item_id) for n in deleted.changes] == [(ChangeType.DELETED, master["id"])]


async def test_an_item_deleted_while_a_round_pages_shifts_no_other_item_out_of_it(http: httpx.AsyncClient) -> None:
    """Graph resumes a round where its skipToken stopped; an item deleted meanwhile must not move
    the items after it under the offset, or one of them is never reported: its change belongs to
    this round, and the next round starts after it. (The emulator used to drop the slot of an item
    deleted mid-round: a soak lost an Outlook delete that way.)"""

    def single(n: int) -> dict[str, Any]:
        day = f"2026-04-{n + 1:02}"
        return {"subject": f"Item {n}", "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": f"{day}T10:00:00", "timeZone": "UTC"}}

    for n in range(4):
        await ok(http.post(EVENTS, json=single(n)), 201)
    _, link, _ = await round_of(http)
    created = [(await ok(http.post(EVENTS, json=single(n)), 201))["id"] for n in range(4, 14)]

    headers = {"Prefer": "odata.maxpagesize=2"}
    answer = await http.get(link, headers=headers)
    first = answer.json()
    assert len(first["value"]) == 2 and "@odata.nextLink" in first
    for item in first["value"]:  # what the client has seen is deleted before it reads on
        await ok(http.delete(f"{EVENTS}/{item['id']}"), 204)
    rest: list[dict[str, Any]] = []
    answer = await http.get(first["@odata.nextLink"], headers=headers)
    while True:
        body = answer.json()
        rest += body["value"]
        if "@odata.deltaLink" in body:
            break
        answer = await http.get(body["@odata.nextLink"], headers=headers)

    seen = [i["id"] for i in first["value"]] + [i["id"] for i in rest]
    assert sorted(seen) == sorted(created)  # every item of the round once, none skipped
    later, _, _ = await round_of(http, body["@odata.deltaLink"])
    assert removed(later) == {i["id"] for i in first["value"]}  # the next round reports the deletes
