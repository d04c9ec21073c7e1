"""Subscription upkeep: the CRM mailbox always has a live Graph subscription, and answers to
lifecycle notifications keep it so.

Graph ends a mail subscription after at most 10,080 minutes, and may remove it or miss changes at
any time (it says so with lifecycle notifications). The timer creates a missing subscription and
renews one past half its life; `subscriptionRemoved` recreates it; `missed` and recreation are
followed by a reconciliation, so that mail that arrived meanwhile is still captured.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crm_core.domain.errors import ServiceRejected
from crm_core.domain.mailbox import event_resource, mail_resource
from crm_core.domain.state import SubscriptionRecord
from crm_core.domain.tasks import LifecycleTask

log = logging.getLogger("crm_core.subscriptions")


class SubscriptionInfoLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def expiration_date_time(self) -> datetime: ...


class SubscriptionApi(Protocol):
    """Graph's subscription operations."""

    async def create_subscription(
        self,
        *,
        resource: str,
        notification_url: str,
        lifecycle_notification_url: str | None,
        client_state: str,
        expiration: datetime,
        change_type: str = ...,
    ) -> SubscriptionInfoLike: ...
    async def renew_subscription(self, subscription_id: str, expiration: datetime) -> SubscriptionInfoLike: ...
    async def reauthorize_subscription(self, subscription_id: str) -> None: ...
    async def delete_subscription(self, subscription_id: str) -> bool: ...
    async def list_subscriptions(self) -> Sequence[SubscriptionInfoLike]: ...


class SubscriptionRecords(Protocol):
    async def save(self, record: SubscriptionRecord) -> None: ...
    async def get(self, subscription_id: str) -> SubscriptionRecord | None: ...
    async def all(self) -> list[SubscriptionRecord]: ...
    async def delete(self, subscription_id: str) -> None: ...


@dataclass
class UpkeepReport:
    created: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


class SubscriptionUpkeep:
    """Keeps the CRM mailbox's subscription alive; `reconcile` runs after gaps."""

    def __init__(
        self,
        graph: SubscriptionApi,
        records: SubscriptionRecords,
        *,
        mailbox: str,
        notification_url: str,
        lifecycle_url: str,
        lifetime: timedelta,
        reconcile: Callable[[], Awaitable[object]],
        resync_calendar: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._graph = graph
        self._records = records
        self._mailbox = mailbox
        self._notification_url = notification_url
        self._lifecycle_url = lifecycle_url
        self._lifetime = lifetime
        self._reconcile = reconcile
        # After a gap in a calendar's notifications: sync that user's calendar (by Graph user id).
        self._resync_calendar = resync_calendar
        # The timer and lifecycle notifications may run at once; two of them seeing "no
        # subscription" would create two. One at a time in a process; across processes, `run`
        # removes any duplicate the next time.
        self._lock = asyncio.Lock()

    async def run(self, now: datetime | None = None) -> UpkeepReport:
        """Create the mail subscription if it is missing; renew those past half their life."""
        async with self._lock:
            return await self._run(now or datetime.now(UTC))

    async def handle(self, task: LifecycleTask) -> None:
        """Answer one lifecycle notification."""
        async with self._lock:
            await self._handle(task)

    async def ensure_event_subscriptions(self, mailboxes: Sequence[str], now: datetime | None = None) -> UpkeepReport:
        """One event subscription per synced user's calendar: create the missing, delete the others'.

        Renewal is `run`'s, as for every subscription the app owns.
        """
        async with self._lock:
            now = now or datetime.now(UTC)
            report = UpkeepReport()
            wanted = {mailbox.lower(): mailbox for mailbox in mailboxes}
            have: dict[str, SubscriptionRecord] = {}
            for record in await self._records.all():
                if record.kind != "events":
                    continue
                key = record.mailbox.lower()
                if key not in wanted or key in have or record.expires_at <= now:
                    await self._graph.delete_subscription(record.id)
                    await self._records.delete(record.id)
                    report.dropped.append(record.id)
                else:
                    have[key] = record
            for key, mailbox in sorted(wanted.items()):
                if key not in have:
                    created = await self._create(now, kind="events", mailbox=mailbox)
                    report.created.append(created.id)
                    if self._resync_calendar is not None:
                        await self._resync_calendar(mailbox)
            return report

    async def _run(self, now: datetime) -> UpkeepReport:
        report = UpkeepReport()
        records = await self._records.all()
        mail = [r for r in records if r.kind == "mail" and r.resource == mail_resource(self._mailbox)]
        # What Graph itself still has: a subscription it dropped without a lifecycle notification
        # reaching us must not look alive until our own record of its expiry runs out.
        live = {info.id for info in await self._graph.list_subscriptions()}
        for record in records:
            if record.expires_at <= now or record.id not in live:
                # Expired or gone: Graph has forgotten it; keep no secret for it.
                await self._records.delete(record.id)
                report.dropped.append(record.id)
                mail = [r for r in mail if r.id != record.id]
            elif record.expires_at - now < self._lifetime / 2:
                if await self._renew(record, now):
                    report.renewed.append(record.id)
                else:
                    report.dropped.append(record.id)
                    mail = [r for r in mail if r.id != record.id]
        if not mail:
            created = await self._create(now)
            report.created.append(created.id)
            # Mail that arrived while no subscription was live, or after Graph created this one but
            # before its record was saved (the webhook drops notifications of ids it does not know).
            await self._reconcile()
        for extra in sorted(mail, key=lambda r: r.expires_at)[:-1]:
            # Two processes created one each: keep the longest-lived, so Graph notifies once.
            await self._graph.delete_subscription(extra.id)
            await self._records.delete(extra.id)
            report.dropped.append(extra.id)
        return report

    async def _handle(self, task: LifecycleTask) -> None:
        record = await self._records.get(task.subscription_id)
        if record is None:
            log.warning("lifecycle: unknown subscription", extra={"subscription_id": task.subscription_id})
            return
        if task.event == "reauthorizationRequired":
            try:
                await self._graph.reauthorize_subscription(record.id)
            except ServiceRejected:
                # Reauthorizing failed for good (removed meanwhile): replace the subscription.
                await self._replace(record)
                await self._catch_up(record)
                return
            if not await self._renew(record, datetime.now(UTC)):
                # Renewal refused after all (and the record dropped): do not leave the mailbox unwatched.
                await self._create(datetime.now(UTC), kind=record.kind, mailbox=record.mailbox)
                await self._catch_up(record)
                return
            # Graph pauses delivery until the reauthorization, and what changed meanwhile is never
            # notified ("any notifications ... would be lost"): read what the pause hid.
            await self._catch_up(record)
        elif task.event == "subscriptionRemoved":
            await self._replace(record)
            await self._catch_up(record)
        else:  # missed
            await self._catch_up(record)
        log.info("lifecycle: handled", extra={"subscription_id": record.id, "event": task.event})

    async def _catch_up(self, record: SubscriptionRecord) -> None:
        """Read what a gap in this subscription's notifications may have hidden."""
        if record.kind == "events":
            if self._resync_calendar is not None:
                await self._resync_calendar(record.mailbox)
            return
        await self._reconcile()

    async def _renew(self, record: SubscriptionRecord, now: datetime) -> bool:
        try:
            renewed = await self._graph.renew_subscription(record.id, now + self._lifetime)
        except ServiceRejected:
            log.warning("subscriptions: renewal refused, dropping", extra={"subscription_id": record.id})
            await self._records.delete(record.id)
            return False
        await self._records.save(replace(record, expires_at=renewed.expiration_date_time))
        return True

    async def _replace(self, record: SubscriptionRecord) -> SubscriptionRecord:
        await self._graph.delete_subscription(record.id)
        await self._records.delete(record.id)
        return await self._create(datetime.now(UTC), kind=record.kind, mailbox=record.mailbox)

    async def _create(self, now: datetime, *, kind: str = "mail", mailbox: str | None = None) -> SubscriptionRecord:
        client_state = secrets.token_urlsafe(32)
        mailbox = mailbox or self._mailbox
        events = kind == "events"
        resource = event_resource(mailbox) if events else mail_resource(mailbox)
        created = await self._graph.create_subscription(
            resource=resource,
            notification_url=self._notification_url,
            lifecycle_notification_url=self._lifecycle_url,
            client_state=client_state,
            # A calendar change of any kind is a hint to sync that user; mail only needs new items.
            expiration=now + self._lifetime,
            change_type="created,updated,deleted" if events else "created",
        )
        record = SubscriptionRecord(
            id=created.id,
            resource=resource,
            kind="events" if events else "mail",
            mailbox=mailbox,
            client_state=client_state,
            expires_at=created.expiration_date_time,
            created_at=now,
        )
        await self._records.save(record)
        log.info("subscriptions: created", extra={"subscription_id": record.id})
        return record


# ---- the operator's `crmservice subscriptions` --------------------------------------------------


class ListedSubscription(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def expiration_date_time(self) -> datetime: ...


class SubscriptionLister(Protocol):
    async def list_subscriptions(self) -> Sequence[ListedSubscription]: ...
    async def delete_subscription(self, subscription_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """One subscription as Graph and the stored records see it."""

    id: str
    resource: str
    expires_at: datetime | None
    in_graph: bool
    stored: bool
    agree: bool
    note: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "in_graph": self.in_graph,
            "stored": self.stored,
            "agree": self.agree,
            "note": self.note,
        }


async def subscription_overview(graph: SubscriptionLister, records: SubscriptionRecords) -> list[SubscriptionView]:
    """Every subscription the app owns in Graph or has a record of, and whether the two agree."""
    live = {info.id: info for info in await graph.list_subscriptions()}
    stored = {record.id: record for record in await records.all()}
    out: list[SubscriptionView] = []
    for sid in sorted(live.keys() | stored.keys()):
        info, record = live.get(sid), stored.get(sid)
        if info is not None and record is not None:
            same = abs((info.expiration_date_time - record.expires_at).total_seconds()) < 60
            note = "ok" if same else f"the stored expiry is {record.expires_at.isoformat()}"
            out.append(SubscriptionView(sid, info.resource, info.expiration_date_time, True, True, same, note))
        elif info is not None:
            note = "not stored: the webhook drops its notifications (`crmservice subscriptions ensure` fixes it)"
            out.append(SubscriptionView(sid, info.resource, info.expiration_date_time, True, False, False, note))
        elif record is not None:
            note = "Graph no longer has it (`crmservice subscriptions ensure` fixes it)"
            out.append(SubscriptionView(sid, record.resource, record.expires_at, False, True, False, note))
    return out


@dataclass(frozen=True, slots=True)
class DeletedSubscription:
    id: str
    in_graph: bool
    stored: bool

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "deleted_in_graph": self.in_graph, "deleted_record": self.stored}


async def delete_subscriptions(
    graph: SubscriptionLister, records: SubscriptionRecords, ids: Sequence[str] | None
) -> list[DeletedSubscription]:
    """Delete the subscriptions `ids` (None: every one) in Graph and their records."""
    if ids is None:
        ids = [view.id for view in await subscription_overview(graph, records)]
    out: list[DeletedSubscription] = []
    for sid in ids:
        in_graph = await graph.delete_subscription(sid)
        stored = await records.get(sid) is not None
        if stored:
            await records.delete(sid)
        log.info("subscriptions: deleted by the operator", extra={"subscription_id": sid})
        out.append(DeletedSubscription(sid, in_graph, stored))
    return out
