"""What calendar sync needs from Graph, NET Genium and storage, in the core's own types.

The adapters answer in `OutlookEvent` and `CalendarActivity`, so the sync's rules
(`crm_core.domain.calendar`) never see an SDK object, and the use-case tests run on fakes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from crm_core.domain.activities import CalendarActivity
from crm_core.domain.calendar import CalendarDelta, OutlookEvent, SyncedFields, SyncWindow
from crm_core.domain.calendar_state import CalendarConflict, CalendarPair, CalendarUsersState


class OutlookCalendar(Protocol):
    async def calendar_delta(self, mailbox: str, window: SyncWindow, delta_link: str | None) -> CalendarDelta:
        """Raises `CursorExpired` when the link is dead (a new round starts)."""
        ...

    async def read_event(self, mailbox: str, event_id: str) -> OutlookEvent | None:
        """The whole event; None when it is gone."""
        ...

    async def event_ids_in_window(self, mailbox: str, window: SyncWindow) -> set[str]:
        """The ids of the events and occurrences the window holds now (the sweep's check)."""
        ...

    async def event_for_activity(self, mailbox: str, activity_id: int) -> OutlookEvent | None: ...

    async def create_event_for(
        self, mailbox: str, fields: SyncedFields, *, transaction_id: str, activity_id: int
    ) -> OutlookEvent:
        """Create without attendees (no invitation); a retry with the same transaction id is one event."""
        ...

    async def write_event(self, mailbox: str, event_id: str, fields: SyncedFields, *, times_only: bool) -> None: ...

    async def remove_event(self, mailbox: str, event_id: str) -> bool: ...


class NetGeniumCalendar(Protocol):
    async def calendar_activity(self, activity_id: int) -> CalendarActivity | None: ...

    async def calendar_changes(self, user_id: int, since: datetime) -> list[CalendarActivity]: ...

    async def calendar_activity_ids(self, user_id: int) -> set[int]: ...

    async def calendar_event_ids_in_window(self, user_id: int, start: datetime, end: datetime) -> dict[int, str]: ...

    async def find_calendar_activity_by_event_id(self, event_id: str) -> int | None: ...

    async def find_calendar_activities_by_event_ids(self, event_ids: Iterable[str]) -> dict[str, int]: ...

    async def create_calendar_activity(self, activity: CalendarActivity) -> int: ...

    async def upsert_calendar_activity(self, activity: CalendarActivity) -> int: ...

    async def delete_calendar_activity(self, activity_id: int) -> bool: ...


class Pairs(Protocol):
    async def by_event(self, mailbox: str, event_id: str) -> CalendarPair | None: ...

    async def by_activity(self, mailbox: str, activity_id: int) -> CalendarPair | None: ...

    async def save(self, pair: CalendarPair) -> None: ...

    async def delete(self, pair: CalendarPair) -> None: ...

    async def all(self, mailbox: str) -> list[CalendarPair]: ...


class Conflicts(Protocol):
    async def add(self, conflict: CalendarConflict) -> None: ...


class UsersState(Protocol):
    async def save(self, state: CalendarUsersState) -> None: ...

    async def load(self) -> CalendarUsersState | None: ...


class Cursors(Protocol):
    async def get(self, name: str) -> str | None: ...

    async def set(self, name: str, value: str) -> None: ...

    async def clear(self, name: str) -> None: ...


@dataclass
class CalendarReport:
    """What one sync of one user did (counts, for logs, the scenario runner and the benchmark)."""

    to_netgenium: int = 0
    to_outlook: int = 0
    deleted_in_netgenium: int = 0
    deleted_in_outlook: int = 0
    echoes: int = 0
    conflicts: int = 0
    paired: int = 0
    failed: list[str] = field(default_factory=list)
    resynced: bool = False

    def add(self, other: CalendarReport) -> None:
        for name in (
            "to_netgenium",
            "to_outlook",
            "deleted_in_netgenium",
            "deleted_in_outlook",
            "echoes",
            "conflicts",
            "paired",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.extend(other.failed)
        self.resynced = self.resynced or other.resynced
