"""Calendars: events created, edited and deleted in a user's calendar, numbered in the same store.

`transactionId` makes a create idempotent (a second create with the same one returns the first
event), single-value extended properties are kept (`extprops`), a `recurrence` makes a series
master whose occurrences `series` keeps in step, and every change to what calendarView shows goes
into the user's calendar change log that `calendarView/delta` reads. Change notifications go out for
the item the subscriber can read through `/events`: the event, or for an occurrence its master.
Invitations that Graph would mail to attendees are recorded per user (`User.invitations`).
"""

from __future__ import annotations

import copy
import secrets
from datetime import datetime
from typing import Any

from sandbox.graph import extprops, recurrence, series
from sandbox.graph.odata import apply_select, bad_request, change_key, etag, iso, iso_7, new_id, not_found, now_utc
from sandbox.graph.records import CREATED, DELETED, EVENT_PROPERTIES, UPDATED, EventRecord, User, text_preview
from sandbox.graph.store import Store
from sandbox.graph.timezones import parse_dtz, render, zone

SENSITIVITIES = ("normal", "personal", "private", "confidential")
# Properties a client cannot write (or that are written through their own handling).
_NOT_COPIED = frozenset(
    {"id", "start", "end", "singleValueExtendedProperties", "recurrence", "type", "seriesMasterId", "originalStart"}
)


def _defaults(user: User, event_id: str, transaction_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    now = now_utc()
    return {
        "createdDateTime": iso_7(now),
        "lastModifiedDateTime": iso_7(now),
        "changeKey": change_key(),
        "categories": [],
        "transactionId": transaction_id,
        "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC",
        "iCalUId": "040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper(),
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": True,
        "hasAttachments": False,
        "subject": "",
        "bodyPreview": "",
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": False,
        "isCancelled": False,
        "isOrganizer": True,
        "responseRequested": True,
        "seriesMasterId": None,
        "showAs": "busy",
        "type": "singleInstance",
        "webLink": f"https://outlook.office365.com/owa/?itemid={event_id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": "text", "content": ""},
        "location": {
            "displayName": "",
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {},
        },
        "locations": [],
        "recurrence": None,
        "attendees": [],
        "organizer": {"emailAddress": {"name": user.display_name, "address": user.mail or user.user_principal_name}},
        "onlineMeeting": None,
    }


def _times(
    body: dict[str, Any], record: EventRecord | None
) -> tuple[datetime, str, datetime, datetime, str, datetime]:
    """(start, its zone, its wall clock, end, its zone, its wall clock) after a create or update."""
    if "start" in body or record is None:
        start, start_zone, start_wall = parse_dtz(body.get("start"), "start")
    else:
        start, start_zone = record.start, record.zone
        start_wall = start.astimezone(zone(start_zone)).replace(tzinfo=None)
    if "end" in body or record is None:
        end, end_zone, end_wall = parse_dtz(body.get("end"), "end")
    else:
        end, end_zone = record.end, record.end_zone
        end_wall = end.astimezone(zone(end_zone)).replace(tzinfo=None)
    if end < start:
        raise bad_request("The event's end is before its start.", "ErrorInvalidRequest")
    return start, start_zone, start_wall, end, end_zone, end_wall


def _check(data: dict[str, Any], times: tuple[datetime, str, datetime, datetime, str, datetime]) -> None:
    _, start_zone, start_wall, _, end_zone, end_wall = times
    if data.get("sensitivity") not in SENSITIVITIES:
        raise bad_request(f"sensitivity must be one of {', '.join(SENSITIVITIES)}.", "ErrorInvalidRequest")
    if data.get("isAllDay"):
        midnight = start_wall.time() == end_wall.time() == datetime.min.time()
        if not midnight or zone(start_zone) != zone(end_zone) or end_wall <= start_wall:
            raise bad_request(
                "The start and end of an all-day event must be set to midnight and be in the same time zone.",
                "ErrorInvalidRequest",
            )


def _organized_by(user: User, record: EventRecord) -> bool:
    address = str(((record.data.get("organizer") or {}).get("emailAddress") or {}).get("address") or "").lower()
    return not address or address in {str(user.mail or "").lower(), user.user_principal_name.lower()}


def _invite(user: User, record: EventRecord, kind: str, source: str) -> None:
    """Graph mails attendees when their organizer creates, changes or deletes a meeting."""
    attendees = record.data.get("attendees") or []
    if not attendees or not _organized_by(user, record):
        return
    to = [str(((a or {}).get("emailAddress") or {}).get("address") or "") for a in attendees]
    user.invitations.append(
        {
            "id": new_id("AAMkA"),
            "kind": kind,
            "eventId": record.data["id"],
            "seriesMasterId": record.master_id,
            "subject": record.data.get("subject"),
            "to": to,
            "sentDateTime": iso(now_utc()),
            "source": source,
        }
    )


def _apply(record: EventRecord, body: dict[str, Any]) -> frozenset[str]:
    for key, value in body.items():
        if key not in _NOT_COPIED and not key.startswith("@odata"):
            record.data[key] = value
    if "singleValueExtendedProperties" in body:
        record.extended = extprops.merge(record.extended, extprops.parse(body["singleValueExtendedProperties"]))
    record.data["bodyPreview"] = text_preview(record.data.get("body"))
    record.data["lastModifiedDateTime"] = iso_7(now_utc())
    record.data["changeKey"] = change_key()
    return frozenset(key for key in body if not key.startswith("@odata") and key != "id")


def create_event(store: Store, user: User, body: Any, source: str = "graph") -> tuple[EventRecord, bool]:
    """POST /events; a second create with the same transactionId returns the first event."""
    if not isinstance(body, dict):
        raise bad_request("An event must be a JSON object.")
    transaction_id = body.get("transactionId")
    if transaction_id:
        for found in user.events.values():
            if found.data.get("transactionId") == transaction_id and found.master_id is None:
                return found, False
    times = _times(body, None)
    extprops.parse(body.get("singleValueExtendedProperties"))
    event_id = new_id()
    record = EventRecord(data=_defaults(user, event_id, transaction_id, body), start=times[0], end=times[3])
    record.data["id"] = event_id
    _apply(record, body)
    record.zone, record.end_zone = times[1], times[4]
    record.data["originalStartTimeZone"], record.data["originalEndTimeZone"] = times[1], times[4]
    _check(record.data, times)
    if body.get("recurrence"):
        record.data["recurrence"] = recurrence.normalize(body["recurrence"], times[2].date(), times[1])
        record.data["type"] = "seriesMaster"
    user.events[event_id] = record
    if record.kind == "seriesMaster":
        series.sync(store, user, record, frozenset())
    else:
        user.calendar.record(store.next_seq(), event_id, CREATED)
    store.notify("event", user, event_id, CREATED, ())
    _invite(user, record, "request", source)
    return record, True


def event(user: User, event_id: str) -> EventRecord:
    record = user.events.get(event_id)
    if record is None:
        raise not_found()
    return record


def update_event(store: Store, user: User, event_id: str, changes: Any, source: str = "graph") -> EventRecord:
    record = event(user, event_id)
    if not isinstance(changes, dict):
        raise bad_request("An event update must be a JSON object.")
    if "transactionId" in changes and changes["transactionId"] != record.data.get("transactionId"):
        raise bad_request("transactionId cannot be changed after the event is created.", "ErrorInvalidRequest")
    if record.master_id is not None and "recurrence" in changes:
        raise bad_request("An occurrence or exception of a series has no recurrence of its own.", "ErrorInvalidRequest")
    times = _times(changes, record)
    trial = {**record.data, **{k: v for k, v in changes.items() if k not in _NOT_COPIED}}
    _check(trial, times)
    rule = record.data.get("recurrence")
    if changes.get("recurrence"):
        rule = recurrence.normalize(changes["recurrence"], times[2].date(), times[1])
    elif "recurrence" in changes:
        rule = None
    elif rule and ("start" in changes or "end" in changes):
        rule = copy.deepcopy(rule)
        rule["range"]["startDate"] = times[2].date().isoformat()
    props = _apply(record, changes)
    record.start, record.zone, record.end, record.end_zone = times[0], times[1], times[3], times[4]
    record.data["originalStartTimeZone"], record.data["originalEndTimeZone"] = times[1], times[4]
    notify_id = event_id
    if record.master_id is not None:
        was = record.kind
        record.data["type"] = "exception"
        record.overridden |= props
        user.calendar.record(store.next_seq(), event_id, UPDATED, props | ({"type"} if was != "exception" else set()))
        notify_id = record.master_id
    elif rule or record.kind == "seriesMaster":
        was_master = record.kind == "seriesMaster"
        record.data["recurrence"] = rule
        if rule is None:
            series.drop_all(store, user, record)
            record.data["type"] = "singleInstance"
            user.calendar.record(store.next_seq(), event_id, CREATED)
        else:
            if not was_master:
                user.calendar.record(store.next_seq(), event_id, DELETED)
            record.data["type"] = "seriesMaster"
            series.sync(store, user, record, props)
    else:
        user.calendar.record(store.next_seq(), event_id, UPDATED, props)
    store.notify("event", user, notify_id, UPDATED, ())
    _invite(user, record, "update", source)
    return record


def delete_event(store: Store, user: User, event_id: str, source: str = "graph") -> None:
    record = event(user, event_id)
    del user.events[event_id]
    if record.master_id is not None and record.original is not None:
        # One occurrence cancelled: it leaves calendarView and the series remembers it is gone.
        master = user.events.get(record.master_id)
        if master is not None:
            master.cancelled.add(series.original_key(record.original))
            master.children.pop(series.original_key(record.original), None)
        user.calendar.record(store.next_seq(), event_id, DELETED)
        store.notify("event", user, record.master_id, UPDATED, ())
    elif record.kind == "seriesMaster":
        series.drop_all(store, user, record)
        store.notify("event", user, event_id, DELETED, ())
    else:
        user.calendar.record(store.next_seq(), event_id, DELETED)
        store.notify("event", user, event_id, DELETED, ())
    _invite(user, record, "cancellation", source)


def event_json(
    record: EventRecord, select: list[str] | None, expand_ids: list[str] | None, zone_name: str | None = None
) -> dict[str, Any]:
    """The event as Graph answers it, start and end in the preferred zone (UTC without one)."""
    full: dict[str, Any] = {"@odata.etag": etag(record.data["changeKey"]), "id": record.data["id"]}
    for key in EVENT_PROPERTIES:
        if key == "transactionId" and not record.data.get("transactionId"):
            continue  # Graph returns transactionId only when the app set it
        full[key] = copy.deepcopy(record.data.get(key))
    if record.data.get("isAllDay"):
        # An all-day event is a span of dates: midnight to midnight whatever zone the answer is in.
        for key, moment, name in (("start", record.start, record.zone), ("end", record.end, record.end_zone)):
            wall = moment.astimezone(zone(name)).replace(tzinfo=None)
            full[key] = {"dateTime": wall.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_name or "UTC"}
    else:
        full["start"], full["end"] = render(record.start, zone_name), render(record.end, zone_name)
    if record.original is not None:
        full["originalStart"] = iso(record.original)
    out = apply_select(full, select, ("id",))
    if expand_ids is not None:
        out["singleValueExtendedProperties"] = extprops.expanded(record.extended, expand_ids)
    return out
