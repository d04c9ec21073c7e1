"""Calendar sync state against Azurite: pairs, overwritten edits, and who is in sync."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from crm_core.domain.calendar_state import CalendarConflict, CalendarPair, CalendarUsersState
from crm_core.storage.calendar import CalendarConflicts, CalendarPairs, CalendarUsers
from crm_core.storage.tables import CALENDAR_USERS_TABLE, TableStorage

ALICE = "Alice@Example.com"
BOB = "bob@example.com"
# Graph ids are long base64 with `/`, `+`, `=` (none allowed in a Table key as they stand).
EVENT = "AAMkAGI2TG93AAA=/x+y=="
WHEN = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def pair(event_id: str = EVENT, activity_id: int = 4711, mailbox: str = ALICE, **changes: object) -> CalendarPair:
    base = CalendarPair(
        mailbox=mailbox,
        event_id=event_id,
        activity_id=activity_id,
        fingerprint="fp-" + event_id,
        series_master_id="AAMkSeries/Master==",
        event_modified=WHEN,
        activity_modified=WHEN + timedelta(minutes=5),
        private=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_a_pair_round_trips_with_every_field(storage: TableStorage) -> None:
    pairs = CalendarPairs(storage)
    saved = pair(activity_id=2**40 + 7)
    await pairs.save(saved)
    found = await pairs.by_event(ALICE, EVENT)
    assert found == saved
    assert found is not None and type(found.event_modified) is datetime
    assert found.event_modified is not None and found.event_modified.utcoffset() == timedelta(0)
    assert await pairs.by_event(ALICE, "no such event") is None


async def test_none_stays_none_and_times_come_back_in_utc(storage: TableStorage) -> None:
    pairs = CalendarPairs(storage)
    prague = timezone(timedelta(hours=1))
    bare = pair(series_master_id=None, event_modified=None, activity_modified=WHEN.astimezone(prague), private=False)
    await pairs.save(bare)
    found = await pairs.by_event(ALICE, EVENT)
    assert found is not None
    assert (found.series_master_id, found.event_modified, found.private) == (None, None, False)
    assert found.activity_modified == WHEN and found.activity_modified.tzinfo == UTC
    # Replacing a pair drops what the new one no longer has.
    await pairs.save(pair())
    await pairs.save(bare)
    again = await pairs.by_event(ALICE, EVENT)
    assert again is not None and again.series_master_id is None


async def test_the_mailbox_is_case_blind_but_event_ids_are_not(storage: TableStorage) -> None:
    pairs = CalendarPairs(storage)
    upper, lower = pair("AAMkAbC=", 1), pair("AAMkabc=", 2)
    await pairs.save(upper)
    await pairs.save(lower)
    assert await pairs.by_event(ALICE.upper(), "AAMkAbC=") == upper
    assert await pairs.by_event(ALICE.lower(), "AAMkabc=") == lower
    assert len(await pairs.all("alice@example.COM")) == 2


async def test_by_activity_finds_small_and_large_ids_in_the_right_mailbox(storage: TableStorage) -> None:
    # Ids below 2**32 are where the SDK's own int parameters would miss an Int64 column (0 and 1
    # it even sends as booleans); beyond 2**31 an id no longer fits an Int32.
    pairs = CalendarPairs(storage)
    ids = [0, 1, 5, 2**31 + 3, 3_000_000_000, 2**40]
    for n, activity_id in enumerate(ids):
        await pairs.save(pair(f"event-{n}", activity_id))
    await pairs.save(pair("bob-event", 5, mailbox=BOB))
    for n, activity_id in enumerate(ids):
        found = await pairs.by_activity(ALICE, activity_id)
        assert found is not None and (found.event_id, found.activity_id) == (f"event-{n}", activity_id)
    bobs = await pairs.by_activity(BOB, 5)
    assert bobs is not None and bobs.event_id == "bob-event"
    assert await pairs.by_activity(ALICE, 6) is None
    assert await pairs.by_activity("carol@example.com", 5) is None


async def test_delete_is_idempotent(storage: TableStorage) -> None:
    pairs = CalendarPairs(storage)
    await pairs.save(pair())
    await pairs.delete(pair())
    await pairs.delete(pair())
    await pairs.delete(pair("never saved", mailbox="nobody@example.com"))
    assert await pairs.by_event(ALICE, EVENT) is None
    assert await pairs.by_activity(ALICE, 4711) is None


async def test_wipe_one_mailbox_leaves_the_others(storage: TableStorage) -> None:
    pairs = CalendarPairs(storage)
    assert await pairs.wipe() == 0
    # More than one transaction's worth (100) in Alice's partition.
    await asyncio.gather(*(pairs.save(pair(f"a-{n}", n)) for n in range(130)))
    await asyncio.gather(*(pairs.save(pair(f"b-{n}", n, mailbox=BOB)) for n in range(3)))
    assert await pairs.wipe("ALICE@example.com") == 130
    assert await pairs.all(ALICE) == []
    assert sorted(p.event_id for p in await pairs.all(BOB)) == ["b-0", "b-1", "b-2"]
    assert await pairs.wipe(ALICE) == 0
    await pairs.save(pair())
    assert await pairs.wipe() == 4
    assert await pairs.all(ALICE) == [] and await pairs.all(BOB) == []


def conflict(at: datetime, mailbox: str = ALICE, **changes: object) -> CalendarConflict:
    base = CalendarConflict(
        mailbox=mailbox,
        at=at,
        winner="outlook",
        loser="netgenium",
        event_id=EVENT,
        activity_id=3_000_000_000,
        fields=("subject", "start"),
        winner_modified=at - timedelta(minutes=1),
        loser_modified=at - timedelta(minutes=2),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_conflicts_come_newest_first_with_a_limit(storage: TableStorage) -> None:
    conflicts = CalendarConflicts(storage)
    assert await conflicts.recent() == [] and await conflicts.count() == 0
    # Added out of order, two in the same microsecond, over two mailboxes.
    times = [WHEN + timedelta(hours=h) for h in (3, 0, 5, 1, 4, 2)]
    for n, at in enumerate(times):
        await conflicts.add(conflict(at, ALICE if n % 2 else BOB))
    await conflicts.add(conflict(times[2], ALICE, fields=()))
    assert await conflicts.count() == 7
    everything = await conflicts.recent()
    assert [c.at for c in everything] == sorted([*times, times[2]], reverse=True)
    assert [c.at for c in await conflicts.recent(limit=3)] == [times[2], times[2], times[4]]
    alices = await conflicts.recent(mailbox="alice@EXAMPLE.com")
    assert {c.mailbox for c in alices} == {ALICE} and len(alices) == 4
    assert [c.at for c in await conflicts.recent(limit=2, mailbox=BOB)] == [times[2], times[4]]
    assert await conflicts.recent(limit=0) == []


async def test_a_conflict_round_trips(storage: TableStorage) -> None:
    conflicts = CalendarConflicts(storage)
    recorded = conflict(WHEN)
    await conflicts.add(recorded)
    await conflicts.add(conflict(WHEN - timedelta(days=1), winner_modified=None, loser_modified=None))
    newest, older = await conflicts.recent()
    assert newest == recorded
    assert (older.winner_modified, older.loser_modified) == (None, None)


def users_state(unmatched: int, at: datetime = WHEN) -> CalendarUsersState:
    return CalendarUsersState(
        refreshed_at=at,
        synced=[{"ng_user_id": 7, "email": "žofie.šťastná@example.cz", "mailbox": "zofie@example.cz"}],
        unmatched=[
            {"ng_user_id": n, "email": f"user{n}.{'x' * 40}@example.com", "reason": f"no mailbox 😀 #{n}"}
            for n in range(unmatched)
        ],
    )


async def test_users_state_is_none_before_the_first_refresh(storage: TableStorage) -> None:
    assert await CalendarUsers(storage).load() is None


async def test_a_large_users_state_round_trips_and_replaces_the_last(storage: TableStorage) -> None:
    users = CalendarUsers(storage)
    large = users_state(2_000)
    await users.save(large)
    assert await users.load() == large
    table = await storage.table(CALENDAR_USERS_TABLE)
    rows = [row async for row in table.list_entities()]
    assert len(rows) > 5  # the document really was cut into parts of under 64 KiB
    assert all(len(str(row.get("Data", "")).encode("utf-16-le")) < 64 * 1024 for row in rows)
    small = users_state(3, WHEN + timedelta(hours=1))
    await users.save(small)
    assert await users.load() == small
    # The replaced parts are gone: a head and the one part of the small state remain.
    assert len([row async for row in table.list_entities()]) == 2


async def test_an_older_refresh_saved_late_does_not_replace_a_newer_one(storage: TableStorage) -> None:
    users = CalendarUsers(storage)
    newer = users_state(10, WHEN + timedelta(minutes=1))
    await users.save(newer)
    await users.save(users_state(500, WHEN))
    assert await users.load() == newer
    table = await storage.table(CALENDAR_USERS_TABLE)
    assert len([row async for row in table.list_entities()]) == 2


async def test_concurrent_saves_and_loads_always_see_a_whole_state(storage: TableStorage) -> None:
    users = CalendarUsers(storage)
    states = [users_state(300 + n, WHEN + timedelta(seconds=n)) for n in range(4)]
    await users.save(states[0])
    results = await asyncio.gather(*(users.save(s) for s in states[1:]), *(users.load() for _ in range(6)))
    assert all(loaded in states for loaded in results[3:])
    assert await users.load() == states[-1]


async def test_a_table_first_used_by_sixteen_tasks_at_once_is_created_once(storage) -> None:
    import asyncio

    clients = await asyncio.gather(*(storage.table("ColdStart") for _ in range(16)))
    assert all(client is clients[0] for client in clients)
