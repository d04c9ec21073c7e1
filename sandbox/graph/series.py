"""Recurring series: the occurrences of a series master, kept in step with it.

Each occurrence is an event of its own (`type` "occurrence", `seriesMasterId`, `originalStart`)
whose id is derived from the master's id and its original start, so the same occurrence keeps its
id whenever the series is expanded again. The calendar's change log gets one entry per occurrence
that appears, changes or goes away; the master itself is never in calendarView or its delta. An
occurrence changed on its own becomes an "exception" and keeps what was set on it; one deleted on
its own is cancelled and stays gone.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from datetime import datetime, time

from sandbox.graph import recurrence
from sandbox.graph.odata import change_key, iso
from sandbox.graph.records import CREATED, DELETED, UPDATED, EventRecord, User
from sandbox.graph.store import Store
from sandbox.graph.timezones import local_to_utc, zone

# What an occurrence never takes from its master.
_OWN = frozenset(
    {"id", "type", "seriesMasterId", "recurrence", "start", "end", "iCalUId", "changeKey", "originalStart"}
)


def occurrence_id(master_id: str, original: datetime) -> str:
    digest = hashlib.sha256(f"{master_id}|{iso(original)}".encode()).digest()
    return "AAMkA" + base64.urlsafe_b64encode(digest + b"\x00occ").decode() + "="


def original_key(original: datetime) -> str:
    return iso(original)


def expansion(master: EventRecord) -> dict[str, tuple[datetime, datetime]]:
    """Original start (key) -> (start, end) of every occurrence the master's rule gives, cancelled ones left out."""
    rule = master.data.get("recurrence")
    if not isinstance(rule, dict):
        return {}
    where = zone(master.zone)
    wall = master.start.astimezone(where).replace(tzinfo=None)
    length = master.end - master.start
    out: dict[str, tuple[datetime, datetime]] = {}
    for day in recurrence.dates(rule):
        start = local_to_utc(datetime.combine(day, time(wall.hour, wall.minute, wall.second)), where)
        if master.data.get("isAllDay"):
            end = local_to_utc(datetime.combine(day, time()) + length, where)
        else:
            end = start + length
        key = original_key(start)
        if key not in master.cancelled:
            out[key] = (start, end)
    return out


def _occurrence(master: EventRecord, key: str, start: datetime, end: datetime) -> EventRecord:
    original = datetime.fromisoformat(key.replace("Z", "+00:00"))
    data = copy.deepcopy(master.data)
    data.update(
        {
            "id": occurrence_id(str(master.data["id"]), original),
            "type": "occurrence",
            "seriesMasterId": master.data["id"],
            "recurrence": None,
            "originalStart": key,
            "changeKey": change_key(),
            "iCalUId": str(master.data.get("iCalUId", ""))[:-8] + hashlib.sha256(key.encode()).hexdigest()[:8].upper(),
        }
    )
    return EventRecord(
        data=data,
        start=start,
        end=end,
        extended=copy.deepcopy(master.extended),
        zone=master.zone,
        end_zone=master.end_zone,
        master_id=str(master.data["id"]),
        original=original,
    )


def sync(store: Store, user: User, master: EventRecord, props: frozenset[str]) -> None:
    """Bring the master's occurrences in line with it after `props` of the master changed (or it was created).

    Occurrences that the rule no longer gives are deleted (exceptions too); new ones are created;
    the rest take the master's changed properties (an exception keeps what was set on it).
    """
    wanted = expansion(master)
    for key in list(master.children):
        if key not in wanted:
            child_id = master.children.pop(key)
            user.events.pop(child_id, None)
            user.calendar.record(store.next_seq(), child_id, DELETED)
    for key, (start, end) in wanted.items():
        known = master.children.get(key)
        child = user.events.get(known) if known else None
        if child is None:
            child = _occurrence(master, key, start, end)
            master.children[key] = str(child.data["id"])
            user.events[str(child.data["id"])] = child
            user.calendar.record(store.next_seq(), str(child.data["id"]), CREATED)
            continue
        changed = set()
        for prop in props - _OWN - child.overridden:
            if child.data.get(prop) != master.data.get(prop):
                child.data[prop] = copy.deepcopy(master.data.get(prop))
                changed.add(prop)
        if "singleValueExtendedProperties" in props and child.extended != master.extended:
            child.extended = copy.deepcopy(master.extended)
            changed.add("singleValueExtendedProperties")
        if child.kind == "occurrence" and (child.start, child.end) != (start, end):
            child.start, child.end = start, end
            changed |= {"start", "end"}
        if changed:
            child.data["changeKey"] = change_key()
            child.data["lastModifiedDateTime"] = master.data.get("lastModifiedDateTime")
            user.calendar.record(store.next_seq(), str(child.data["id"]), UPDATED, frozenset(changed))


def drop_all(store: Store, user: User, master: EventRecord) -> None:
    """The master is deleted or stops recurring: every occurrence and exception goes."""
    for key in list(master.children):
        child_id = master.children.pop(key)
        user.events.pop(child_id, None)
        user.calendar.record(store.next_seq(), child_id, DELETED)


def child_on_date(user: User, master: EventRecord, day: str) -> EventRecord | None:
    """The occurrence or exception whose original start falls on `day` (yyyy-MM-dd, the series' zone)."""
    where = zone(master.zone)
    for key, child_id in master.children.items():
        original = datetime.fromisoformat(key.replace("Z", "+00:00"))
        if original.astimezone(where).date().isoformat() == day:
            return user.events.get(child_id)
    return None
