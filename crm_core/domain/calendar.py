"""Calendar sync's rules: what of an event and of a calendar activity is synced, how the two are
compared, and which side wins.

Both sides are reduced to `SyncedFields`, the fields as NET Genium will hold them (private events
already stripped, text cut to the column limits, times to the second). Comparing those, not the raw
items, is what makes an echo of our own write look unchanged: if the projection of what we wrote
differed from the projection of what comes back, every write would bounce back once.

Times: a timed item is an instant (UTC). An all-day item is a range of dates, kept here as UTC
midnights of its first day and of the day after its last (Outlook's exclusive end); NET Genium
holds the same dates as midnights of the installation's time zone (`CalendarPolicy.time_zone`),
converted with the zone's rules for that very date, so a daylight-saving change cannot shift them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from crm_core.domain.html_text import html_to_text

# The schema map's default lengths for a calendar activity's subject and location.
SUBJECT_LIMIT = 255
LOCATION_LIMIT = 255
BODY_LIMIT = 32_000
PRIVATE_SENSITIVITIES = frozenset(("private", "confidential"))
# Namespace of the transactionId of events created for NET Genium activities (uuid5 of the user and
# the activity id): a retried create is the same create to Graph.
_TRANSACTION_NAMESPACE = uuid.UUID("6f1c3b8e-3f3c-4f4b-9a7e-6b9e2c1d0a11")


class Side(StrEnum):
    OUTLOOK = "outlook"
    NETGENIUM = "netgenium"


@dataclass(frozen=True, slots=True)
class CalendarPolicy:
    """The installation's choices: its time zone, and what a private event shows in NET Genium."""

    time_zone: str = "Europe/Prague"
    private_subject: str = "Busy"
    sync_private_details: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True, slots=True)
class OutlookEvent:
    """An event or one occurrence as Graph reports it, with times already in UTC.

    Fields are None when a delta item left them out (Graph may send only what changed); such an
    event is `partial` and must be read whole before it is compared.
    """

    id: str
    subject: str | None = None
    body_text: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool | None = None
    location: str | None = None
    sensitivity: str | None = None
    cancelled: bool = False
    series_master_id: str | None = None
    kind: str | None = None  # singleInstance, occurrence, exception, seriesMaster
    activity_id: str | None = None
    last_modified: datetime | None = None
    transaction_id: str | None = None

    @property
    def own_activity_id(self) -> int | None:
        """The activity this event was created for, by its extended property or its transactionId."""
        if self.activity_id is not None and self.activity_id.isdigit():
            return int(self.activity_id)
        return activity_of_transaction(self.transaction_id)

    @property
    def partial(self) -> bool:
        return self.start is None or self.end is None or self.subject is None or self.all_day is None


@dataclass(frozen=True, slots=True)
class CalendarDelta:
    """One whole `calendarView/delta` round: changed events, removed ids, and the link to go on from."""

    events: Sequence[OutlookEvent]
    removed: Sequence[str]
    delta_link: str
    requests: int = 0


@dataclass(frozen=True, slots=True)
class SyncedFields:
    """What is synced of an item, as NET Genium will hold it."""

    subject: str
    start: datetime
    end: datetime
    all_day: bool
    location: str = ""
    body: str = ""
    private: bool = False

    def fingerprint(self) -> str:
        """A digest of the fields: equal digests, nothing to sync (this is how echoes are dropped)."""
        canonical = json.dumps(
            [
                self.subject,
                _stamp(self.start),
                _stamp(self.end),
                self.all_day,
                self.location,
                " ".join(self.body.split()),
                self.private,
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def differing(self, other: SyncedFields) -> list[str]:
        """The names of the fields where `other` differs (for the conflict log; no values)."""
        names = []
        for name in ("subject", "start", "end", "all_day", "location", "body", "private"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "body":
                mine, theirs = " ".join(mine.split()), " ".join(theirs.split())
            if mine != theirs:
                names.append(name)
        return names


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _second(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("calendar times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _clean(text: str | None, limit: int) -> str:
    # Cut, then trim: a cut just after a space must read back the same from NET Genium.
    return " ".join((text or "").split())[:limit].rstrip()


def event_fields(event: OutlookEvent, policy: CalendarPolicy) -> SyncedFields:
    """The fields of a whole event as NET Genium will hold them."""
    if event.start is None or event.end is None:
        raise ValueError(f"event {event.id} has no start or end: read it whole first")
    all_day = bool(event.all_day)
    if all_day:
        # Graph gives an all-day event as midnights; only the dates count.
        first = event.start.astimezone(UTC).date()
        last = max(event.end.astimezone(UTC).date(), first + timedelta(days=1))
        start, end = _midnight(first), _midnight(last)
    else:
        start, end = _second(event.start), _second(event.end)
    private = (event.sensitivity or "normal").lower() in PRIVATE_SENSITIVITIES
    if private and not policy.sync_private_details:
        return SyncedFields(policy.private_subject[:SUBJECT_LIMIT], start, end, all_day, "", "", True)
    return SyncedFields(
        subject=_clean(event.subject, SUBJECT_LIMIT),
        start=start,
        end=end,
        all_day=all_day,
        location=_clean(event.location, LOCATION_LIMIT),
        body=(event.body_text or "").strip()[:BODY_LIMIT],
        private=private,
    )


def activity_fields(
    subject: str,
    start: datetime,
    end: datetime,
    all_day: bool,
    location: str,
    body: str,
    policy: CalendarPolicy,
    *,
    private: bool = False,
) -> SyncedFields:
    """The fields of a calendar activity; an all-day one's dates are read in the installation's zone."""
    if all_day:
        zone = policy.zone
        first = start.astimezone(zone).date()
        last = max(end.astimezone(zone).date(), first + timedelta(days=1))
        begin, finish = _midnight(first), _midnight(last)
    else:
        begin, finish = _second(start), _second(end)
    return SyncedFields(
        subject=_clean(subject, SUBJECT_LIMIT),
        start=begin,
        end=finish,
        all_day=all_day,
        location=_clean(location, LOCATION_LIMIT),
        body=body.strip()[:BODY_LIMIT],
        private=private,
    )


def netgenium_times(fields: SyncedFields, policy: CalendarPolicy) -> tuple[datetime, datetime]:
    """The start and end a calendar activity stores (UTC instants): an all-day item's dates become
    midnights of the installation's zone, each by the zone's rule for that date."""
    if not fields.all_day:
        return fields.start, fields.end
    zone = policy.zone
    first = datetime.combine(fields.start.date(), time(0), tzinfo=zone)
    last = datetime.combine(fields.end.date(), time(0), tzinfo=zone)
    return first.astimezone(UTC), last.astimezone(UTC)


def body_text(content: str | None, content_type: str | None) -> str:
    """An event body as NET Genium's plain-text memo holds it."""
    if not content:
        return ""
    if (content_type or "").lower() == "html":
        return html_to_text(content).strip()
    return content.strip()


_TRANSACTION_PREFIX = "crm-ng-"


def transaction_id(user: str, activity_id: int) -> str:
    """The transactionId of the event created for an activity: the same for every retry, and naming
    the activity, so that an event whose pair was never saved is still known as ours (delta items
    carry `transactionId`, not the extended property)."""
    tail = uuid.uuid5(_TRANSACTION_NAMESPACE, f"{user.lower()}|{activity_id}").hex[:16]
    return f"{_TRANSACTION_PREFIX}{activity_id}-{tail}"


def activity_of_transaction(value: str | None) -> int | None:
    """The activity id a transactionId of ours names; None for any other."""
    if not value or not value.startswith(_TRANSACTION_PREFIX):
        return None
    head, sep, _tail = value[len(_TRANSACTION_PREFIX) :].partition("-")
    return int(head) if sep and head.isdigit() and len(head) <= 19 else None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a sync does with one pair: write `fields` to `write_to` (or nothing), and whether a
    change was overwritten (the conflict log's entry)."""

    write_to: Side | None
    fields: SyncedFields
    loser: Side | None = None
    lost_fields: tuple[str, ...] = ()


def resolve(
    base: str | None,
    outlook: SyncedFields,
    outlook_modified: datetime | None,
    netgenium: SyncedFields,
    netgenium_modified: datetime | None,
) -> Resolution:
    """Compare both sides with the fingerprint last synced (`base`; None when the pair is new or its
    mapping was lost).

    One side equal to the base: only the other changed, and it is copied over. Both differ from it:
    the later modification wins and the other side's change is the loser (on a tie, Outlook wins, so
    that the outcome never depends on which side was read first).
    """
    o_print, n_print = outlook.fingerprint(), netgenium.fingerprint()
    if o_print == n_print:
        return Resolution(None, outlook)
    if base == o_print:
        return Resolution(Side.OUTLOOK, netgenium)
    if base == n_print:
        return Resolution(Side.NETGENIUM, outlook)
    outlook_later = (netgenium_modified is None) or (
        outlook_modified is not None and outlook_modified >= netgenium_modified
    )
    lost = tuple(outlook.differing(netgenium))
    if outlook_later:
        return Resolution(Side.NETGENIUM, outlook, Side.NETGENIUM, lost)
    return Resolution(Side.OUTLOOK, netgenium, Side.OUTLOOK, lost)


@dataclass(frozen=True, slots=True)
class SyncWindow:
    """The stretch of time kept in sync: `days_back` before today to `days_ahead` after it."""

    start: datetime
    end: datetime

    @classmethod
    def around(cls, now: datetime, days_back: int, days_ahead: int) -> SyncWindow:
        today = now.astimezone(UTC).date()
        return cls(_midnight(today - timedelta(days=days_back)), _midnight(today + timedelta(days=days_ahead)))

    def holds(self, start: datetime, end: datetime) -> bool:
        return start < self.end and end >= self.start

    def key(self) -> str:
        """Names the window in the stored delta cursor, so a window that moved starts a new round."""
        return f"{self.start.date().isoformat()}..{self.end.date().isoformat()}"
