"""What calendar sync remembers between runs: the pairs it made, the edits it overwrote, and who is
in sync (stored by `crm_core.storage.calendar`, read by the operator's `calendar status`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CalendarPair:
    """An Outlook event (or one occurrence of a series) and the calendar activity mirroring it.

    `fingerprint` is that of the fields last synced (`SyncedFields.fingerprint`): a change equal to
    it is our own echo. `private` says the event is private, so its subject, body and location stay
    in Outlook and are never written back.
    """

    mailbox: str
    event_id: str
    activity_id: int
    fingerprint: str
    series_master_id: str | None = None
    event_modified: datetime | None = None
    activity_modified: datetime | None = None
    private: bool = False


@dataclass(frozen=True, slots=True)
class CalendarConflict:
    """An edit overwritten because the other side changed the same pair later (names, no values)."""

    mailbox: str
    at: datetime
    winner: str  # "outlook" or "netgenium"
    loser: str
    event_id: str
    activity_id: int
    fields: tuple[str, ...]
    winner_modified: datetime | None = None
    loser_modified: datetime | None = None


@dataclass(frozen=True, slots=True)
class CalendarUsersState:
    """The last refresh of who is in sync, and who is not and why."""

    refreshed_at: datetime
    synced: list[dict[str, object]] = field(default_factory=list)  # ng_user_id, email, mailbox
    unmatched: list[dict[str, object]] = field(default_factory=list)  # ng_user_id, email, reason
