"""`crmservice backfill`: the CRM mailbox's older mail, through the same capture as live mail.

The live path reads mail received since its first run's cutoff (`CRM_INITIAL_SYNC_DAYS` back);
what came before is read here, by received time, oldest first, page by page:

- each mail goes through `MailCapture.capture`: the same ledger claim, decision and write as a
  notified mail, so a mail the live path (or an earlier backfill) stored is a duplicate and costs
  one ledger read, never a second activity;
- after each page is captured the cursor (Table `SyncCursors`, `backfill:<mailbox>:<folder>:<range>`)
  records the received time of the page's last mail and the count so far; a run stopped by Ctrl+C
  (or a failure) starts the next one at that time. Mails received in that same second come again
  and are dropped by the ledger;
- a dry run decides each mail as `crmservice explain` does and writes nothing, not even the cursor.

The backfill runs under a worker name of its own per host, so a run that was interrupted mid-page
takes over its own claims at once (and asks NET Genium first whether the activity was written).

Each page is read and captured under the mailbox's lease (`crm_core.usecases.leasing`), the one the
live capture takes: Graph allows 4 concurrent requests per mailbox for the whole app, so the
backfill waits while a live run reads the mailbox, and a live run waits at most one page.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crm_core.domain.capture_decision import Decision
from crm_core.domain.directory import PageContacts
from crm_core.domain.errors import ExternalServiceError
from crm_core.domain.mail import GraphMessage
from crm_core.domain.mailbox import MAIL_FOLDER
from crm_core.domain.state import LedgerEntry
from crm_core.usecases.leasing import Lease, held
from crm_core.usecases.mail_capture import CaptureResult, Outcome, ledger_id
from crm_core.usecases.mailbox_sync import BUSY_RETRY_SECONDS, Cursors, capture_order

log = logging.getLogger("crm_core.usecases.backfill")


class MessagePage(Protocol):
    @property
    def messages(self) -> Sequence[GraphMessage]: ...
    @property
    def next_link(self) -> str | None: ...


class MailHistory(Protocol):
    """Graph, as far as the backfill reads it: a folder's messages by received time, oldest first."""

    async def message_list_page(
        self,
        mailbox: str,
        folder: str = ...,
        link: str | None = None,
        *,
        received_from: datetime | None = None,
        received_before: datetime | None = None,
        page_size: int | None = None,
    ) -> MessagePage: ...

    async def message_count(
        self,
        mailbox: str,
        folder: str = ...,
        *,
        received_from: datetime | None = None,
        received_before: datetime | None = None,
    ) -> int | None: ...


class Capture(Protocol):
    """`crm_core.usecases.mail_capture.MailCapture`, as far as the backfill uses it."""

    async def contacts_for(self, messages: Sequence[GraphMessage]) -> PageContacts: ...
    async def capture(
        self, mailbox: str, message: GraphMessage, *, contacts: PageContacts | None = None
    ) -> CaptureResult: ...
    async def decision(self, message: GraphMessage, *, contacts: PageContacts | None = None) -> Decision: ...


class LedgerReader(Protocol):
    async def get(self, message_id: str) -> LedgerEntry | None: ...


@dataclass(frozen=True, slots=True)
class BackfillItem:
    """What became of one mail: `written`, `found`, `skipped`, `duplicate`, `failed`; in a dry run
    `would store`, `would skip` or `in ledger` (with the ledger's state in `ledger_state`)."""

    message_id: str
    received: str | None
    outcome: str
    decision: Decision | None = None
    ledger_state: str | None = None
    error: str | None = None


@dataclass
class BackfillReport:
    mails: int = 0  # mails of this range handled so far, earlier runs included
    outcomes: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # message ids that failed (retry: run again)
    pages: int = 0
    resumed_from: str | None = None  # the received time a stopped run had reached
    already_done: bool = False  # an earlier run finished this range: nothing was read
    total: int | None = None  # mails in the range, as Graph counted them at the start (None: unknown)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backfill_cursor(mailbox: str, folder: str, since: datetime, until: datetime) -> str:
    """The cursor of one backfill range: another range is another backfill."""
    return f"backfill:{mailbox.lower()}:{folder}:{_instant(since)}:{_instant(until)}"


def _received(message: GraphMessage) -> datetime | None:
    value = message.received_date_time
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _LeaseTaken(Exception):
    """Another process holds the mailbox's lease (the backfill waits for it)."""


class Backfill:
    """Captures one mailbox folder's mail received in [since, until), resumable page by page."""

    def __init__(
        self,
        graph: MailHistory,
        cursors: Cursors,
        capture: Capture,
        ledger: LedgerReader,
        *,
        mailbox: str,
        folder: str = MAIL_FOLDER,
        page_size: int | None = None,
        parallel: int = 8,
        leases: Lease | None = None,
        holder: str = "",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._graph = graph
        self._cursors = cursors
        self._capture = capture
        self._ledger = ledger
        self._mailbox = mailbox
        self._folder = folder
        self._page_size = page_size
        self._parallel = parallel
        self._leases = leases
        self._holder = holder
        self._sleep = sleep

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One page under the mailbox's lease; while another process holds it, wait and ask again."""
        if self._leases is None:
            yield
            return
        while True:
            try:
                async with held(self._leases, self._mailbox, self._holder, _LeaseTaken):
                    yield
                return
            except _LeaseTaken:  # raised only when taking the lease, never by the page's work
                log.info("backfill: the live capture reads the mailbox; waiting")
                await self._sleep(BUSY_RETRY_SECONDS)

    async def run(
        self,
        since: datetime,
        until: datetime,
        *,
        dry_run: bool = False,
        restart: bool = False,
        on_start: Callable[[BackfillReport], None] | None = None,
        on_item: Callable[[BackfillItem], None] | None = None,
    ) -> BackfillReport:
        """Read and capture the range; `on_start` hears the total and where a resumed run starts,
        `on_item` each mail as it is done. A retryable failure (Graph or NET Genium down) is raised
        after the cursor was saved at the last complete page: the next run continues there."""
        if since >= until:
            raise ValueError("the backfill's start must be before its end")
        report = BackfillReport()
        name = backfill_cursor(self._mailbox, self._folder, since, until)
        start = since
        boundary: datetime | None = None
        saved = None if dry_run or restart else await self._cursors.get(name)
        if saved:
            before = json.loads(saved)
            report.mails = int(before.get("mails", 0))
            report.outcomes = {str(k): int(v) for k, v in dict(before.get("outcomes", {})).items()}
            if before.get("done"):
                report.already_done = True
                return report
            if before.get("after"):
                boundary = datetime.fromisoformat(str(before["after"]))
                start = max(since, boundary)
                report.resumed_from = _instant(start)
        # Mails of the boundary's second were counted by the run before (Graph's instants are seconds).
        counted_from = start + timedelta(seconds=1) if boundary is not None else start
        remaining = await self._graph.message_count(
            self._mailbox, self._folder, received_from=counted_from, received_before=until
        )
        report.total = None if remaining is None else report.mails + remaining
        if on_start is not None:
            on_start(report)
        link: str | None = None
        while True:
            async with self._turn():
                page = await self._graph.message_list_page(
                    self._mailbox,
                    self._folder,
                    link,
                    received_from=None if link else start,
                    received_before=None if link else until,
                    page_size=self._page_size,
                )
                report.pages += 1
                if dry_run:
                    await self._preview_page(page.messages, report, on_item)
                else:
                    await self._capture_page(page.messages, report, on_item, boundary)
                    times = [t for t in (_received(m) for m in page.messages) if t is not None]
                    state: dict[str, Any] = {
                        "after": (max(times) if times else start).isoformat(),
                        "mails": report.mails,
                        "outcomes": report.outcomes,
                    }
                    if not page.next_link:
                        state["done"] = True
                    await self._cursors.set(name, json.dumps(state))
            if not page.next_link:
                return report
            link = page.next_link

    async def _preview_page(
        self, messages: Sequence[GraphMessage], report: BackfillReport, on_item: Callable[[BackfillItem], None] | None
    ) -> None:
        contacts = await self._capture.contacts_for(messages)
        for items in capture_order(messages).values():
            for message in items:
                key = ledger_id(message)
                entry = await self._ledger.get(key)
                if entry is not None:
                    item = BackfillItem(key, message.received_date_time, "in ledger", ledger_state=entry.state.value)
                else:
                    decision = await self._capture.decision(message, contacts=contacts)
                    outcome = "would store" if decision.capture else "would skip"
                    item = BackfillItem(key, message.received_date_time, outcome, decision)
                report.mails += 1
                report.count(item.outcome)
                if on_item is not None:
                    on_item(item)

    async def _capture_page(
        self,
        messages: Sequence[GraphMessage],
        report: BackfillReport,
        on_item: Callable[[BackfillItem], None] | None,
        boundary: datetime | None = None,
    ) -> None:
        """A page's mails, several conversations at once, each conversation oldest first (a reply
        finds the order its original linked). A retryable failure stops the page and is raised once
        the running captures ended; any other failure is that mail's own and is counted."""
        contacts = await self._capture.contacts_for(messages)
        slots = asyncio.Semaphore(self._parallel)
        stop: list[ExternalServiceError] = []

        async def conversation(items: list[GraphMessage]) -> None:
            for message in items:
                if stop:
                    return
                key = ledger_id(message)
                async with slots:
                    try:
                        result = await self._capture.capture(self._mailbox, message, contacts=contacts)
                    except Exception as exc:
                        if isinstance(exc, ExternalServiceError) and exc.retryable:
                            stop.append(exc)
                            return
                        log.warning("backfill: one mail failed", extra={"message_id": key, "error": type(exc).__name__})
                        item = BackfillItem(key, message.received_date_time, "failed", error=type(exc).__name__)
                        report.failed.append(key)
                    else:
                        if (
                            result.outcome is Outcome.DUPLICATE
                            and boundary is not None
                            and _received(message) == boundary
                        ):
                            continue  # done and counted by the run this one resumes
                        item = BackfillItem(key, message.received_date_time, result.outcome.value, result.decision)
                report.mails += 1
                report.count(item.outcome)
                if on_item is not None:
                    on_item(item)

        await asyncio.gather(*(conversation(items) for items in capture_order(messages).values()))
        if stop:
            raise stop[0]
