"""How notifications and the reconciliation timer become Graph reads: delta rounds per mailbox, page by page.

A change notification only says "message X was created". Reading X with one GET per
notification costs a Graph request per mail, and Graph allows 10,000 requests per 10 minutes per
mailbox. So a notification runs message delta on the mailbox instead, from the stored cursor:
one request returns up to a page of new mails with everything the decision needs. Runs are
serialized per mailbox in the process, and a notification whose message a previous run already
captured costs no Graph request at all; in a burst, one run covers many notifications. The
reconciliation timer runs the same delta, so a notification Graph never sent still ends as an
activity. Two processes running delta from the same cursor is harmless: the ledger drops the
second capture of a mail.

A round is taken one page at a time, and the cursor moves after each page is captured: the
`@odata.nextLink` while the round goes on, the `@odata.deltaLink` at its end. A crash repeats at
most one page (the ledger drops what is done), memory holds one page whatever the mailbox's size,
and a run that reaches its time budget stores its cursor and asks for its own continuation
instead of being killed by the host. A new round (the first, or after Graph forgot the sync state)
starts at `received_since` days back and asks for created items only; the old cursor stays stored
until the new round's first page is done, so a failed resync never loses the place.

A message the delta did not return (another folder, or delta lagging) is read by id: the
notification is never lost to an optimization.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from crm_core.domain.errors import CursorExpired, ExternalServiceError, ItemGone, Throttled
from crm_core.domain.mail import GraphMessage
from crm_core.domain.mailbox import MAIL_FOLDER
from crm_core.domain.tasks import CaptureTask
from crm_core.usecases.leasing import Lease, held
from crm_core.usecases.mail_capture import CaptureResult, MailCapture

log = logging.getLogger("crm_core.usecases.mailbox_sync")


class DeltaPage(Protocol):
    @property
    def messages(self) -> Sequence[GraphMessage]: ...
    @property
    def hints(self) -> Sequence[str]: ...
    @property
    def next_link(self) -> str | None: ...
    @property
    def delta_link(self) -> str | None: ...
    @property
    def requests(self) -> int: ...


class MailDelta(Protocol):
    async def message_delta_page(
        self,
        mailbox: str,
        folder: str = ...,
        link: str | None = None,
        *,
        received_since: datetime | None = None,
        page_size: int | None = None,
    ) -> DeltaPage: ...


class MailboxBusy(Throttled):
    """Another process holds the mailbox's lease: this task runs again after a short wait."""


# How long a task that found the mailbox busy waits before it runs again.
BUSY_RETRY_SECONDS = 5.0


class Cursors(Protocol):
    async def get(self, name: str) -> str | None: ...
    async def set(self, name: str, value: str) -> None: ...


@dataclass
class SyncReport:
    """What one run did; `failed` are Graph ids to retry one by one through the queue."""

    captured: list[CaptureResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # Graph ids of mails deleted before they were read
    graph_requests: int = 0
    pages: int = 0
    resynced: bool = False
    # The run stopped at its time budget with the round unfinished: queue a continuation.
    unfinished: bool = False
    # Another process held the mailbox's lease: this run did nothing (the holder's run covers it).
    busy: bool = False


def cursor_name(mailbox: str) -> str:
    return f"mail-delta:{mailbox.lower()}:{MAIL_FOLDER}"


def capture_order(messages: Sequence[GraphMessage]) -> dict[str, list[GraphMessage]]:
    """A page's mails by conversation, each conversation oldest first.

    Graph does not promise an order for delta items ("if you do not include an $orderby
    expression, the return order is not guaranteed"); a reply must still come after the mail that
    linked its conversation to an order.
    """
    conversations: dict[str, list[GraphMessage]] = {}
    for message in messages:
        conversations.setdefault(message.conversation_id or f"graph-id:{message.id}", []).append(message)
    for items in conversations.values():
        items.sort(key=lambda m: (m.received_date_time or "", m.id or ""))
    return conversations


class MailboxSync:
    """Delta runs per mailbox, shared by the capture queue worker and the reconciliation timer."""

    def __init__(
        self,
        graph: MailDelta,
        cursors: Cursors,
        capture: MailCapture,
        *,
        initial_days: int = 30,
        budget_seconds: float = 180.0,
        remember: int = 100_000,
        parallel: int = 16,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        leases: Lease | None = None,
        holder: str = "",
    ) -> None:
        self._graph = graph
        self._cursors = cursors
        self._capture = capture
        self._initial_days = initial_days
        self._budget = budget_seconds
        self._locks: dict[str, asyncio.Lock] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._parallel = parallel
        self._clock = clock
        self._now = now
        self._leases = leases
        self._holder = holder

    @asynccontextmanager
    async def _leased(self, mailbox: str) -> AsyncIterator[None]:
        """Hold the mailbox's lease (Graph allows 4 requests at once per mailbox for the whole app;
        the adapter keeps one process under 4, the lease keeps the app to one process), or raise
        MailboxBusy. Renewed while the run lasts, so a process that dies frees it within a minute."""
        if self._leases is None:
            yield
            return

        def busy() -> MailboxBusy:
            return MailboxBusy(f"another process reads mailbox {mailbox}", retry_after=BUSY_RETRY_SECONDS)

        async with held(self._leases, mailbox, self._holder, busy):
            yield

    def _lock(self, mailbox: str) -> asyncio.Lock:
        return self._locks.setdefault(mailbox.lower(), asyncio.Lock())

    def _mark(self, graph_id: str | None) -> None:
        if not graph_id:
            return
        self._done[graph_id] = None
        self._done.move_to_end(graph_id)
        while len(self._done) > self._remember:
            self._done.popitem(last=False)

    async def handle(self, task: CaptureTask) -> SyncReport:
        """The change notifications of one webhook POST for the CRM mailbox."""
        if task.change_type == "deleted":
            return SyncReport()  # a mail deleted from the mailbox keeps its activity
        async with self._lock(task.mailbox):
            if task.item_ids and all(item in self._done for item in task.item_ids):
                return SyncReport()
            async with self._leased(task.mailbox):
                report = await self._delta(task.mailbox)
                await self._leftovers(task, report)
        return report

    async def _leftovers(self, task: CaptureTask, report: SyncReport) -> None:
        for item in task.item_ids:
            if item not in self._done and item not in report.failed:
                # Not in the delta (moved out of the inbox by a rule, say): read it by id, wherever
                # it is now. Each id on its own: one that fails is queued alone, and stops no other.
                report.graph_requests += 1
                try:
                    result = await self._capture_by_id(task.mailbox, item)
                except Exception as exc:
                    log.warning(
                        "mailbox sync: a notified mail failed, queued alone",
                        extra={"graph_id": item, "error": type(exc).__name__},
                    )
                    report.failed.append(item)
                    continue
                if result is None:
                    report.gone.append(item)
                else:
                    report.captured.append(result)

    async def reconcile(self, mailbox: str) -> SyncReport:
        """The timer's run: whatever arrived since the last run, notified or not; nothing when
        another process is reading the mailbox (its run covers the same mail)."""
        async with self._lock(mailbox):
            try:
                async with self._leased(mailbox):
                    return await self._delta(mailbox)
            except MailboxBusy:
                log.info("mailbox sync: another process reads the mailbox; reconcile skipped")
                return SyncReport(busy=True)

    async def retry_one(self, mailbox: str, graph_id: str) -> CaptureResult | None:
        """A mail a delta run could not capture, retried alone (from the queue); None if it is gone."""
        async with self._lock(mailbox), self._leased(mailbox):
            return await self._capture_by_id(mailbox, graph_id)

    async def _capture_by_id(self, mailbox: str, graph_id: str) -> CaptureResult | None:
        """One mail read by id; a mail deleted meanwhile is recorded as gone (None), not as a failure:
        retrying cannot bring it back, and there is nothing of it to store."""
        try:
            result = await self._capture.capture_by_id(mailbox, graph_id)
        except ItemGone:
            log.info("mailbox sync: the notified mail is gone", extra={"graph_id": graph_id, "outcome": "gone"})
            self._mark(graph_id)
            return None
        self._mark(graph_id)
        return result

    async def _capture_page(self, mailbox: str, messages: Sequence[GraphMessage], report: SyncReport) -> list[str]:
        """Capture a page's mails, several at once (each waits mostly on NET Genium), but the mails
        of one conversation in their order, so that a reply finds the order its original linked.
        The page's contacts are looked up together, once. Returns the Graph ids captured.

        A retryable error stops new captures and is raised once the running ones have finished:
        the cursor stays, and the page runs again (the ledger drops what is done). Any other error
        is that mail's own problem and must not stop the mail behind it: it is queued alone.
        """
        contacts = await self._capture.contacts_for(messages)
        slots = asyncio.Semaphore(self._parallel)
        stop: list[ExternalServiceError] = []
        done: list[str] = []

        async def conversation(items: list[GraphMessage]) -> None:
            for message in items:
                if stop:
                    return
                async with slots:
                    try:
                        report.captured.append(await self._capture.capture(mailbox, message, contacts=contacts))
                    except Exception as exc:
                        if isinstance(exc, ExternalServiceError) and exc.retryable:
                            stop.append(exc)
                            return
                        log.warning(
                            "mailbox sync: one mail failed, queued alone",
                            extra={"graph_id": message.id, "error": type(exc).__name__},
                        )
                        if message.id:
                            report.failed.append(message.id)
                        continue
                if message.id:
                    done.append(message.id)

        await asyncio.gather(*(conversation(items) for items in capture_order(messages).values()))
        if stop:
            raise stop[0]
        return done

    async def _hints(self, mailbox: str, hints: Sequence[str], report: SyncReport) -> list[str]:
        """Items too partial to decide on: read by id unless already captured; never a decision."""
        done = []
        for graph_id in hints:
            if graph_id in self._done:
                continue
            report.graph_requests += 1
            try:
                result = await self._capture_by_id(mailbox, graph_id)
            except ExternalServiceError as exc:
                if exc.retryable:
                    raise
                report.failed.append(graph_id)
                continue
            if result is None:
                report.gone.append(graph_id)
            else:
                report.captured.append(result)
            done.append(graph_id)
        return done

    async def _delta(self, mailbox: str) -> SyncReport:
        """Pages of the round from the stored cursor, until the round ends or the budget would be
        spent by one more page (a page may take as long as the slowest one of this run so far)."""
        report = SyncReport()
        deadline = self._clock() + self._budget
        slowest = 0.0
        name = cursor_name(mailbox)
        link = await self._cursors.get(name)
        while True:
            page_started = self._clock()
            since = None if link else self._now() - timedelta(days=self._initial_days)
            try:
                page = await self._graph.message_delta_page(mailbox, MAIL_FOLDER, link, received_since=since)
            except CursorExpired:
                if link is None:
                    raise
                # The stored cursor stays until the new round's first page is done.
                log.warning("mailbox sync: sync state expired, a new round", extra={"mailbox_cursor": name})
                link, report.resynced = None, True
                continue
            report.graph_requests += page.requests
            report.pages += 1
            done = set(await self._capture_page(mailbox, page.messages, report))
            done |= set(await self._hints(mailbox, page.hints, report))
            following = page.next_link or page.delta_link
            if following:
                await self._cursors.set(name, following)
            # Remembered once the page's cursor is stored: a retry of an aborted page's notification
            # must run the page again (from the unchanged cursor), not stop at "its mail is captured".
            # In the page's order, so that the oldest are forgotten first.
            for graph_id in [*(m.id for m in page.messages), *page.hints]:
                if graph_id in done:
                    self._mark(graph_id)
            if not page.next_link:
                return report
            link = page.next_link
            slowest = max(slowest, self._clock() - page_started)
            if self._clock() + slowest >= deadline:
                log.info("mailbox sync: run budget spent, continuing in a new run", extra={"pages": report.pages})
                report.unfinished = True
                return report
