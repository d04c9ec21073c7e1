"""Calendar operations of the adapter against the emulator: idempotent create, delta, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_core.graph.errors import FullResyncNeeded, GraphRejected
from crm_core.graph.models import ACTIVITY_PROPERTY_ID, EventDraft
from tests.graph.conftest import MAILBOX, Admin

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = (NOW - timedelta(days=30), NOW + timedelta(days=365))


def _draft(subject: str, days: int = 1, hours: int = 1) -> EventDraft:
    start = NOW + timedelta(days=days)
    return EventDraft(subject=subject, start=start, end=start + timedelta(hours=hours), body="<p>Agenda</p>",
                      body_is_html=True, location="Customer HQ")



async def test_create_with_the_same_transaction_id_returns_the_first_event(graph, admin: Admin) -> None:
    first = await graph.create_event(MAILBOX, _draft("Visit"), transaction_id="tx-1", activity_id="501")
    again = await graph.create_event(MAILBOX, _draft("Visit"), transaction_id="tx-1", activity_id="501")
    assert again.id == first.id
    delta = await graph.event_delta(MAILBOX, *WINDOW)
    assert [e.id for e in delta.events] == [first.id]
    stats = await admin.stats()
    assert stats["requests"]["createEvent"] == 2


async def test_created_event_carries_the_activity_id_and_the_synced_fields(graph, admin: Admin) -> None:
    created = await graph.create_event(MAILBOX, _draft("Visit", hours=2), transaction_id="tx-2", activity_id="77")
    assert created.activity_id == "77"
    read = await graph.get_event(MAILBOX, created.id)
    assert read.activity_id == "77"
    assert read.subject == "Visit" and read.location_name == "Customer HQ"
    assert read.transaction_id == "tx-2"
    assert read.start is not None and read.end is not None
    assert read.end.as_utc() - read.start.as_utc() == timedelta(hours=2)
    assert read.start.as_utc() == NOW + timedelta(days=1)
    found = await graph.find_event_by_activity(MAILBOX, "77")
    assert found is not None and found.id == created.id
    assert await graph.find_event_by_activity(MAILBOX, "78") is None
    assert [p.id for p in read.single_value_extended_properties] == [ACTIVITY_PROPERTY_ID]


async def test_update_and_delete_an_event_and_delete_twice(graph, admin: Admin) -> None:
    created = await graph.create_event(MAILBOX, _draft("Old"), transaction_id="tx-3", activity_id="9")
    updated = await graph.update_event(MAILBOX, created.id, _draft("New", days=2))
    assert updated.id == created.id and updated.subject == "New"
    assert updated.change_key != created.change_key
    assert await graph.delete_event(MAILBOX, created.id) is True
    assert await graph.delete_event(MAILBOX, created.id) is False


async def test_event_delta_reports_outlook_edits_and_deletes_in_the_window(graph, admin: Admin) -> None:
    await admin.steady_tokens()
    inside = await admin.call("POST", f"/users/{MAILBOX}/events", {
        "subject": "Inside", "start": {"dateTime": (NOW + timedelta(days=3)).isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": (NOW + timedelta(days=3, hours=1)).isoformat(), "timeZone": "UTC"}})
    await admin.call("POST", f"/users/{MAILBOX}/events", {
        "subject": "Far away", "start": {"dateTime": "2099-01-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2099-01-01T11:00:00", "timeZone": "UTC"}})
    other = await graph.create_event(MAILBOX, _draft("Ours"), transaction_id="tx-4", activity_id="1")

    first = await graph.event_delta(MAILBOX, *WINDOW, page_size=1)
    assert sorted(e.subject or "" for e in first.events) == ["Inside", "Ours"]
    assert first.requests >= 2  # the pages were followed (a page may hold fewer items than its size)

    await admin.call("PATCH", f"/users/{MAILBOX}/events/{inside['id']}", {"subject": "Inside, moved"})
    await admin.call("DELETE", f"/users/{MAILBOX}/events/{other.id}")
    second = await graph.event_delta(MAILBOX, *WINDOW, first.delta_link)
    assert [e.subject for e in second.events] == ["Inside, moved"]
    assert second.removed_ids == [other.id]

    await admin.call("POST", "/sync-states/expire")
    with pytest.raises(FullResyncNeeded):
        await graph.event_delta(MAILBOX, *WINDOW, second.delta_link)


async def test_an_event_ending_before_it_starts_is_rejected(graph, admin: Admin) -> None:
    start = NOW + timedelta(days=1)
    bad = EventDraft(subject="Backwards", start=start, end=start - timedelta(hours=1))
    with pytest.raises(GraphRejected) as caught:
        await graph.create_event(MAILBOX, bad, transaction_id="tx-5", activity_id="2")
    assert caught.value.status == 400 and not caught.value.retryable


async def test_the_ids_in_a_window_are_every_event_and_occurrence_it_holds(graph, admin: Admin) -> None:
    """The sweep's listing: calendarView ids only, every page, occurrences and not their master."""
    inside = [await graph.create_event(MAILBOX, _draft(f"In {n}", days=n + 1), transaction_id=f"tx-in-{n}",
                                       activity_id=str(100 + n)) for n in range(3)]
    await graph.create_event(MAILBOX, _draft("Far", days=400), transaction_id="tx-far", activity_id="200")
    start = (NOW + timedelta(days=10)).replace(hour=9, minute=0, second=0).strftime("%Y-%m-%dT%H:%M:%S")
    series = await admin.call("POST", f"/users/{MAILBOX}/events", {
        "subject": "Daily", "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": start[:11] + "10:00:00", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "numbered", "startDate": start[:10], "numberOfOccurrences": 3}}})

    ids = await graph.event_ids_in_view(MAILBOX, *WINDOW)

    delta = await graph.event_delta(MAILBOX, *WINDOW)
    occurrences = {e.id for e in delta.events if e.series_master_id == series["id"]}
    assert len(occurrences) == 3
    assert ids == {e.id for e in inside} | occurrences
