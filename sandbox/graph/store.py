"""The emulator's state: users, their mail folders, messages, events, and the change log delta reads.

Everything lives in memory. Every change gets a sequence number; a delta token is the sequence number
a client has seen (plus the sync-state generation, so the admin API can make every token stale and
the client must fall back to a full resync, as after Graph's `syncStateNotFound`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class GraphError(Exception):
    """An error answered in Graph's shape: ``{"error": {"code", "message", "innerError"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": iso(now_utc()),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        }


def not_found(what: str = "The specified object was not found in the store.") -> GraphError:
    return GraphError(404, "ErrorItemNotFound", what)


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Graph writes UTC instants as ``2024-05-01T10:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_instant(value: Any, *, name: str = "dateTime") -> datetime:
    """Graph accepts ISO 8601 with up to seven fractional digits and with or without an offset."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"Invalid {name}: expected an ISO 8601 date and time.")
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"Invalid {name} {value!r}: expected an ISO 8601 date and time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_date_time_zone(value: Any, name: str) -> datetime:
    """A ``dateTimeTimeZone`` (``{"dateTime", "timeZone"}``) as a UTC instant."""
    if not isinstance(value, dict):
        raise bad_request(f"Invalid {name}: expected {{'dateTime', 'timeZone'}}.")
    moment = parse_instant(value.get("dateTime"), name=name)
    zone_name = str(value.get("timeZone") or "UTC")
    if zone_name.upper() not in ("UTC", "Z") and moment.utcoffset() == timedelta(0):
        try:
            moment = moment.replace(tzinfo=ZoneInfo(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise bad_request(f"Time zone {zone_name!r} is not supported by the emulator.") from None
    return moment.astimezone(UTC)


def graph_date_time_zone(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def new_id(prefix: str = "AAMkA") -> str:
    """An id shaped like an Exchange immutable id: base64 with ``-``, ``_`` and ``=`` in it."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(33)).decode() + "="


def change_key() -> str:
    return base64.b64encode(secrets.token_bytes(12)).decode()


def encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The delta or skip token is malformed.", "BadRequest") from None
    if not isinstance(payload, dict):
        raise bad_request("The delta or skip token is malformed.", "BadRequest")
    return payload


WELL_KNOWN_FOLDERS = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "deleteditems": "Deleted Items",
    "archive": "Archive",
}

MESSAGE_PROPERTIES = (
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
)
MESSAGE_ONLY_WHEN_SELECTED = ("internetMessageHeaders", "uniqueBody")

EVENT_PROPERTIES = (
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "transactionId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "hasAttachments",
    "subject",
    "bodyPreview",
    "importance",
    "sensitivity",
    "isAllDay",
    "isCancelled",
    "isOrganizer",
    "responseRequested",
    "seriesMasterId",
    "showAs",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "allowNewTimeProposals",
    "isDraft",
    "hideAttendees",
    "responseStatus",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "recurrence",
    "attendees",
    "organizer",
    "onlineMeeting",
)

USER_DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
USER_SELECTABLE = (*USER_DEFAULT_PROPERTIES, "proxyAddresses", "accountEnabled", "otherMails")

ATTACHMENT_PROPERTIES = (
    "lastModifiedDateTime",
    "name",
    "contentType",
    "size",
    "isInline",
    "contentId",
    "contentLocation",
)


def parse_select(value: str | None, allowed: tuple[str, ...] | list[str], type_name: str) -> list[str] | None:
    """``$select=a,b``: the names, or None; an unknown name is Graph's 400 from its URI parser."""
    if value is None or not value.strip():
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    lookup = {name.lower(): name for name in allowed}
    out = []
    for name in names:
        if name == "*":
            return None
        canonical = lookup.get(name.lower())
        if canonical is None:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
            )
        out.append(canonical)
    return out


def apply_select(full: dict[str, Any], select: list[str] | None, always: tuple[str, ...]) -> dict[str, Any]:
    if select is None:
        return full
    keep = set(select) | set(always)
    return {key: value for key, value in full.items() if key in keep or key.startswith("@odata")}


@dataclass
class Folder:
    id: str
    display_name: str
    well_known: str | None
    # message id -> (sequence number of its last change, present in this folder now)
    log: dict[str, tuple[int, bool]] = field(default_factory=dict)


@dataclass
class MessageRecord:
    data: dict[str, Any]
    folder_id: str
    attachments: list[dict[str, Any]]
    odata_type: str | None = None


@dataclass
class EventRecord:
    data: dict[str, Any]
    start: datetime
    end: datetime
    extended: list[dict[str, str]] = field(default_factory=list)


@dataclass
class User:
    id: str
    user_principal_name: str
    mail: str | None
    proxy_addresses: list[str]
    display_name: str
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[str, MessageRecord] = field(default_factory=dict)
    events: dict[str, EventRecord] = field(default_factory=dict)
    event_log: dict[str, tuple[int, bool]] = field(default_factory=dict)
    created_seq: int = 0

    def representation(self) -> dict[str, Any]:
        given, _, surname = self.display_name.partition(" ")
        return {
            "businessPhones": [],
            "displayName": self.display_name,
            "givenName": given or None,
            "jobTitle": None,
            "mail": self.mail,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "surname": surname or None,
            "userPrincipalName": self.user_principal_name,
            "id": self.id,
            "proxyAddresses": list(self.proxy_addresses),
            "accountEnabled": True,
            "otherMails": [],
        }


# A change seen by subscriptions: (kind "message"|"event", user, item id, changeType, folder ids).
ChangeListener = Callable[[str, "User", str, str, tuple[str, ...]], None]


def _etag(key: str) -> str:
    return f'W/"{key}"'


def _text_preview(body: dict[str, Any] | None) -> str:
    content = str((body or {}).get("content") or "")
    if str((body or {}).get("contentType") or "").lower() == "html":
        content = re.sub(r"<[^>]+>", " ", content)
    return " ".join(content.split())[:255]


class Store:
    """Users, mail, calendars; every change is numbered and told to the change listeners."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.users: dict[str, User] = {}
        self.seq = 0
        self.sync_generation = 1
        self.listeners: list[ChangeListener] = []

    # ---- users -------------------------------------------------------------------------------

    def add_user(self, body: dict[str, Any]) -> User:
        upn = str(body.get("userPrincipalName") or body.get("mail") or "").strip()
        if "@" not in upn:
            raise bad_request("userPrincipalName (or mail) is required and must be an address.")
        if self.find_user(upn) is not None:
            raise GraphError(
                400,
                "Request_BadRequest",
                "Another object with the same value for property userPrincipalName already exists.",
            )
        proxies = body.get("proxyAddresses") or []
        if not isinstance(proxies, list) or not all(isinstance(item, str) for item in proxies):
            raise bad_request("proxyAddresses must be a list of strings.")
        user_id = str(body.get("id") or uuid.uuid4())
        user = User(
            id=user_id,
            user_principal_name=upn,
            mail=body.get("mail", upn),
            proxy_addresses=list(proxies),
            display_name=str(body.get("displayName") or upn.split("@")[0]),
        )
        for well_known, name in WELL_KNOWN_FOLDERS.items():
            folder = Folder(id=new_id("AQMkA"), display_name=name, well_known=well_known)
            user.folders[folder.id] = folder
        self.seq += 1
        user.created_seq = self.seq
        self.users[user_id] = user
        return user

    def find_user(self, key: str) -> User | None:
        if key in self.users:
            return self.users[key]
        lowered = key.lower()
        for user in self.users.values():
            if user.user_principal_name.lower() == lowered or user.id.lower() == lowered:
                return user
        return None

    def user(self, key: str) -> User:
        """`/users/{id | userPrincipalName}` as Graph resolves it."""
        found = self.find_user(key)
        if found is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
            )
        return found

    def folder(self, user: User, key: str) -> Folder:
        """A folder by id or well-known name (``inbox``, ``sentitems``...), compared case-insensitively."""
        if key in user.folders:
            return user.folders[key]
        lowered = key.strip("'\"").lower()
        for folder in user.folders.values():
            if folder.well_known == lowered or folder.id.lower() == lowered:
                return folder
        raise GraphError(404, "ErrorInvalidIdMalformed", "Id is malformed.") if len(key) < 20 else not_found()

    # ---- messages ------------------------------------------------------------------------------

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _notify(self, kind: str, user: User, item_id: str, change: str, folders: tuple[str, ...]) -> None:
        for listener in list(self.listeners):
            listener(kind, user, item_id, change, folders)

    def deliver_message(self, user: User, body: dict[str, Any], folder_key: str = "inbox") -> MessageRecord:
        """A message arrives (or is saved) in a folder, as Exchange would store it."""
        folder = self.folder(user, folder_key)
        if not isinstance(body, dict):
            raise bad_request("A message must be a JSON object.")
        now = now_utc()
        message_id = new_id()
        attachments_in = body.get("attachments") or []
        if not isinstance(attachments_in, list):
            raise bad_request("attachments must be a list.")
        attachments = [self._attachment(item, now) for item in attachments_in]
        odata_type = body.get("@odata.type")
        data: dict[str, Any] = {
            "createdDateTime": iso(now),
            "lastModifiedDateTime": iso(now),
            "changeKey": change_key(),
            "categories": [],
            "receivedDateTime": iso(now),
            "sentDateTime": None,
            "hasAttachments": any(not item["isInline"] for item in attachments),
            "internetMessageId": f"<{uuid.uuid4().hex}@emulator.invalid>",
            "subject": "",
            "bodyPreview": "",
            "importance": "normal",
            "parentFolderId": folder.id,
            "conversationId": new_id("AAQkA"),
            "conversationIndex": base64.b64encode(secrets.token_bytes(22)).decode(),
            "isDeliveryReceiptRequested": False,
            "isReadReceiptRequested": False,
            "isRead": False,
            "isDraft": folder.well_known == "drafts",
            "webLink": f"https://outlook.office365.com/owa/?ItemID={message_id}&exvsurl=1&viewmodel=ReadMessageItem",
            "inferenceClassification": "focused",
            "body": {"contentType": "text", "content": ""},
            "sender": None,
            "from": None,
            "toRecipients": [],
            "ccRecipients": [],
            "bccRecipients": [],
            "replyTo": [],
            "flag": {"flagStatus": "notFlagged"},
            "internetMessageHeaders": [],
            "uniqueBody": None,
        }
        for key, value in body.items():
            if key in ("attachments", "id", "@odata.type", "parentFolderId") or key.startswith("@odata"):
                continue
            data[key] = value
        if data.get("sentDateTime") is None:
            data["sentDateTime"] = data["receivedDateTime"]
        if data.get("sender") is None:
            data["sender"] = data.get("from")
        if not data.get("bodyPreview"):
            data["bodyPreview"] = _text_preview(data.get("body"))
        if data.get("uniqueBody") is None:
            data["uniqueBody"] = data.get("body")
        if not data.get("internetMessageHeaders"):
            data["internetMessageHeaders"] = self._default_headers(data)
        data["id"] = message_id
        record = MessageRecord(data=data, folder_id=folder.id, attachments=attachments, odata_type=odata_type)
        user.messages[message_id] = record
        folder.log[message_id] = (self._next(), True)
        self._notify("message", user, message_id, "created", (folder.id,))
        return record

    @staticmethod
    def _default_headers(data: dict[str, Any]) -> list[dict[str, str]]:
        def addresses(items: Any) -> str:
            out = []
            for item in items or []:
                address = ((item or {}).get("emailAddress") or {}).get("address")
                if address:
                    out.append(str(address))
            return ", ".join(out)

        headers = [
            {"name": "Message-ID", "value": str(data.get("internetMessageId") or "")},
            {"name": "Subject", "value": str(data.get("subject") or "")},
            {"name": "From", "value": addresses([data.get("from")])},
            {"name": "To", "value": addresses(data.get("toRecipients"))},
            {
                "name": "Content-Type",
                "value": "text/html; charset=utf-8"
                if str((data.get("body") or {}).get("contentType")).lower() == "html"
                else "text/plain; charset=utf-8",
            },
        ]
        if data.get("ccRecipients"):
            headers.append({"name": "Cc", "value": addresses(data.get("ccRecipients"))})
        return headers

    def _attachment(self, item: Any, now: datetime) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise bad_request("Each attachment must be a JSON object.")
        raw = item.get("contentBytes") or ""
        try:
            size = len(base64.b64decode(str(raw), validate=True))
        except ValueError:
            raise bad_request("contentBytes must be base64.") from None
        return {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": str(item.get("contentType") or "application/octet-stream"),
            "id": new_id("AAMkA"),
            "lastModifiedDateTime": iso(now),
            "name": str(item.get("name") or "attachment"),
            "contentType": str(item.get("contentType") or "application/octet-stream"),
            "size": size,
            "isInline": bool(item.get("isInline", False)),
            "contentId": item.get("contentId"),
            "contentLocation": None,
            "contentBytes": str(raw),
        }

    def message(self, user: User, message_id: str) -> MessageRecord:
        record = user.messages.get(message_id)
        if record is None:
            raise not_found()
        return record

    def update_message(self, user: User, message_id: str, changes: dict[str, Any]) -> MessageRecord:
        """A user edits a message in Outlook (read flag, categories, subject) or moves it."""
        record = self.message(user, message_id)
        old_folder = record.folder_id
        for key, value in changes.items():
            if key == "parentFolderId":
                record.folder_id = self.folder(user, str(value)).id
            elif key not in ("id", "attachments") and not key.startswith("@odata"):
                record.data[key] = value
        record.data["parentFolderId"] = record.folder_id
        record.data["lastModifiedDateTime"] = iso(now_utc())
        record.data["changeKey"] = change_key()
        seq = self._next()
        if record.folder_id != old_folder:
            user.folders[old_folder].log[message_id] = (seq, False)
            user.folders[record.folder_id].log[message_id] = (seq, True)
            # Outlook reports a move as a delete in the old folder and a create in the new one.
            self._notify("message", user, message_id, "deleted", (old_folder,))
            self._notify("message", user, message_id, "created", (record.folder_id,))
        else:
            user.folders[old_folder].log[message_id] = (seq, True)
            self._notify("message", user, message_id, "updated", (old_folder,))
        return record

    def delete_message(self, user: User, message_id: str) -> None:
        record = self.message(user, message_id)
        del user.messages[message_id]
        user.folders[record.folder_id].log[message_id] = (self._next(), False)
        self._notify("message", user, message_id, "deleted", (record.folder_id,))

    def message_json(self, user: User, record: MessageRecord, select: list[str] | None) -> dict[str, Any]:
        full: dict[str, Any] = {}
        if record.odata_type:
            full["@odata.type"] = record.odata_type
        full["@odata.etag"] = _etag(record.data["changeKey"])
        full["id"] = record.data["id"]
        for key in MESSAGE_PROPERTIES:
            full[key] = copy.deepcopy(record.data.get(key))
        for key, value in record.data.items():
            if key not in full and key not in MESSAGE_ONLY_WHEN_SELECTED and key != "id":
                full[key] = copy.deepcopy(value)
        if select is not None:
            for key in MESSAGE_ONLY_WHEN_SELECTED:
                if key in select:
                    full[key] = copy.deepcopy(record.data.get(key))
        return apply_select(full, select, ("id",))

    def message_selectable(self, user: User) -> tuple[str, ...]:
        return ("id", *MESSAGE_PROPERTIES, *MESSAGE_ONLY_WHEN_SELECTED)

    # ---- events ------------------------------------------------------------------------------

    def create_event(self, user: User, body: dict[str, Any]) -> tuple[EventRecord, bool]:
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
        extended = self._extended(body.get("singleValueExtendedProperties"))
        now = now_utc()
        event_id = new_id()
        organizer = {"emailAddress": {"name": user.display_name, "address": user.mail or user.user_principal_name}}
        data: dict[str, Any] = {
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
            "organizer": organizer,
            "onlineMeeting": None,
        }
        for key, value in body.items():
            if key in ("id", "singleValueExtendedProperties", "start", "end") or key.startswith("@odata"):
                continue
            data[key] = value
        data["start"] = graph_date_time_zone(start)
        data["end"] = graph_date_time_zone(end)
        data["bodyPreview"] = _text_preview(data.get("body"))
        data["id"] = event_id
        record = EventRecord(data=data, start=start, end=end, extended=extended)
        user.events[event_id] = record
        user.event_log[event_id] = (self._next(), True)
        self._notify("event", user, event_id, "created", ())
        return record, True

    @staticmethod
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

    def event(self, user: User, event_id: str) -> EventRecord:
        record = user.events.get(event_id)
        if record is None:
            raise not_found()
        return record

    def update_event(self, user: User, event_id: str, changes: dict[str, Any]) -> EventRecord:
        record = self.event(user, event_id)
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
            for item in self._extended(changes["singleValueExtendedProperties"]):
                record.extended = [e for e in record.extended if e["id"].lower() != item["id"].lower()]
                record.extended.append(item)
        record.start, record.end = start, end
        record.data["start"] = graph_date_time_zone(start)
        record.data["end"] = graph_date_time_zone(end)
        record.data["bodyPreview"] = _text_preview(record.data.get("body"))
        record.data["lastModifiedDateTime"] = iso(now_utc())
        record.data["changeKey"] = change_key()
        user.event_log[event_id] = (self._next(), True)
        self._notify("event", user, event_id, "updated", ())
        return record

    def delete_event(self, user: User, event_id: str) -> None:
        self.event(user, event_id)
        del user.events[event_id]
        user.event_log[event_id] = (self._next(), False)
        self._notify("event", user, event_id, "deleted", ())

    def event_json(self, record: EventRecord, select: list[str] | None, expand_ids: list[str] | None) -> dict[str, Any]:
        full: dict[str, Any] = {"@odata.etag": _etag(record.data["changeKey"]), "id": record.data["id"]}
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


def token_digest(*parts: str) -> str:
    """A short stable fingerprint that binds a delta token to its folder or calendar window."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
