"""How notifications and the reconciliation timer become Graph reads: one delta run per mailbox.

A change notification only says "message X was created". Reading X with one GET per
notification costs a Graph request per mail, and Graph allows 10,000 requests per 10 minutes per
mailbox. So a notification runs message delta on the mailbox instead, from the stored cursor:
one request returns up to a page of new mails with everything the decision needs. Runs are
serialized per mailbox in the process, and a notification whose message a previous run already
captured costs no Graph request at all; in a burst, one run covers many notifications. The
reconciliation timer runs the same delta, so a notification Graph never sent still ends as an
activity. Two processes running delta from the same cursor is harmless: the ledger drops the
second capture of a mail.

A message the delta did not return (another folder, or delta lagging) is read by id: the
notification is never lost to an optimization.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crm_core.domain.errors import CursorExpired, ExternalServiceError, ItemGone
from crm_core.domain.mail import GraphMessage
from crm_core.domain.mailbox import MAIL_FOLDER
from crm_core.domain.tasks import CaptureTask
from crm_core.usecases.mail_capture import CaptureResult, MailCapture

log = logging.getLogger("crm_core.usecases.mailbox_sync")

class DeltaRound(Protocol):
    @property
    def messages(self) -> Sequence[GraphMessage]: ...
    @property
    def delta_link(self) -> str: ...
    @property
    def requests(self) -> int: ...


class MailDelta(Protocol):
    async def message_delta(
        self, mailbox: str, folder: str = ..., delta_link: str | None = None, *, page_size: int | None = None
    ) -> DeltaRound: ...


class Cursors(Protocol):
    async def get(self, name: str) -> str | None: ...
    async def set(self, name: str, value: str) -> None: ...
    async def clear(self, name: str) -> None: ...


@dataclass
class SyncReport:
    """What one run did; `failed` are Graph ids to retry one by one through the queue."""

    captured: list[CaptureResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # Graph ids of mails deleted before they were read
    graph_requests: int = 0
    resynced: bool = False


def cursor_name(mailbox: str) -> str:
    return f"mail-delta:{mailbox.lower()}:{MAIL_FOLDER}"


class MailboxSync:
    """Delta runs per mailbox, shared by the capture queue worker and the reconciliation timer."""

    def __init__(
        self,
        graph: MailDelta,
        cursors: Cursors,
        capture: MailCapture,
        *,
        remember: int = 100_000,
        parallel: int = 16,
    ) -> None:
        self._graph = graph
        self._cursors = cursors
        self._capture = capture
        self._locks: dict[str, asyncio.Lock] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._parallel = parallel

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
        report = SyncReport()
        async with self._lock(task.mailbox):
            if all(item in self._done for item in task.item_ids):
                return report
            report = await self._delta(task.mailbox)
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
        return report

    async def reconcile(self, mailbox: str) -> SyncReport:
        """The timer's run: whatever arrived since the last run, notified or not."""
        async with self._lock(mailbox):
            return await self._delta(mailbox)

    async def retry_one(self, mailbox: str, graph_id: str) -> CaptureResult | None:
        """A mail a delta run could not capture, retried alone (from the queue); None if it is gone."""
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

    async def _capture_all(
        self, mailbox: str, messages: Sequence[GraphMessage], report: SyncReport, done: list[str | None]
    ) -> None:
        """Capture a round's mails, several at once (each waits mostly on NET Genium), but the mails
        of one conversation in their order, so that a reply finds the order its original linked.

        A retryable error stops new captures and is raised once the running ones have finished:
        the cursor stays, and the whole round runs again (the ledger drops what is done). Any other
        error is that mail's own problem and must not stop the mail behind it.
        """
        conversations: dict[str, list[GraphMessage]] = {}
        for message in messages:
            conversations.setdefault(message.conversation_id or f"graph-id:{message.id}", []).append(message)
        slots = asyncio.Semaphore(self._parallel)
        stop: list[ExternalServiceError] = []

        async def conversation(items: list[GraphMessage]) -> None:
            for message in items:
                if stop:
                    return
                async with slots:
                    try:
                        report.captured.append(await self._capture.capture(mailbox, message))
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
                done.append(message.id)

        await asyncio.gather(*(conversation(items) for items in conversations.values()))
        if stop:
            raise stop[0]

    async def _delta(self, mailbox: str) -> SyncReport:
        report = SyncReport()
        name = cursor_name(mailbox)
        link = await self._cursors.get(name)
        try:
            round_ = await self._graph.message_delta(mailbox, MAIL_FOLDER, link)
        except CursorExpired:
            log.warning("mailbox sync: delta link expired, full resync", extra={"mailbox_cursor": name})
            await self._cursors.clear(name)
            round_ = await self._graph.message_delta(mailbox, MAIL_FOLDER, None)
            report.resynced = True
        report.graph_requests += round_.requests
        done: list[str | None] = []
        await self._capture_all(mailbox, round_.messages, report, done)
        await self._cursors.set(name, round_.delta_link)
        # Remembered only once the round is through: a retry of an aborted round's notification must
        # run the round again (from the unchanged cursor), not stop at "its mail is captured".
        captured = set(done)
        for message in round_.messages:  # in the round's order, so the oldest are forgotten first
            if message.id in captured:
                self._mark(message.id)
        return report
