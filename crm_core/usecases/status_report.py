"""The status page's use case: read the service's stores once, and report what they hold.

Every figure comes from Azure storage (the ledger, the subscriptions, the poison queues, the
unmatched correspondents, the calendar tables), never from a process's memory, so any instance
answers the same. The operator's questions (`operator_queries`) are asked as the CLI asks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from crm_core.domain.state import SubscriptionRecord
from crm_core.domain.status import (
    LAST_CAPTURE_LOOKBACK,
    WINDOW_HOURS,
    LedgerOutcome,
    StatusReport,
    build_status,
    newest_written,
    window_start,
)
from crm_core.domain.tasks import CALENDAR_QUEUE, CAPTURE_QUEUE, LIFECYCLE_QUEUE, POISON_SUFFIX
from crm_core.usecases import operator_queries
from crm_core.usecases.operator_queries import OperatorState

POISONABLE_QUEUES = (CAPTURE_QUEUE, LIFECYCLE_QUEUE, CALENDAR_QUEUE)


class LedgerHistory(Protocol):
    async def completed_since(self, since: datetime) -> list[LedgerOutcome]: ...
    async def last_written(self, since: datetime) -> LedgerOutcome | None: ...


class SubscriptionLister(Protocol):
    async def all(self) -> list[SubscriptionRecord]: ...


class QueueDepths(Protocol):
    async def message_count(self, queue: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class StatusSources:
    """The stores the status page reads; `crm_core.runtime.Runtime.status_sources` opens them."""

    state: OperatorState
    ledger: LedgerHistory
    subscriptions: SubscriptionLister
    queues: QueueDepths


async def status_report(
    sources: StatusSources,
    *,
    now: datetime | None = None,
    correspondents: int = 10,
    conflicts: int = 10,
    hours: int = WINDOW_HOURS,
) -> StatusReport:
    """The figures of the status page, as of `now`."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rows = await sources.ledger.completed_since(window_start(now, hours))
    last = newest_written(rows) or await sources.ledger.last_written(now - LAST_CAPTURE_LOOKBACK)
    poison = {queue: await sources.queues.message_count(queue + POISON_SUFFIX) for queue in POISONABLE_QUEUES}
    return build_status(
        now=now,
        rows=rows,
        last_written=last,
        subscriptions=await sources.subscriptions.all(),
        poison=poison,
        correspondents=await operator_queries.unmatched_correspondents(sources.state, correspondents),
        calendar=await operator_queries.calendar_status(sources.state, conflicts),
        hours=hours,
    )
