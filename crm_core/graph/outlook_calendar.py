"""Calendar sync's view of Graph (`crm_core.usecases.calendar_ports.OutlookCalendar`): the adapter's
event calls, answered in the core's `OutlookEvent` and written from its `SyncedFields`.

Graph is asked for UTC (`Prefer: outlook.timezone="UTC"`); an answer in another zone is still read
right, by the zone's own rules (IANA names; a few Windows names Graph uses by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_core.domain.calendar import CalendarDelta, OutlookEvent, SyncedFields, SyncWindow, body_text
from crm_core.domain.calendar_users import Account
from crm_core.graph.client import GraphAdapter
from crm_core.graph.errors import GraphNotFound, GraphRejected
from crm_core.graph.models import DateTimeTimeZone, EventDraft, GraphEvent

_WINDOWS_ZONES = {
    "utc": "UTC",
    "coordinated universal time": "UTC",
    "central europe standard time": "Europe/Prague",
    "w. europe standard time": "Europe/Berlin",
    "gmt standard time": "Europe/London",
    "eastern standard time": "America/New_York",
    "pacific standard time": "America/Los_Angeles",
}


def _instant(value: DateTimeTimeZone | None) -> datetime | None:
    if value is None:
        return None
    zone_name = (value.time_zone or "UTC").strip()
    moment = value.as_utc()  # the wall-clock time, read as if UTC
    if zone_name.lower() in ("utc", "etc/utc", "coordinated universal time"):
        return moment
    try:
        zone = ZoneInfo(_WINDOWS_ZONES.get(zone_name.lower(), zone_name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise GraphRejected(f"event time in an unknown time zone {zone_name!r}") from exc
    return moment.replace(tzinfo=zone).astimezone(UTC)


def _modified(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def outlook_event(event: GraphEvent) -> OutlookEvent:
    """The core's view of a Graph event; what a partial delta item left out stays None."""
    body = event.body
    return OutlookEvent(
        id=event.id,
        subject=event.subject,
        body_text=body_text(body.content, body.content_type) if body is not None else None,
        start=_instant(event.start),
        end=_instant(event.end),
        all_day=event.is_all_day,
        location=event.location_name if event.location is not None else None,
        sensitivity=event.sensitivity,
        cancelled=bool(event.is_cancelled),
        series_master_id=event.series_master_id,
        kind=event.type,
        activity_id=event.activity_id,
        last_modified=_modified(event.last_modified_date_time),
        transaction_id=event.transaction_id,
    )


def _draft(fields: SyncedFields, *, times_only: bool = False) -> EventDraft:
    return EventDraft(
        subject=fields.subject,
        start=fields.start,
        end=fields.end,
        body=fields.body,
        is_all_day=fields.all_day,
        location=fields.location,
        times_only=times_only,
    )


class GraphCalendar:
    """The `OutlookCalendar` and `Accounts` ports over one `GraphAdapter`."""

    def __init__(self, graph: GraphAdapter) -> None:
        self._graph = graph

    async def calendar_delta(self, mailbox: str, window: SyncWindow, delta_link: str | None) -> CalendarDelta:
        delta = await self._graph.event_delta(mailbox, window.start, window.end, delta_link)
        return CalendarDelta(
            events=[outlook_event(event) for event in delta.events],
            removed=list(delta.removed_ids),
            delta_link=delta.delta_link,
            requests=delta.requests,
        )

    async def read_event(self, mailbox: str, event_id: str) -> OutlookEvent | None:
        try:
            return outlook_event(await self._graph.get_event(mailbox, event_id))
        except GraphNotFound:
            return None
        except GraphRejected as exc:
            if exc.status == 410:
                return None
            raise

    async def event_ids_in_window(self, mailbox: str, window: SyncWindow) -> set[str]:
        return await self._graph.event_ids_in_view(mailbox, window.start, window.end)

    async def event_for_activity(self, mailbox: str, activity_id: int) -> OutlookEvent | None:
        found = await self._graph.find_event_by_activity(mailbox, str(activity_id))
        return outlook_event(found) if found is not None else None

    async def create_event_for(
        self, mailbox: str, fields: SyncedFields, *, transaction_id: str, activity_id: int
    ) -> OutlookEvent:
        created = await self._graph.create_event(
            mailbox, _draft(fields), transaction_id=transaction_id, activity_id=str(activity_id)
        )
        return outlook_event(created)

    async def write_event(self, mailbox: str, event_id: str, fields: SyncedFields, *, times_only: bool) -> None:
        await self._graph.update_event(mailbox, event_id, _draft(fields, times_only=times_only))

    async def remove_event(self, mailbox: str, event_id: str) -> bool:
        return await self._graph.delete_event(mailbox, event_id)

    async def list_accounts(self) -> Sequence[Account]:
        return [Account(user.id, tuple(user.addresses())) for user in await self._graph.list_users()]
