"""Calendar activities in NET Genium: the calls the calendar sync will make, on the schema map.

Part of `NetGeniumClient` (a mixin over its transport and schema map), kept apart so that each
file holds one kind of record: e-mail activities and the directory in `client.py`, calendar
activities here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from crm_core.netgenium import filters as f
from crm_core.netgenium.errors import NetGeniumConflict, NetGeniumNotFound, NetGeniumProtocolError, NetGeniumRejected
from crm_core.netgenium.fit import fit_identifier
from crm_core.netgenium.mapping import base_filter, calendar_activity_values, calendar_from_record
from crm_core.netgenium.models import CalendarActivity
from crm_core.netgenium.schema_map import SchemaMap
from crm_core.netgenium.transport import RecordTransport

logger = logging.getLogger("crm_core.netgenium.calendar")


class CalendarActivities:
    """Find, write and delete calendar activities; list those changed since a watermark."""

    transport: RecordTransport
    schema_map: SchemaMap
    max_in_values: int
    max_filter_chars: int

    async def find_calendar_activity_by_event_id(self, event_id: str) -> int | None:
        """The calendar activity that mirrors this Outlook event, if any."""
        entity = self.schema_map.calendar_activities
        column = entity.column("event_id")
        records = await self.transport.query(
            entity.table,
            base_filter(entity) & f.eq(column.name, fit_identifier(event_id, column.max_length)),
            columns=["id"],
            orderby="id",
        )
        return records[0]["id"] if records else None

    async def find_calendar_activities_by_event_ids(self, event_ids: Iterable[str]) -> dict[str, int]:
        """The calendar activities that mirror these Outlook events, by event id: one query per
        hundred ids instead of one per event (a first sync pairs thousands). Ids are matched
        exactly as stored (fitted to the column), whatever the column's collation says."""
        entity = self.schema_map.calendar_activities
        column = entity.column("event_id")
        stored = {fit_identifier(event_id, column.max_length): event_id for event_id in event_ids if event_id}
        found: dict[str, int] = {}
        for chunk in f.chunked_in(
            column.name,
            sorted(stored),
            max_values=self.max_in_values,
            max_chars=self.max_filter_chars,
            base=base_filter(entity),
        ):
            async for record in self.transport.iter_records(entity.table, chunk, columns=["id", column.name]):
                event_id = stored.get(record.get(column.name) or "")
                if event_id is not None and (event_id not in found or record["id"] < found[event_id]):
                    found[event_id] = int(record["id"])
        return found

    async def create_calendar_activity(self, activity: CalendarActivity) -> int:
        """Insert a calendar activity that no record mirrors yet (the sync looked). A unique event
        id makes the insert repeatable: a conflict (a retried run, a lost answer) updates the
        activity that holds the event id instead of storing a second one."""
        entity = self.schema_map.calendar_activities
        values = calendar_activity_values(entity, activity)
        try:
            return await self.transport.insert(
                entity.table, values, repeatable=entity.column("event_id").unique and bool(activity.event_id)
            )
        except NetGeniumConflict:
            if not activity.event_id:
                raise
            found = await self.find_calendar_activity_by_event_id(activity.event_id)
            if found is None:
                raise
            await self.transport.update(entity.table, found, values)
            return found

    async def upsert_calendar_activity(self, activity: CalendarActivity) -> int:
        """Write a calendar activity: by its id when known, else by its Outlook event id.

        An id that no longer exists raises NetGeniumNotFound: the activity was deleted in NET
        Genium, and whether to recreate it is the sync's decision, not the adapter's.
        """
        entity = self.schema_map.calendar_activities
        values = calendar_activity_values(entity, activity)
        if activity.id is not None:
            await self.transport.update(entity.table, activity.id, values)
            return activity.id
        if activity.event_id:
            found = await self.find_calendar_activity_by_event_id(activity.event_id)
            if found is not None:
                await self.transport.update(entity.table, found, values)
                return found
        return await self.create_calendar_activity(activity)

    async def delete_calendar_activity(self, activity_id: int) -> bool:
        """Delete a calendar activity; False when it is gone already (deletes are idempotent).

        The record is read first when the table is shared, so a wrong id can never delete an
        e-mail activity.
        """
        entity = self.schema_map.calendar_activities
        fixed = entity.fixed_values()
        try:
            if fixed:
                record = await self.transport.get_record(entity.table, activity_id, columns=["id", *fixed])
                if any(record.get(name) != value for name, value in fixed.items()):
                    raise NetGeniumRejected(f"record {activity_id} of {entity.table} is not a calendar activity")
            await self.transport.delete(entity.table, activity_id)
        except NetGeniumNotFound:
            return False
        return True

    async def list_calendar_activities_modified_since(
        self, watermark: datetime, *, user_id: int | None = None
    ) -> list[CalendarActivity]:
        """Calendar activities modified at or after `watermark` (of one user, when given), oldest
        change first.

        `ge` rather than `gt`: an activity saved in the same millisecond as the watermark is read
        again rather than missed; the sync drops such repeats by their fingerprint. A record that is
        no calendar activity the sync can read (no start) is left out and logged, not fatal to the
        others.
        """
        entity = self.schema_map.calendar_activities
        modified = entity.column("modified").name
        wanted = base_filter(entity) & f.ge(modified, watermark)
        if user_id is not None:
            wanted = wanted & f.eq(entity.column("user").name, int(user_id))
        records = await self.transport.query(
            entity.table,
            wanted,
            columns=["id", *(column.name for column in entity.columns.values())],
            orderby=f"{modified} asc,id asc",
        )
        out: list[CalendarActivity] = []
        for record in records:
            try:
                out.append(calendar_from_record(entity, record))
            except NetGeniumProtocolError as exc:
                logger.warning("calendar activity %s skipped: %s", record.get("id"), exc)
        return out

    async def calendar_changes(self, user_id: int, since: datetime) -> list[CalendarActivity]:
        """The calendar sync's port: one user's activities changed since its watermark."""
        return await self.list_calendar_activities_modified_since(since, user_id=user_id)

    async def calendar_activity(self, activity_id: int) -> CalendarActivity | None:
        """One calendar activity; None when it is gone or is no calendar activity."""
        entity = self.schema_map.calendar_activities
        try:
            record = await self.transport.get_record(
                entity.table, activity_id, columns=["id", *(column.name for column in entity.columns.values())]
            )
        except NetGeniumNotFound:
            return None
        fixed = entity.fixed_values()
        if any(record.get(name) != value for name, value in fixed.items()):
            return None
        try:
            return calendar_from_record(entity, record)
        except NetGeniumProtocolError as exc:
            logger.warning("calendar activity %s unreadable: %s", activity_id, exc)
            return None

    async def calendar_event_ids_in_window(self, user_id: int, start: datetime, end: datetime) -> dict[int, str]:
        """One user's calendar activities that overlap [start, end] and carry an Outlook event id,
        as activity id -> event id: what a lost mapping paired (the sweep rebuilds those pairs)."""
        entity = self.schema_map.calendar_activities
        event_column = entity.column("event_id").name
        wanted = (
            base_filter(entity)
            & f.eq(entity.column("user").name, int(user_id))
            & f.le(entity.column("start").name, end)
            & f.ge(entity.column("end").name, start)
        )
        records = await self.transport.query(entity.table, wanted, columns=["id", event_column], orderby="id")
        return {int(record["id"]): str(record[event_column]) for record in records if record.get(event_column)}

    async def calendar_activity_ids(self, user_id: int) -> set[int]:
        """The ids of one user's calendar activities (to see which were deleted)."""
        entity = self.schema_map.calendar_activities
        records = await self.transport.query(
            entity.table,
            base_filter(entity) & f.eq(entity.column("user").name, int(user_id)),
            columns=["id"],
            orderby="id",
        )
        return {int(record["id"]) for record in records}
