"""Calendars: events created, edited and deleted in a user's calendar, numbered in the same store.

`transactionId` makes a create idempotent (a second create with the same one returns the first
event), single-value extended properties are kept and can be expanded or filtered on, and every
change goes into the user's calendar change log that `calendarView/delta` reads.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from sandbox.graph.odata import (
    apply_select,
    bad_request,
    change_key,
    etag,
    graph_date_time_zone,
    iso,
    new_id,
    not_found,
    now_utc,
    parse_date_time_zone,
)
from sandbox.graph.records import CREATED, DELETED, EVENT_PROPERTIES, UPDATED, EventRecord, User, text_preview
from sandbox.graph.store import Store


def _extended(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("singleValueExtendedProperties must be a list.")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise bad_request("Each singleValueExtendedProperty needs an id and a value.")
        out.append({"id": item["id"], "value": str(item.get("value") if item.get("value") is not None else "")})
    return out


def _defaults(user: User, event_id: str, transaction_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    now = now_utc()
    return {
        "createdDateTime": iso(now),
        "lastModifiedDateTime": iso(now),
        "changeKey": change_key(),
        "categories": [],
        "transactionId": transaction_id,
        "originalStartTimeZone": (body.get("start") or {}).get("timeZone") or "UTC",
        "originalEndTimeZone": (body.get("end") or {}).get("timeZone") or "UTC",
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


def create_event(store: Store, user: User, body: Any) -> tuple[EventRecord, bool]:
    """POST /events; a second create with the same transactionId returns the first event."""
    if not isinstance(body, dict):
        raise bad_request("An event must be a JSON object.")
    transaction_id = body.get("transactionId")
    if transaction_id:
        for record in user.events.values():
            if record.data.get("transactionId") == transaction_id:
                return record, False
    start = parse_date_time_zone(body.get("start"), "start")
    end = parse_date_time_zone(body.get("end"), "end")
    if end < start:
        raise bad_request("The event's end is before its start.", "ErrorInvalidRequest")
    extended = _extended(body.get("singleValueExtendedProperties"))
    event_id = new_id()
    data = _defaults(user, event_id, transaction_id, body)
    for key, value in body.items():
        if key in ("id", "singleValueExtendedProperties", "start", "end") or key.startswith("@odata"):
            continue
        data[key] = value
    data["start"] = graph_date_time_zone(start)
    data["end"] = graph_date_time_zone(end)
    data["bodyPreview"] = text_preview(data.get("body"))
    data["id"] = event_id
    record = EventRecord(data=data, start=start, end=end, extended=extended)
    user.events[event_id] = record
    user.calendar.record(store.next_seq(), event_id, CREATED)
    store.notify("event", user, event_id, CREATED, ())
    return record, True


def event(user: User, event_id: str) -> EventRecord:
    record = user.events.get(event_id)
    if record is None:
        raise not_found()
    return record


def update_event(store: Store, user: User, event_id: str, changes: Any) -> EventRecord:
    record = event(user, event_id)
    if not isinstance(changes, dict):
        raise bad_request("An event update must be a JSON object.")
    if "transactionId" in changes and changes["transactionId"] != record.data.get("transactionId"):
        raise bad_request("transactionId cannot be changed after the event is created.", "ErrorInvalidRequest")
    start = parse_date_time_zone(changes["start"], "start") if "start" in changes else record.start
    end = parse_date_time_zone(changes["end"], "end") if "end" in changes else record.end
    if end < start:
        raise bad_request("The event's end is before its start.", "ErrorInvalidRequest")
    for key, value in changes.items():
        if key in ("id", "start", "end", "singleValueExtendedProperties") or key.startswith("@odata"):
            continue
        record.data[key] = value
    if "singleValueExtendedProperties" in changes:
        for item in _extended(changes["singleValueExtendedProperties"]):
            record.extended = [e for e in record.extended if e["id"].lower() != item["id"].lower()]
            record.extended.append(item)
    record.start, record.end = start, end
    record.data["start"] = graph_date_time_zone(start)
    record.data["end"] = graph_date_time_zone(end)
    record.data["bodyPreview"] = text_preview(record.data.get("body"))
    record.data["lastModifiedDateTime"] = iso(now_utc())
    record.data["changeKey"] = change_key()
    changed = frozenset(key for key in changes if not key.startswith("@odata") and key != "id")
    user.calendar.record(store.next_seq(), event_id, UPDATED, changed)
    store.notify("event", user, event_id, UPDATED, ())
    return record


def delete_event(store: Store, user: User, event_id: str) -> None:
    event(user, event_id)
    del user.events[event_id]
    user.calendar.record(store.next_seq(), event_id, DELETED)
    store.notify("event", user, event_id, DELETED, ())


def event_json(record: EventRecord, select: list[str] | None, expand_ids: list[str] | None) -> dict[str, Any]:
    full: dict[str, Any] = {"@odata.etag": etag(record.data["changeKey"]), "id": record.data["id"]}
    for key in EVENT_PROPERTIES:
        if key == "transactionId" and not record.data.get("transactionId"):
            continue  # Graph returns transactionId only when the app set it
        full[key] = copy.deepcopy(record.data.get(key))
    out = apply_select(full, select, ("id",))
    if expand_ids is not None:
        wanted = {item.lower() for item in expand_ids}
        out["singleValueExtendedProperties"] = [
            dict(item) for item in record.extended if not wanted or item["id"].lower() in wanted
        ]
    return out
