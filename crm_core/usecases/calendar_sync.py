"""Two-way calendar sync of one user: Outlook's changes to NET Genium, NET Genium's to Outlook.

A run holds the user's lease (one process per user at a time, so two runs never both see "no pair"
and create twice), then:

1. reads Outlook's changes with `calendarView/delta` from the stored link (a hint of a notification
   only says *when* to look, never *what* changed);
2. reads NET Genium's calendar activities changed since the user's watermark;
3. on the timer's runs, also looks for activities deleted in NET Genium (a watermark cannot see a
   row that is gone).

Every change goes through `resolve` against the pair's last synced fingerprint: equal to it is our
own echo and is dropped, one side changed is copied over, both changed is a conflict that the later
modification wins (the loser goes to the conflict log). Nothing is created without first looking
for what a lost mapping would have paired it with (the activity id an event carries, the event id an
activity carries), so a wiped mapping table costs reads, never duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from crm_core.domain.activities import CalendarActivity
from crm_core.domain.calendar import (
    CalendarPolicy,
    OutlookEvent,
    Resolution,
    Side,
    SyncedFields,
    SyncWindow,
    activity_fields,
    event_fields,
    netgenium_times,
    resolve,
    transaction_id,
)
from crm_core.domain.calendar_state import CalendarConflict, CalendarPair
from crm_core.domain.calendar_users import SyncedUser
from crm_core.domain.errors import CursorExpired, ServiceRejected, Throttled
from crm_core.usecases.calendar_ports import (
    CalendarReport,
    Conflicts,
    Cursors,
    NetGeniumCalendar,
    OutlookCalendar,
    Pairs,
)
from crm_core.usecases.leasing import Lease, held

log = logging.getLogger("crm_core.calendar")

# Before the first watermark: every activity of the user (those outside the window are skipped).
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BUSY_RETRY_SECONDS = 5.0


class CalendarBusy(Throttled):
    """Another process syncs this user's calendar: the task runs again after a short wait."""


def delta_cursor(mailbox: str) -> str:
    return f"calendar-delta:{mailbox.lower()}"


def watermark_cursor(mailbox: str) -> str:
    return f"ng-calendar-watermark:{mailbox.lower()}"


def lease_name(mailbox: str) -> str:
    return f"calendar:{mailbox.lower()}"


@dataclass
class _Run:
    """What one run for one user has read already. Under the user's lease (and its lock in this
    process) nothing else writes the user's pairs, so they are read once, as one partition, and
    kept here as they are written: a first sync of thousands of events costs no read per item."""

    by_event: dict[str, CalendarPair] | None = None
    by_activity: dict[int, CalendarPair] = field(default_factory=dict)
    # Event id -> the activity that carries it (None: none does), asked of NET Genium in batches.
    activity_of_event: dict[str, int | None] = field(default_factory=dict)


class CalendarSync:
    """Syncs users' calendars both ways; one instance per process."""

    def __init__(
        self,
        outlook: OutlookCalendar,
        netgenium: NetGeniumCalendar,
        pairs: Pairs,
        conflicts: Conflicts,
        cursors: Cursors,
        policy: CalendarPolicy,
        *,
        days_back: int = 30,
        days_ahead: int = 365,
        leases: Lease | None = None,
        holder: str = "",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._outlook = outlook
        self._ng = netgenium
        self._pairs = pairs
        self._conflicts = conflicts
        self._cursors = cursors
        self._policy = policy
        self._days_back = days_back
        self._days_ahead = days_ahead
        self._leases = leases
        self._holder = holder
        self._now = now
        self._locks: dict[str, asyncio.Lock] = {}
        self._runs: dict[str, _Run] = {}

    # ---- entry points ----------------------------------------------------------------------------

    async def sync(self, user: SyncedUser, *, sweep: bool = False) -> CalendarReport:
        """Both directions for one user; `sweep` also propagates activities deleted in NET Genium."""
        report = CalendarReport()
        async with self._held(user.mailbox):
            window = self.window()
            await self._inbound(user, window, report)
            await self._outbound(user, window, report)
            if sweep:
                await self._sweep(user, window, report)
        log.info(
            "calendar: synced",
            extra={
                "mailbox": user.mailbox,
                "to_netgenium": report.to_netgenium,
                "to_outlook": report.to_outlook,
                "echoes": report.echoes,
                "conflicts": report.conflicts,
            },
        )
        return report

    async def activity_saved(self, user: SyncedUser, activity_id: int) -> CalendarReport:
        """NET Genium's OnAfterSave (or delete) named this activity: sync just it, now."""
        report = CalendarReport()
        async with self._held(user.mailbox):
            activity = await self._ng.calendar_activity(activity_id)
            if activity is None or activity.user_id != user.ng_user_id:
                pair = await self._pair_by_activity(user, activity_id)
                if pair is not None:
                    await self._activity_removed(user, pair, report)
            else:
                await self._activity_changed(user, activity, self.window(), report)
        return report

    def window(self) -> SyncWindow:
        return SyncWindow.around(self._now(), self._days_back, self._days_ahead)

    @asynccontextmanager
    async def _held(self, mailbox: str) -> AsyncIterator[None]:
        key = mailbox.lower()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if self._leases is None:
                self._runs[key] = _Run()
                try:
                    yield
                finally:
                    del self._runs[key]
                return

            def busy() -> CalendarBusy:
                return CalendarBusy(f"another process syncs calendar {mailbox}", retry_after=BUSY_RETRY_SECONDS)

            async with held(self._leases, lease_name(mailbox), self._holder, busy):
                self._runs[key] = _Run()
                try:
                    yield
                finally:
                    del self._runs[key]

    # ---- the run's view of the pairs and of NET Genium's event ids --------------------------------

    async def _run(self, user: SyncedUser) -> _Run:
        run = self._runs[user.mailbox.lower()]
        if run.by_event is None:
            pairs = await self._pairs.all(user.mailbox)
            run.by_event = {pair.event_id: pair for pair in pairs}
            run.by_activity = {pair.activity_id: pair for pair in pairs}
        return run

    async def _pair_by_event(self, user: SyncedUser, event_id: str) -> CalendarPair | None:
        run = await self._run(user)
        assert run.by_event is not None
        return run.by_event.get(event_id)

    async def _pair_by_activity(self, user: SyncedUser, activity_id: int) -> CalendarPair | None:
        return (await self._run(user)).by_activity.get(activity_id)

    async def _all_pairs(self, user: SyncedUser) -> list[CalendarPair]:
        run = await self._run(user)
        assert run.by_event is not None
        return list(run.by_event.values())

    async def _save_pair(self, user: SyncedUser, pair: CalendarPair) -> None:
        """Stored first, then remembered: a failed save leaves the run's view as the table is."""
        await self._pairs.save(pair)
        run = await self._run(user)
        assert run.by_event is not None
        before = run.by_event.get(pair.event_id)
        if before is not None and run.by_activity.get(before.activity_id) is before:
            del run.by_activity[before.activity_id]
        run.by_event[pair.event_id] = pair
        run.by_activity[pair.activity_id] = pair
        run.activity_of_event[pair.event_id] = pair.activity_id

    async def _delete_pair(self, user: SyncedUser, pair: CalendarPair) -> None:
        await self._pairs.delete(pair)
        run = await self._run(user)
        assert run.by_event is not None
        run.by_event.pop(pair.event_id, None)
        if run.by_activity.get(pair.activity_id) is pair:
            del run.by_activity[pair.activity_id]

    async def _look_up_events(self, user: SyncedUser, event_ids: list[str]) -> None:
        """Which activities carry these unpaired events' ids, asked in batches before the items
        are gone through one by one."""
        run = await self._run(user)
        assert run.by_event is not None
        wanted = [i for i in dict.fromkeys(event_ids) if i not in run.by_event and i not in run.activity_of_event]
        if wanted:
            found = await self._ng.find_calendar_activities_by_event_ids(wanted)
            run.activity_of_event.update({event_id: found.get(event_id) for event_id in wanted})

    async def _activity_id_of_event(self, user: SyncedUser, event_id: str) -> int | None:
        run = await self._run(user)
        if event_id in run.activity_of_event:
            return run.activity_of_event[event_id]
        return await self._ng.find_calendar_activity_by_event_id(event_id)

    async def _delete_activity(self, user: SyncedUser, activity_id: int) -> bool:
        deleted = await self._ng.delete_calendar_activity(activity_id)
        run = await self._run(user)
        for event_id, carrier in list(run.activity_of_event.items()):
            if carrier == activity_id:
                run.activity_of_event[event_id] = None
        return deleted

    # ---- Outlook to NET Genium -------------------------------------------------------------------

    async def _inbound(self, user: SyncedUser, window: SyncWindow, report: CalendarReport) -> None:
        name = delta_cursor(user.mailbox)
        stored = await self._cursors.get(name)
        link: str | None = None
        if stored:
            key, _, saved_link = stored.partition("|")
            # The window moves with the days; a link made for yesterday's window starts over.
            link = saved_link if key == window.key() and saved_link else None
        try:
            delta = await self._outlook.calendar_delta(user.mailbox, window, link)
        except CursorExpired:
            log.warning("calendar: delta link expired, starting a new round", extra={"mailbox": user.mailbox})
            report.resynced = True
            link = None
            delta = await self._outlook.calendar_delta(user.mailbox, window, None)
        await self._look_up_events(
            user,
            [*delta.removed, *(e.id for e in delta.events if e.kind != "seriesMaster" and e.own_activity_id is None)],
        )
        for event_id in delta.removed:
            await self._guarded(report, event_id, self._event_removed(user, event_id, window, report))
        for event in delta.events:
            if event.kind == "seriesMaster":
                continue  # its occurrences are what the window holds, and what is synced
            await self._guarded(report, event.id, self._event_seen(user, event, window, report))
        if link is None:
            # A new round lists what exists, not what was deleted while no link was valid (a dead
            # link, the window moved overnight): a pair the round did not name is looked at.
            named = {event.id for event in delta.events} | set(delta.removed)
            for pair in await self._all_pairs(user):
                if pair.event_id not in named:
                    await self._guarded(report, pair.event_id, self._event_removed(user, pair.event_id, window, report))
        await self._cursors.set(name, f"{window.key()}|{delta.delta_link}")

    async def _guarded(self, report: CalendarReport, item: str, work: Awaitable[None]) -> None:
        """One item refused for good (a value NET Genium rejects) must not stop the others; outages do."""
        try:
            await work
        except ServiceRejected as exc:
            log.warning("calendar: item refused", extra={"item": item, "reason": f"{type(exc).__name__}: {exc}"})
            report.failed.append(item)

    async def _event_seen(
        self, user: SyncedUser, event: OutlookEvent, window: SyncWindow, report: CalendarReport
    ) -> None:
        if event.partial:
            # A delta item may carry only what changed; compare whole events only.
            whole = await self._outlook.read_event(user.mailbox, event.id)
            if whole is None:
                await self._event_removed(user, event.id, window, report, known_gone=True)
                return
            event = whole
        if event.cancelled:
            await self._event_removed(user, event.id, window, report, known_gone=True)
            return
        await self._event_changed(user, event, window, report)

    async def _event_changed(
        self, user: SyncedUser, event: OutlookEvent, window: SyncWindow, report: CalendarReport
    ) -> None:
        fields = event_fields(event, self._policy)
        pair = await self._pair_by_event(user, event.id)
        if pair is not None and pair.fingerprint == fields.fingerprint():
            report.echoes += 1
            return
        activity: CalendarActivity | None = None
        if pair is not None:
            activity = await self._ng.calendar_activity(pair.activity_id)
            if activity is None:
                # Deleted in NET Genium after the last sync: a delete wins over an edit.
                await self._delete_event(user, pair, report, lost=("edit",), event=event)
                return
        else:
            activity = await self._activity_for_event(user, event)
            if activity is None and event.own_activity_id is not None:
                # We created this event for an activity that no longer exists: the delete wins.
                if await self._outlook.remove_event(user.mailbox, event.id):
                    report.deleted_in_outlook += 1
                return
        if activity is None:
            if not window.holds(fields.start, fields.end):
                return
            await self._create_activity(user, event, fields, report)
            return
        private = fields.private if pair is None else pair.private
        theirs = self._activity_fields(activity, private)
        base = pair.fingerprint if pair is not None else None
        resolution = resolve(base, fields, event.last_modified, theirs, activity.modified)
        if pair is None:
            report.paired += 1
        await self._apply(user, resolution, event, activity, pair, report)

    async def _activity_for_event(self, user: SyncedUser, event: OutlookEvent) -> CalendarActivity | None:
        """The activity a lost mapping paired this event with: by the id the event carries (we made
        it), else by the event id the activity carries (it was made from the event)."""
        activity_id = event.own_activity_id
        if activity_id is None:
            activity_id = await self._activity_id_of_event(user, event.id)
        if activity_id is None:
            return None
        activity = await self._ng.calendar_activity(activity_id)
        if activity is None or activity.user_id != user.ng_user_id:
            return None
        return activity

    async def _create_activity(
        self, user: SyncedUser, event: OutlookEvent, fields: SyncedFields, report: CalendarReport
    ) -> None:
        start, end = netgenium_times(fields, self._policy)
        activity = CalendarActivity(
            subject=fields.subject,
            start=start,
            end=end,
            all_day=fields.all_day,
            location=fields.location,
            body=fields.body,
            user_id=user.ng_user_id,
            event_id=event.id,
        )
        # No activity carries the event id (looked up): inserted, repeatable by the unique event id,
        # so a retried run updates the activity it made.
        activity_id = await self._ng.create_calendar_activity(activity)
        await self._save_pair(
            user,
            CalendarPair(
                mailbox=user.mailbox,
                event_id=event.id,
                activity_id=activity_id,
                fingerprint=fields.fingerprint(),
                series_master_id=event.series_master_id,
                event_modified=event.last_modified,
                private=fields.private,
            ),
        )
        report.to_netgenium += 1

    async def _event_removed(
        self,
        user: SyncedUser,
        event_id: str,
        window: SyncWindow,
        report: CalendarReport,
        *,
        known_gone: bool = False,
    ) -> None:
        pair = await self._pair_by_event(user, event_id)
        if not known_gone:
            # Delta reports an event that left the window like one that was deleted: look.
            still = await self._outlook.read_event(user.mailbox, event_id)
            if still is not None and not still.cancelled:
                fields = event_fields(still, self._policy)
                if window.holds(fields.start, fields.end):
                    await self._event_changed(user, still, window, report)
                elif pair is not None:
                    await self._delete_pair(user, pair)  # it left the window: out of sync's reach, kept as it is
                return
        if pair is None:
            found = await self._activity_id_of_event(user, event_id)
            if found is not None:
                activity = await self._ng.calendar_activity(found)
                if activity is not None and activity.user_id == user.ng_user_id:
                    await self._delete_activity(user, found)
                    report.deleted_in_netgenium += 1
            return
        activity = await self._ng.calendar_activity(pair.activity_id)
        if activity is not None:
            mine = self._activity_fields(activity, pair.private)
            if mine.fingerprint() != pair.fingerprint:
                # Edited in NET Genium since the last sync, deleted in Outlook: the delete wins.
                await self._log_conflict(user, Side.OUTLOOK, Side.NETGENIUM, pair, ("deleted",), None, activity)
                report.conflicts += 1
            if await self._delete_activity(user, pair.activity_id):
                report.deleted_in_netgenium += 1
        await self._delete_pair(user, pair)

    # ---- NET Genium to Outlook -------------------------------------------------------------------

    async def _outbound(self, user: SyncedUser, window: SyncWindow, report: CalendarReport) -> None:
        name = watermark_cursor(user.mailbox)
        stored = await self._cursors.get(name)
        since = datetime.fromisoformat(stored) if stored else _EPOCH
        changed = await self._ng.calendar_changes(user.ng_user_id, since)
        newest = since
        for activity in changed:
            await self._guarded(report, str(activity.id), self._activity_changed(user, activity, window, report))
            if activity.modified is not None and activity.modified > newest:
                newest = activity.modified
        if newest > since:
            await self._cursors.set(name, newest.isoformat())

    def _activity_fields(self, activity: CalendarActivity, private: bool) -> SyncedFields:
        return activity_fields(
            activity.subject,
            activity.start,
            activity.end,
            activity.all_day,
            activity.location,
            activity.body,
            self._policy,
            private=private,
        )

    async def _activity_changed(
        self, user: SyncedUser, activity: CalendarActivity, window: SyncWindow, report: CalendarReport
    ) -> None:
        if activity.id is None:
            return
        pair = await self._pair_by_activity(user, activity.id)
        fields = self._activity_fields(activity, pair.private if pair is not None else False)
        if pair is not None and pair.fingerprint == fields.fingerprint():
            if activity.event_id != pair.event_id:
                # The write-back of a created event's id was lost (an outage after the create).
                await self._ng.upsert_calendar_activity(
                    activity.model_copy(update={"event_id": pair.event_id, "modified": None})
                )
            report.echoes += 1
            return
        event: OutlookEvent | None
        if pair is not None:
            event = await self._outlook.read_event(user.mailbox, pair.event_id)
            if event is None or event.cancelled:
                # Deleted in Outlook after the last sync: the delete wins over the edit.
                await self._delete_activity(user, activity.id)
                await self._delete_pair(user, pair)
                await self._log_conflict(user, Side.OUTLOOK, Side.NETGENIUM, pair, ("deleted",), None, activity)
                report.deleted_in_netgenium += 1
                report.conflicts += 1
                return
        elif activity.event_id:
            event = await self._outlook.read_event(user.mailbox, activity.event_id)
            if event is None or event.cancelled:
                # It mirrored an event that is gone (its mapping lost meanwhile): remove it too.
                await self._delete_activity(user, activity.id)
                report.deleted_in_netgenium += 1
                return
        else:
            event = await self._outlook.event_for_activity(user.mailbox, activity.id)
        if event is None:
            if not window.holds(fields.start, fields.end):
                return
            await self._create_event(user, activity, fields, report)
            return
        base = pair.fingerprint if pair is not None else None
        mine = event_fields(event, self._policy)
        if pair is None:
            fields = self._activity_fields(activity, mine.private)
            report.paired += 1
        resolution = resolve(base, mine, event.last_modified, fields, activity.modified)
        await self._apply(user, resolution, event, activity, pair, report)

    async def _create_event(
        self, user: SyncedUser, activity: CalendarActivity, fields: SyncedFields, report: CalendarReport
    ) -> None:
        assert activity.id is not None
        event = await self._outlook.create_event_for(
            user.mailbox,
            fields,
            transaction_id=transaction_id(user.mailbox, activity.id),
            activity_id=activity.id,
        )
        await self._save_pair(
            user,
            CalendarPair(
                mailbox=user.mailbox,
                event_id=event.id,
                activity_id=activity.id,
                fingerprint=fields.fingerprint(),
                event_modified=event.last_modified,
                activity_modified=activity.modified,
            ),
        )
        # The event id goes into the activity, so that a lost mapping is found again from this side too.
        await self._ng.upsert_calendar_activity(activity.model_copy(update={"event_id": event.id}))
        report.to_outlook += 1

    async def _sweep(self, user: SyncedUser, window: SyncWindow, report: CalendarReport) -> None:
        """Pairs whose activity is gone from NET Genium: the event goes too. Pairs whose event is
        gone from Outlook although no delta round said so: the activity goes too. And pairs a lost
        mapping forgot while neither side changed: activities in the window that carry an event
        id but have no pair are paired again now (reads only when both sides agree), so that a
        later delete on either side still reaches the other.

        Delta reports the difference between two rounds: an event this app created (which no round
        had shown) and the user deleted before the next round came and went, and no round ever
        names it. So the window's event ids are listed, and a paired event missing from them is
        read once more before its activity is deleted (it may have left the window instead)."""
        existing = await self._ng.calendar_activity_ids(user.ng_user_id)
        pairs = await self._all_pairs(user)
        for pair in pairs:
            if pair.activity_id not in existing:
                await self._guarded(report, pair.event_id, self._activity_removed(user, pair, report))
        in_outlook = await self._outlook.event_ids_in_window(user.mailbox, window)
        for pair in await self._all_pairs(user):
            if pair.event_id not in in_outlook:
                await self._guarded(report, pair.event_id, self._event_removed(user, pair.event_id, window, report))
        paired = {pair.activity_id for pair in pairs}
        mirrored = await self._ng.calendar_event_ids_in_window(user.ng_user_id, window.start, window.end)
        for activity_id in sorted(set(mirrored) - paired):
            activity = await self._ng.calendar_activity(activity_id)
            if activity is not None and activity.user_id == user.ng_user_id:
                await self._guarded(report, str(activity_id), self._activity_changed(user, activity, window, report))

    async def _activity_removed(self, user: SyncedUser, pair: CalendarPair, report: CalendarReport) -> None:
        if await self._outlook.remove_event(user.mailbox, pair.event_id):
            report.deleted_in_outlook += 1
        await self._delete_pair(user, pair)

    # ---- both ------------------------------------------------------------------------------------

    async def _apply(
        self,
        user: SyncedUser,
        resolution: Resolution,
        event: OutlookEvent,
        activity: CalendarActivity,
        pair: CalendarPair | None,
        report: CalendarReport,
    ) -> None:
        assert activity.id is not None
        fields = resolution.fields
        # The event's privacy now (it may have been switched in Outlook since the pair was saved).
        private = event_fields(event, self._policy).private
        if resolution.write_to is Side.NETGENIUM:
            await self._write_activity(activity, fields, event)
            report.to_netgenium += 1
        elif resolution.write_to is Side.OUTLOOK:
            # A private event's subject, body and location stay Outlook's own: only times go back.
            await self._outlook.write_event(user.mailbox, event.id, fields, times_only=private)
            report.to_outlook += 1
            if private:
                # ...and NET Genium shows them as the policy does (busy time), in this same run,
                # rather than after the event's echo came back differing from what was saved.
                shown = event_fields(event, self._policy)
                settled = replace(fields, subject=shown.subject, location=shown.location, body=shown.body)
                if settled.fingerprint() != self._activity_fields(activity, private).fingerprint():
                    await self._write_activity(activity, settled, event)
                    report.to_netgenium += 1
                fields = settled
        elif activity.event_id != event.id:
            # Equal on both sides (a rebuilt pair): still note the event id in the activity.
            await self._ng.upsert_calendar_activity(
                activity.model_copy(update={"event_id": event.id, "modified": None})
            )
        if resolution.loser is not None:
            winner = Side.NETGENIUM if resolution.loser is Side.OUTLOOK else Side.OUTLOOK
            await self._log_conflict(
                user,
                winner,
                resolution.loser,
                pair or CalendarPair(user.mailbox, event.id, activity.id, fields.fingerprint(), private=private),
                resolution.lost_fields,
                event,
                activity,
            )
            report.conflicts += 1
        await self._save_pair(
            user,
            CalendarPair(
                mailbox=user.mailbox,
                event_id=event.id,
                activity_id=activity.id,
                fingerprint=fields.fingerprint(),
                series_master_id=event.series_master_id,
                event_modified=event.last_modified,
                activity_modified=activity.modified,
                private=private,
            ),
        )

    async def _write_activity(self, activity: CalendarActivity, fields: SyncedFields, event: OutlookEvent) -> None:
        start, end = netgenium_times(fields, self._policy)
        await self._ng.upsert_calendar_activity(
            activity.model_copy(
                update={
                    "subject": fields.subject,
                    "start": start,
                    "end": end,
                    "all_day": fields.all_day,
                    "location": fields.location,
                    "body": fields.body,
                    "event_id": event.id,
                    "modified": None,
                }
            )
        )

    async def _delete_event(
        self,
        user: SyncedUser,
        pair: CalendarPair,
        report: CalendarReport,
        *,
        lost: tuple[str, ...],
        event: OutlookEvent,
    ) -> None:
        if await self._outlook.remove_event(user.mailbox, pair.event_id):
            report.deleted_in_outlook += 1
        await self._delete_pair(user, pair)
        await self._log_conflict(user, Side.NETGENIUM, Side.OUTLOOK, pair, ("deleted", *lost), event, None)
        report.conflicts += 1

    async def _log_conflict(
        self,
        user: SyncedUser,
        winner: Side,
        loser: Side,
        pair: CalendarPair,
        fields: tuple[str, ...],
        event: OutlookEvent | None,
        activity: CalendarActivity | None,
    ) -> None:
        outlook_at = event.last_modified if event is not None else None
        ng_at = activity.modified if activity is not None else None
        await self._conflicts.add(
            CalendarConflict(
                mailbox=user.mailbox,
                at=self._now(),
                winner=winner.value,
                loser=loser.value,
                event_id=pair.event_id,
                activity_id=pair.activity_id,
                fields=fields,
                winner_modified=outlook_at if winner is Side.OUTLOOK else ng_at,
                loser_modified=ng_at if winner is Side.OUTLOOK else outlook_at,
            )
        )
        log.info(
            "calendar: conflict",
            extra={"mailbox": user.mailbox, "winner": winner.value, "loser": loser.value, "fields": list(fields)},
        )
