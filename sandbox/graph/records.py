"""What the emulated tenant holds: users, folders, messages, events, and the change log delta reads.

Every change to a folder or a calendar is appended to its `ChangeLog` with a sequence number. A
delta round covers the changes in a window of sequence numbers, and because the log is only ever
appended to, the items of a window stay the same however long the client takes to page through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
MESSAGE_SELECTABLE = ("id", *MESSAGE_PROPERTIES, *MESSAGE_ONLY_WHEN_SELECTED)

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

CREATED, UPDATED, DELETED = "created", "updated", "deleted"
CHANGE_TYPES = (CREATED, UPDATED, DELETED)


@dataclass(frozen=True)
class Change:
    """One entry of a change log: an item entered (`created`), changed (`updated`) or left (`deleted`)."""

    seq: int
    item_id: str
    kind: str
    props: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WindowItem:
    """An item as a delta round over a window sees it: how it changed there, and which properties."""

    item_id: str
    kind: str
    props: frozenset[str]
    seq: int


@dataclass
class _Tally:
    last: int
    entered: int
    present: bool
    props: set[str]


class ChangeLog:
    """The append-only history of one folder or calendar."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def record(self, seq: int, item_id: str, kind: str, props: frozenset[str] = frozenset()) -> None:
        self.changes.append(Change(seq, item_id, kind, props))

    def window(self, start: int, end: int) -> list[WindowItem]:
        """The items whose last change up to `end` came after `start`, in the order of that change.

        An item that entered after `start` is `created` (whatever happened to it since); one that
        was there at `start` and changed is `updated`, with the properties changed in the window;
        one that was there at `start` and left is `deleted`. An item that came and went inside the
        window was never seen by the client and is not reported.
        """
        tallies: dict[str, _Tally] = {}
        for change in self.changes:
            if change.seq > end:
                break
            tally = tallies.get(change.item_id)
            if tally is None:
                tally = tallies[change.item_id] = _Tally(change.seq, 0, False, set())
            tally.last = change.seq
            if change.kind == CREATED:
                tally.entered, tally.present, tally.props = change.seq, True, set()
            elif change.kind == DELETED:
                tally.present = False
            elif change.seq > start:
                tally.props |= change.props
        out = []
        for item_id, tally in tallies.items():
            if tally.last <= start:
                continue
            if tally.present:
                kind = CREATED if tally.entered > start else UPDATED
            elif tally.entered <= start:
                kind = DELETED
            else:
                continue
            out.append(WindowItem(item_id, kind, frozenset(tally.props), tally.last))
        out.sort(key=lambda item: item.seq)
        return out


@dataclass
class Folder:
    id: str
    display_name: str
    well_known: str | None
    log: ChangeLog = field(default_factory=ChangeLog)


@dataclass
class MessageRecord:
    data: dict[str, Any]
    folder_id: str
    attachments: list[dict[str, Any]]
    odata_type: str | None = None


@dataclass
class EventRecord:
    """An event: a single instance, a series master, or one occurrence or exception of a series.

    `start`/`end` are UTC instants; `zone`/`end_zone` the time zones they were given in. A master
    keeps its occurrences by original start (`children`) and the original starts that were
    cancelled; an occurrence or exception knows its master, its original start and (for an
    exception) which properties were set on it rather than inherited.
    """

    data: dict[str, Any]
    start: datetime
    end: datetime
    extended: list[dict[str, str]] = field(default_factory=list)
    zone: str = "UTC"
    end_zone: str = "UTC"
    master_id: str | None = None
    original: datetime | None = None
    overridden: set[str] = field(default_factory=set)
    children: dict[str, str] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)

    @property
    def kind(self) -> str:
        return str(self.data.get("type") or "singleInstance")

    @property
    def in_views(self) -> bool:
        """calendarView and its delta show single instances, occurrences and exceptions, never masters."""
        return self.kind != "seriesMaster"


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
    calendar: ChangeLog = field(default_factory=ChangeLog)
    invitations: list[dict[str, Any]] = field(default_factory=list)
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


def text_preview(body: dict[str, Any] | None) -> str:
    content = str((body or {}).get("content") or "")
    if str((body or {}).get("contentType") or "").lower() == "html":
        content = re.sub(r"<[^>]+>", " ", content)
    return " ".join(content.split())[:255]
