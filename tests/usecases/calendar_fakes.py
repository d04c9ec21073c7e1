"""In-memory fakes of calendar sync's ports (crm_core.usecases.calendar_ports), shaped like the real
adapters where it matters to the sync:

- `FakeOutlook`: events by id and a change log; `calendarView/delta` from a link `delta:<n>` reports
  what changed after the first n log entries, last change per id, with no extended properties (as
  Graph's delta: the activity id is only on a read), a change that left the window as a removed id,
  and partial items when the change asked for it. `expire_links()` kills every link handed out.
- `FakeNetGenium`: activities by id with a `modified` stamp on every write; an upsert without an id
  but with an event id updates the activity holding that event id (the real client's unique column).

Both count the writes the sync makes (user edits made through the helpers are not counted) and can
be told to fail a call.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_core.domain.activities import CalendarActivity
from crm_core.domain.calendar import CalendarDelta, OutlookEvent, SyncedFields, SyncWindow
from crm_core.domain.calendar_state import CalendarConflict, CalendarPair, CalendarUsersState
from crm_core.domain.errors import CursorExpired
from crm_core.graph.errors import GraphNotFound
from crm_core.netgenium.errors import NetGeniumNotFound


class Clock:
    """One clock for both sides' modification stamps: every change is a second after the last."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


Failure = Callable[..., Exception | None]


class FakeOutlook:
    def __init__(self, mailbox: str, clock: Clock) -> None:
        self.mailbox = mailbox
        self.clock = clock
        self.events: dict[str, OutlookEvent] = {}
        # (id, partial item fields or None for the whole event); a missing event is a removal.
        self.log: list[tuple[str, dict[str, Any] | None]] = []
        self.transactions: dict[str, str] = {}
        self.writes: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()
        self.written: list[tuple[str, bool]] = []  # (event id, times_only) of write_event
        self.created_with: list[tuple[str, int]] = []  # (transaction id, activity id)
        self.delta_links: list[str | None] = []
        self.born: dict[str, int] = {}  # event id -> its position in the log when it was created
        self.fail: dict[str, Failure] = {}
        self._expired_before = 0
        self._ids = itertools.count(1)

    # ---- what the user does in Outlook (not counted) ----------------------------------------------

    def create(self, *, event_id: str | None = None, **fields: Any) -> OutlookEvent:
        fields.setdefault("subject", "Schůzka")
        fields.setdefault("body_text", "")
        fields.setdefault("location", "")
        fields.setdefault("all_day", False)
        fields.setdefault("sensitivity", "normal")
        fields.setdefault("kind", "singleInstance")
        new = OutlookEvent(id=event_id or f"AAMk-{next(self._ids)}", last_modified=self.clock.tick(), **fields)
        self.events[new.id] = new
        self.born.setdefault(new.id, len(self.log))
        self.log.append((new.id, None))
        return new

    def update(self, event_id: str, *, partial: tuple[str, ...] | None = None, **changes: Any) -> OutlookEvent:
        """Change an event; `partial` names the fields its delta item carries (besides the id)."""
        new = replace(self.events[event_id], last_modified=self.clock.tick(), **changes)
        self.events[event_id] = new
        self.log.append((event_id, {name: getattr(new, name) for name in partial} if partial is not None else None))
        return new

    def delete(self, event_id: str) -> None:
        del self.events[event_id]
        self.log.append((event_id, None))

    def expire_links(self) -> None:
        self._expired_before = len(self.log) + 1

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())

    def synced_events(self) -> list[OutlookEvent]:
        return [e for e in self.events.values() if e.kind != "seriesMaster"]

    # ---- the port ---------------------------------------------------------------------------------

    def _failure(self, name: str, *args: Any) -> None:
        if name in self.fail:
            error = self.fail[name](*args)
            if error is not None:
                raise error

    def _check(self, mailbox: str) -> None:
        assert mailbox == self.mailbox, f"asked for mailbox {mailbox}"

    async def calendar_delta(self, mailbox: str, window: SyncWindow, delta_link: str | None) -> CalendarDelta:
        self._check(mailbox)
        self._failure("calendar_delta", delta_link)
        self.reads["calendar_delta"] += 1
        self.delta_links.append(delta_link)
        link = f"delta:{len(self.log)}"
        if delta_link is None:
            events = [
                replace(e, activity_id=None)
                for e in self.events.values()
                if e.kind == "seriesMaster" or (e.start and e.end and window.holds(e.start, e.end))
            ]
            return CalendarDelta(events=events, removed=[], delta_link=link)
        position = int(delta_link.removeprefix("delta:"))
        if position < self._expired_before:
            raise CursorExpired("the delta link expired")
        last: dict[str, dict[str, Any] | None] = {}
        for event_id, item in self.log[position:]:
            last.pop(event_id, None)
            last[event_id] = item
        changed: list[OutlookEvent] = []
        removed: list[str] = []
        for event_id, item in last.items():
            found = self.events.get(event_id)
            if found is None and self.born.get(event_id, -1) >= position:
                continue  # Graph: an item that came and went since the link was never seen: not reported
            if found is None:
                removed.append(event_id)
            elif found.kind != "seriesMaster" and not (
                found.start and found.end and window.holds(found.start, found.end)
            ):
                removed.append(event_id)  # Graph: an event that left the window reads as removed
            elif item is not None:
                changed.append(OutlookEvent(id=event_id, **item))
            else:
                changed.append(replace(found, activity_id=None))  # delta carries no extended properties
        return CalendarDelta(events=changed, removed=removed, delta_link=link)

    async def event_ids_in_window(self, mailbox: str, window: SyncWindow) -> set[str]:
        self._check(mailbox)
        self._failure("event_ids_in_window")
        self.reads["event_ids_in_window"] += 1
        return {
            e.id
            for e in self.events.values()
            if e.kind != "seriesMaster" and e.start and e.end and window.holds(e.start, e.end)
        }

    async def read_event(self, mailbox: str, event_id: str) -> OutlookEvent | None:
        self._check(mailbox)
        self._failure("read_event", event_id)
        self.reads["read_event"] += 1
        return self.events.get(event_id)

    async def event_for_activity(self, mailbox: str, activity_id: int) -> OutlookEvent | None:
        self._check(mailbox)
        self.reads["event_for_activity"] += 1
        for found in self.events.values():
            if found.activity_id == str(activity_id):
                return found
        return None

    async def create_event_for(
        self, mailbox: str, fields: SyncedFields, *, transaction_id: str, activity_id: int
    ) -> OutlookEvent:
        self._check(mailbox)
        self._failure("create_event_for", fields)
        self.writes["create_event_for"] += 1
        self.created_with.append((transaction_id, activity_id))
        known = self.transactions.get(transaction_id)
        if known is not None and known in self.events:
            return self.events[known]  # Graph: the same transactionId is the same event
        new = self.create(
            subject=fields.subject,
            body_text=fields.body,
            location=fields.location,
            start=fields.start,
            end=fields.end,
            all_day=fields.all_day,
            activity_id=str(activity_id),
            transaction_id=transaction_id,  # Graph returns it on every read, delta included
        )
        self.transactions[transaction_id] = new.id
        return new

    async def write_event(self, mailbox: str, event_id: str, fields: SyncedFields, *, times_only: bool) -> None:
        self._check(mailbox)
        self._failure("write_event", event_id, fields)
        self.writes["write_event"] += 1
        self.written.append((event_id, times_only))
        if event_id not in self.events:
            raise GraphNotFound(f"event {event_id} not found", status=404)
        changes: dict[str, Any] = {"start": fields.start, "end": fields.end, "all_day": fields.all_day}
        if not times_only:
            changes.update(subject=fields.subject, body_text=fields.body, location=fields.location)
        self.update(event_id, **changes)

    async def remove_event(self, mailbox: str, event_id: str) -> bool:
        self._check(mailbox)
        self._failure("remove_event", event_id)
        self.writes["remove_event"] += 1
        if event_id not in self.events:
            return False
        self.delete(event_id)
        return True


class FakeNetGenium:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.activities: dict[int, CalendarActivity] = {}
        self.writes: Counter[str] = Counter()
        self.upserted: list[CalendarActivity] = []
        self.lookups = 0  # queries by event id (one per batch or per event)
        self.fail: dict[str, Failure] = {}
        self._ids = itertools.count(1001)

    # ---- what the user does in NET Genium (not counted) -------------------------------------------

    def create(self, user_id: int, **fields: Any) -> CalendarActivity:
        fields.setdefault("subject", "Schůzka")
        activity = CalendarActivity(id=next(self._ids), user_id=user_id, modified=self.clock.tick(), **fields)
        self.activities[activity.id] = activity  # type: ignore[index]
        return activity

    def update(self, activity_id: int, **changes: Any) -> CalendarActivity:
        activity = self.activities[activity_id].model_copy(update={**changes, "modified": self.clock.tick()})
        self.activities[activity_id] = activity
        return activity

    def delete(self, activity_id: int) -> None:
        del self.activities[activity_id]

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())

    def of_user(self, user_id: int) -> list[CalendarActivity]:
        return [a for a in self.activities.values() if a.user_id == user_id]

    # ---- the port ---------------------------------------------------------------------------------

    def _failure(self, name: str, *args: Any) -> None:
        if name in self.fail:
            error = self.fail[name](*args)
            if error is not None:
                raise error

    async def calendar_activity(self, activity_id: int) -> CalendarActivity | None:
        self._failure("calendar_activity", activity_id)
        return self.activities.get(activity_id)

    async def calendar_changes(self, user_id: int, since: datetime) -> list[CalendarActivity]:
        self._failure("calendar_changes", user_id)
        found = [a for a in self.of_user(user_id) if a.modified is not None and a.modified >= since]
        return sorted(found, key=lambda a: (a.modified or since, a.id or 0))

    async def calendar_event_ids_in_window(self, user_id: int, start: datetime, end: datetime) -> dict[int, str]:
        return {
            a.id: a.event_id
            for a in self.of_user(user_id)
            if a.id is not None and a.event_id and a.start <= end and a.end >= start
        }

    async def calendar_activity_ids(self, user_id: int) -> set[int]:
        return {a.id for a in self.of_user(user_id) if a.id is not None}

    def _find(self, event_id: str) -> int | None:
        found = sorted(a.id for a in self.activities.values() if a.event_id == event_id and a.id is not None)
        return found[0] if found else None

    async def find_calendar_activity_by_event_id(self, event_id: str) -> int | None:
        self.lookups += 1
        return self._find(event_id)

    async def find_calendar_activities_by_event_ids(self, event_ids: Iterable[str]) -> dict[str, int]:
        self.lookups += 1
        found: dict[str, int] = {}
        for event_id in event_ids:
            activity_id = self._find(event_id)
            if activity_id is not None:
                found[event_id] = activity_id
        return found

    async def create_calendar_activity(self, activity: CalendarActivity) -> int:
        # As the adapter's insert: repeatable by the unique event id (a second one updates the
        # first), so it is the upsert without an id; failures and writes count under that name.
        assert activity.id is None
        return await self.upsert_calendar_activity(activity)

    async def upsert_calendar_activity(self, activity: CalendarActivity) -> int:
        self._failure("upsert_calendar_activity", activity)
        self.writes["upsert_calendar_activity"] += 1
        self.upserted.append(activity)
        activity_id = activity.id
        if activity_id is None and activity.event_id:
            activity_id = self._find(activity.event_id)
        if activity_id is None:
            activity_id = next(self._ids)
        elif activity_id not in self.activities:
            raise NetGeniumNotFound(f"calendar activity {activity_id} not found", status=404)
        self.activities[activity_id] = activity.model_copy(update={"id": activity_id, "modified": self.clock.tick()})
        return activity_id

    async def delete_calendar_activity(self, activity_id: int) -> bool:
        self._failure("delete_calendar_activity", activity_id)
        self.writes["delete_calendar_activity"] += 1
        return self.activities.pop(activity_id, None) is not None


class FakePairs:
    """Pairs by (mailbox, event id), event ids case-sensitive like the table's row keys."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], CalendarPair] = {}
        self.fail: dict[str, Failure] = {}

    def _failure(self, name: str, *args: Any) -> None:
        if name in self.fail:
            error = self.fail[name](*args)
            if error is not None:
                raise error

    async def by_event(self, mailbox: str, event_id: str) -> CalendarPair | None:
        return self.rows.get((mailbox.lower(), event_id))

    async def by_activity(self, mailbox: str, activity_id: int) -> CalendarPair | None:
        for (box, _), pair in self.rows.items():
            if box == mailbox.lower() and pair.activity_id == activity_id:
                return pair
        return None

    async def save(self, pair: CalendarPair) -> None:
        self._failure("save", pair)
        self.rows[(pair.mailbox.lower(), pair.event_id)] = pair

    async def delete(self, pair: CalendarPair) -> None:
        self.rows.pop((pair.mailbox.lower(), pair.event_id), None)

    async def all(self, mailbox: str) -> list[CalendarPair]:
        return [pair for (box, _), pair in self.rows.items() if box == mailbox.lower()]


@dataclass
class FakeConflicts:
    logged: list[CalendarConflict] = field(default_factory=list)

    async def add(self, conflict: CalendarConflict) -> None:
        self.logged.append(conflict)


@dataclass
class FakeCursors:
    values: dict[str, str] = field(default_factory=dict)

    async def get(self, name: str) -> str | None:
        return self.values.get(name)

    async def set(self, name: str, value: str) -> None:
        self.values[name] = value

    async def clear(self, name: str) -> None:
        self.values.pop(name, None)


@dataclass
class FakeUsersState:
    saved: list[CalendarUsersState] = field(default_factory=list)

    async def save(self, state: CalendarUsersState) -> None:
        self.saved.append(state)

    async def load(self) -> CalendarUsersState | None:
        return self.saved[-1] if self.saved else None


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
