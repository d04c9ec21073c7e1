"""The calendar calls of the Graph adapter; `GraphAdapter` inherits them from `CalendarCalls`.

Why they look the way they do:

- Events are read and written in UTC (`Prefer: outlook.timezone="UTC"`), so a sync compares
  like with like whatever the mailbox's own time zone.
- The NET Genium activity id rides in a single-value extended property that every read expands, so
  an event can be found again after an answer was lost (`find_event_by_activity`).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from crm_core.graph.errors import GraphNotFound, GraphRejected
from crm_core.graph.models import (
    ACTIVITY_PROPERTY_ID,
    EventDelta,
    EventDraft,
    ExtendedProperty,
    GraphEvent,
)
from crm_core.graph.translate import IMMUTABLE_IDS, GraphCalls, to_json, unreadable


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000")


# Events asked per calendarView page when the sweep lists a window's ids (Graph may answer with
# fewer, and a next link; the default page is 10). Under the 999 Graph enforces on other lists.
VIEW_PAGE = 500


class CalendarCalls(GraphCalls):
    """Apart from the mail calls only to keep each file short; `GraphAdapter` is the class to use."""

    async def event_delta(
        self,
        mailbox: str,
        start: datetime,
        end: datetime,
        delta_link: str | None = None,
        *,
        page_size: int | None = None,
    ) -> EventDelta:
        """One `calendarView/delta` round over [start, end); FullResyncNeeded when the link is dead.

        As the message delta, the requests go through the SDK (auth, retry, redirects) and the
        pages are read as JSON straight into `GraphEvent`: a first sync reads thousands of events,
        and the SDK's object model cost more CPU than the rest of the sync of each.
        """
        from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder

        size = page_size or self.options.delta_page_size
        prefer = (IMMUTABLE_IDS, f"odata.maxpagesize={size}", 'outlook.timezone="UTC"')
        builder = self._user(mailbox).calendar_view.delta
        query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            start_date_time=_iso(start), end_date_time=_iso(end)
        )
        events: dict[str, GraphEvent] = {}
        removed: dict[str, None] = {}
        link, requests = delta_link, 0
        while True:
            page = await self._json_page("eventDelta", mailbox, builder, link, query, prefer=prefer, delta=True)
            requests += 1
            try:
                for item in page.value:
                    item_id = item.get("id")
                    if not isinstance(item_id, str) or not item_id:
                        continue
                    if "@removed" in item:
                        events.pop(item_id, None)
                        removed[item_id] = None
                    else:
                        removed.pop(item_id, None)
                        events[item_id] = GraphEvent.model_validate(item)
            except ValidationError as exc:
                raise unreadable("eventDelta", exc) from None
            if page.next_link:
                link = page.next_link
                continue
            if page.delta_link:
                return EventDelta(
                    events=list(events.values()),
                    removed_ids=list(removed),
                    delta_link=page.delta_link,
                    requests=requests,
                )
            raise GraphRejected("eventDelta: a delta page carried neither @odata.nextLink nor @odata.deltaLink")

    async def event_ids_in_view(self, mailbox: str, start: datetime, end: datetime) -> set[str]:
        """The ids of the events and occurrences `calendarView` holds over [start, end): ids only,
        `VIEW_PAGE` a page, read as JSON. The calendar sweep's check for events no delta round named."""
        from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import (
            CalendarViewRequestBuilder,
        )

        builder = self._user(mailbox).calendar_view
        query = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
            start_date_time=_iso(start), end_date_time=_iso(end), select=["id"], top=VIEW_PAGE
        )
        ids: set[str] = set()
        link: str | None = None
        while True:
            page = await self._json_page("calendarView", mailbox, builder, link, query, prefer=(IMMUTABLE_IDS,))
            ids.update(item["id"] for item in page.value if isinstance(item.get("id"), str) and item["id"])
            if not page.next_link:
                return ids
            link = page.next_link

    def _event_query(self) -> Any:
        from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder

        return EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(
            expand=[f"singleValueExtendedProperties($filter=id eq '{ACTIVITY_PROPERTY_ID}')"]
        )

    async def get_event(self, mailbox: str, event_id: str) -> GraphEvent:
        """One event, with the NET Genium activity id it carries (if any)."""
        builder = self._user(mailbox).events.by_event_id(event_id)
        prefer = (IMMUTABLE_IDS, 'outlook.timezone="UTC"')
        event = await self._send(
            "getEvent", mailbox, functools.partial(builder.get, self._config(self._event_query(), prefer=prefer))
        )
        if event is None:
            raise GraphNotFound(f"getEvent: Graph returned no event {event_id}")
        return GraphEvent.model_validate(to_json(event))

    async def find_event_by_activity(self, mailbox: str, activity_id: str) -> GraphEvent | None:
        """The event that carries this activity id, if one exists (reconciliation after a lost answer)."""
        from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder

        escaped = activity_id.replace("'", "''")
        query = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
            filter=f"singleValueExtendedProperties/Any(ep: ep/id eq '{ACTIVITY_PROPERTY_ID}' and ep/value eq "
            f"'{escaped}')",
            expand=[f"singleValueExtendedProperties($filter=id eq '{ACTIVITY_PROPERTY_ID}')"],
            top=1,
        )
        builder = self._user(mailbox).events
        page = await self._send(
            "findEvent",
            mailbox,
            functools.partial(builder.get, self._config(query, prefer=(IMMUTABLE_IDS, 'outlook.timezone="UTC"'))),
        )
        items = list(page.value or []) if page is not None else []
        return GraphEvent.model_validate(to_json(items[0])) if items else None

    @staticmethod
    def _sdk_event(draft: EventDraft) -> Any:
        from msgraph.generated.models.body_type import BodyType
        from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
        from msgraph.generated.models.event import Event
        from msgraph.generated.models.item_body import ItemBody
        from msgraph.generated.models.location import Location

        start = DateTimeTimeZone(date_time=_iso(draft.start), time_zone="UTC")
        end = DateTimeTimeZone(date_time=_iso(draft.end), time_zone="UTC")
        if draft.times_only:
            return Event(start=start, end=end, is_all_day=draft.is_all_day)
        return Event(
            subject=draft.subject,
            body=ItemBody(content_type=BodyType.Html if draft.body_is_html else BodyType.Text, content=draft.body),
            start=start,
            end=end,
            is_all_day=draft.is_all_day,
            location=Location(display_name=draft.location) if draft.location is not None else None,
        )

    async def create_event(
        self, mailbox: str, draft: EventDraft, *, transaction_id: str, activity_id: str
    ) -> GraphEvent:
        """Create the event once: a retry with the same `transaction_id` returns the first event.

        The activity id goes into a single-value extended property; no attendees are set, so no
        invitation is sent.
        """
        from msgraph.generated.models.single_value_legacy_extended_property import (
            SingleValueLegacyExtendedProperty,
        )

        event = self._sdk_event(draft)
        event.transaction_id = transaction_id
        event.single_value_extended_properties = [
            SingleValueLegacyExtendedProperty(id=ACTIVITY_PROPERTY_ID, value=str(activity_id))
        ]
        builder = self._user(mailbox).events
        prefer = (IMMUTABLE_IDS, 'outlook.timezone="UTC"')
        created = await self._send(
            "createEvent", mailbox, functools.partial(builder.post, event, self._config(prefer=prefer))
        )
        if created is None:
            raise GraphRejected("createEvent: Graph returned no event")
        result = GraphEvent.model_validate(to_json(created))
        if result.activity_id is None:
            result = result.model_copy(
                update={
                    "single_value_extended_properties": [
                        ExtendedProperty(id=ACTIVITY_PROPERTY_ID, value=str(activity_id))
                    ]
                }
            )
        return result

    async def update_event(self, mailbox: str, event_id: str, draft: EventDraft) -> GraphEvent:
        """Write the synced fields of an existing event."""
        builder = self._user(mailbox).events.by_event_id(event_id)
        prefer = (IMMUTABLE_IDS, 'outlook.timezone="UTC"')
        updated = await self._send(
            "updateEvent",
            mailbox,
            functools.partial(builder.patch, self._sdk_event(draft), self._config(prefer=prefer)),
        )
        if updated is None:
            raise GraphRejected("updateEvent: Graph returned no event")
        return GraphEvent.model_validate(to_json(updated))

    async def delete_event(self, mailbox: str, event_id: str) -> bool:
        """Delete; False when it was already gone (404 or 410), which is the outcome we wanted."""
        builder = self._user(mailbox).events.by_event_id(event_id)
        try:
            await self._send("deleteEvent", mailbox, functools.partial(builder.delete, self._config()))
        except GraphNotFound:
            return False
        except GraphRejected as exc:
            if exc.status == 410:
                return False
            raise
        return True


__all__ = ["CalendarCalls"]
