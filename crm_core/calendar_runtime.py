"""Calendar sync's part of the composition root: its stores and use cases, built on first use from
the process's `Runtime`, and the entry points its triggers call.

Kept apart from `runtime.py` so that each holds one half of the product; both share one set of
adapters (one Graph client with its per-mailbox limit, one NET Genium client, one storage client).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from crm_core.domain.calendar import CalendarPolicy
from crm_core.domain.calendar_users import UserMatch
from crm_core.domain.tasks import CALENDAR_QUEUE, CalendarTask, deferral

if TYPE_CHECKING:
    from crm_core.runtime import Runtime
    from crm_core.storage.calendar import CalendarConflicts, CalendarPairs, CalendarUsers
    from crm_core.usecases.calendar_ports import CalendarReport
    from crm_core.usecases.calendar_sync import CalendarSync

log = logging.getLogger("crm_core.calendar_runtime")


class CalendarRuntime:
    """Calendar sync for one worker process."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    @cached_property
    def pairs(self) -> CalendarPairs:
        from crm_core.storage.calendar import CalendarPairs

        return CalendarPairs(self._rt.storage)

    @cached_property
    def conflicts(self) -> CalendarConflicts:
        from crm_core.storage.calendar import CalendarConflicts

        return CalendarConflicts(self._rt.storage)

    @cached_property
    def users(self) -> CalendarUsers:
        from crm_core.storage.calendar import CalendarUsers

        return CalendarUsers(self._rt.storage)

    @cached_property
    def sync(self) -> CalendarSync:
        from crm_core.graph.outlook_calendar import GraphCalendar
        from crm_core.storage.cursors import SyncCursors
        from crm_core.storage.leases import MailboxLeases
        from crm_core.usecases.calendar_sync import CalendarSync

        settings = self._rt.settings
        return CalendarSync(
            GraphCalendar(self._rt.graph),
            self._rt.netgenium,
            self.pairs,
            self.conflicts,
            SyncCursors(self._rt.storage),
            CalendarPolicy(
                time_zone=settings.crm_calendar_time_zone,
                private_subject=settings.crm_calendar_private_subject,
                sync_private_details=settings.crm_calendar_sync_private_details,
            ),
            days_back=settings.sync_days_back,
            days_ahead=settings.sync_days_ahead,
            leases=MailboxLeases(self._rt.storage),
            holder=self._rt.worker,
        )

    # ---- entry points ----------------------------------------------------------------------------

    async def refresh_users(self) -> UserMatch:
        """The users timer: who is synced, and their event subscriptions."""
        from crm_core.graph.outlook_calendar import GraphCalendar
        from crm_core.usecases.calendar_users import refresh_users

        async def ensure(mailboxes: Sequence[str]) -> object:
            return await self._rt.upkeep.ensure_event_subscriptions(mailboxes)

        return await refresh_users(
            self._rt.netgenium, GraphCalendar(self._rt.graph), self.users, ensure_subscriptions=ensure
        )

    async def poll_tasks(self) -> list[str]:
        """The poll timer: one task per synced user, each also looking for deletions."""
        from crm_core.usecases.calendar_users import synced_users

        return [
            CalendarTask(mailbox=user.mailbox, sweep=True).model_dump_json() for user in await synced_users(self.users)
        ]

    async def activity_saved(self, activity_id: int) -> str:
        """The OnAfterSave trigger: the task that syncs this activity now."""
        return CalendarTask(activity_id=activity_id).model_dump_json()

    async def sync_mailbox(self, mailbox: str, *, sweep: bool = False) -> CalendarReport | None:
        """Sync one user by Graph user id; None when that user is not (or no longer) synced."""
        from crm_core.usecases.calendar_users import synced_user

        user = await synced_user(self.users, mailbox=mailbox)
        if user is None:
            log.info("calendar: notification for a user not in sync", extra={"mailbox": mailbox})
            return None
        return await self.sync.sync(user, sweep=sweep)

    async def run_task(self, body: str, attempt: int) -> None:
        """One calendar task; throttling sends it back to wait without spending an attempt."""
        task: CalendarTask | None = None
        try:
            task = CalendarTask.model_validate_json(body)
            if task.mailbox is not None:
                await self.sync_mailbox(task.mailbox, sweep=task.sweep)
            elif task.activity_id is not None:
                await self._activity(task.activity_id)
        except Exception as exc:
            later = deferral(task, exc) if task is not None else None
            if later is not None and await self._rt.defer(CALENDAR_QUEUE, exc, attempt, *later):
                return
            await self._rt.record_failure(CALENDAR_QUEUE, body, exc, attempt)
            raise

    async def _activity(self, activity_id: int) -> None:
        from crm_core.usecases.calendar_users import synced_user, synced_users

        activity = await self._rt.netgenium.calendar_activity(activity_id)
        if activity is not None and activity.user_id is not None:
            found = await synced_user(self.users, ng_user_id=activity.user_id)
            if found is not None:
                await self.sync.activity_saved(found, activity_id)
            return
        # Deleted: the user whose pair holds it deletes its event.
        for user in await synced_users(self.users):
            if await self.pairs.by_activity(user.mailbox, activity_id) is not None:
                await self.sync.activity_saved(user, activity_id)
                return
