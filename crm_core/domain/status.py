"""The status page's figures: what capture did in the last hours, and the state around it.

Pure: the use case (`crm_core.usecases.status_report`) reads the stores, and this module turns what
they hold into one `StatusReport`, which the page (`crm_core.domain.status_page`) and the JSON
answer both show. Nothing here holds mail content: the ledger keeps no subject or body, only the
Internet Message-ID, the state, the time and the decision's reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

from crm_core.domain.capture_decision import Skip
from crm_core.domain.state import LedgerState, SubscriptionRecord

WINDOW_HOURS = 24
# Past the window, the last captured mail is looked for this far back, and no further (a bounded scan).
LAST_CAPTURE_LOOKBACK = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class LedgerOutcome:
    """A completed ledger row as the status page counts it: no content, only what became of the mail."""

    message_id: str
    state: LedgerState
    completed_at: datetime
    reason: str | None = None  # the decision's first reason (for a skipped mail: why)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class HourBucket(_Frozen):
    start: datetime
    captured: int = 0
    skipped: int = 0


class ReasonCount(_Frozen):
    reason: str
    count: int


class SubscriptionStatus(_Frozen):
    """A subscription as the page shows it (its clientState secret is never part of it)."""

    id: str
    kind: str
    mailbox: str
    expires_at: datetime
    minutes_left: int
    expired: bool


class QueueDepth(_Frozen):
    queue: str
    depth: int | None  # None: the queue does not exist (nothing was ever poisoned there)


class CorrespondentRow(_Frozen):
    address: str
    count: int
    last_seen: str


class CalendarUserRow(_Frozen):
    email: str
    ng_user_id: str
    synced_up_to: str | None = None  # the NET Genium watermark: changes up to this time are synced


class CalendarUnmatchedRow(_Frozen):
    email: str
    ng_user_id: str
    reason: str


class ConflictRow(_Frozen):
    at: str
    mailbox: str
    winner: str
    loser: str
    fields: list[str]


class CalendarStatus(_Frozen):
    refreshed_at: str | None = None
    synced: list[CalendarUserRow] = []
    unmatched: list[CalendarUnmatchedRow] = []
    conflicts_total: int = 0
    conflicts: list[ConflictRow] = []


class StatusReport(_Frozen):
    """Everything the status page shows, as JSON-ready data."""

    generated_at: datetime
    window_hours: int
    window_start: datetime
    captured: int
    skipped: int
    last_captured_id: str | None
    last_captured_at: datetime | None
    seconds_since_last_capture: int | None
    hours: list[HourBucket]
    skip_reasons: list[ReasonCount]
    subscriptions: list[SubscriptionStatus]
    poison: list[QueueDepth]
    correspondents: list[CorrespondentRow]
    calendar: CalendarStatus

    @computed_field  # type: ignore[prop-decorator]
    @property
    def poison_total(self) -> int:
        return sum(q.depth or 0 for q in self.poison)


def window_start(now: datetime, hours: int = WINDOW_HOURS) -> datetime:
    """The first hour of the window: `hours` whole-hour buckets, the last one the hour `now` is in."""
    top = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return top - timedelta(hours=hours - 1)


def skip_category(reason: str | None) -> str:
    """A skip reason without its detail ("automated: Precedence is bulk" → "automated"), so that
    reasons can be counted; a reason of no known kind is kept up to its first colon."""
    if not reason:
        return "unknown"
    for phrase in Skip:
        if reason == phrase.value or reason.startswith(phrase.value + ":"):
            return phrase.value
    return reason.split(":", 1)[0].strip() or "unknown"


def hour_buckets(rows: Iterable[LedgerOutcome], now: datetime, hours: int = WINDOW_HOURS) -> list[HourBucket]:
    """Captured and skipped mails per hour, oldest hour first; rows outside the window are left out."""
    start = window_start(now, hours)
    captured: Counter[int] = Counter()
    skipped: Counter[int] = Counter()
    for row in rows:
        index = int((row.completed_at.astimezone(UTC) - start) // timedelta(hours=1))
        if not 0 <= index < hours:
            continue
        if row.state is LedgerState.WRITTEN:
            captured[index] += 1
        elif row.state is LedgerState.SKIPPED:
            skipped[index] += 1
    return [
        HourBucket(start=start + timedelta(hours=i), captured=captured[i], skipped=skipped[i]) for i in range(hours)
    ]


def newest_written(rows: Iterable[LedgerOutcome]) -> LedgerOutcome | None:
    written = [row for row in rows if row.state is LedgerState.WRITTEN]
    return max(written, key=lambda row: row.completed_at) if written else None


def _subscription(record: SubscriptionRecord, now: datetime) -> SubscriptionStatus:
    left = record.expires_at - now
    return SubscriptionStatus(
        id=record.id,
        kind=record.kind,
        mailbox=record.mailbox,
        expires_at=record.expires_at,
        minutes_left=int(left.total_seconds() // 60),
        expired=left.total_seconds() <= 0,
    )


def _calendar(status: Mapping[str, Any] | None) -> CalendarStatus:
    """`crm_core.usecases.operator_queries.calendar_status`'s answer, as the page shows it."""
    if not status:
        return CalendarStatus()
    return CalendarStatus(
        refreshed_at=status.get("refreshed_at"),
        synced=[
            CalendarUserRow(
                email=str(u.get("email", "")),
                ng_user_id=str(u.get("ng_user_id", "")),
                synced_up_to=u.get("netgenium_watermark"),
            )
            for u in status.get("synced", [])
        ],
        unmatched=[
            CalendarUnmatchedRow(
                email=str(u.get("email", "")), ng_user_id=str(u.get("ng_user_id", "")), reason=str(u.get("reason", ""))
            )
            for u in status.get("unmatched", [])
        ],
        conflicts_total=int(status.get("conflicts_total", 0)),
        conflicts=[
            ConflictRow(
                at=str(c["at"]),
                mailbox=str(c["mailbox"]),
                winner=str(c["winner"]),
                loser=str(c["loser"]),
                fields=[str(f) for f in c.get("fields", [])],
            )
            for c in status.get("conflicts", [])
        ],
    )


def build_status(
    *,
    now: datetime,
    rows: Sequence[LedgerOutcome],
    last_written: LedgerOutcome | None,
    subscriptions: Iterable[SubscriptionRecord],
    poison: Mapping[str, int | None],
    correspondents: Iterable[Mapping[str, Any]],
    calendar: Mapping[str, Any] | None,
    hours: int = WINDOW_HOURS,
) -> StatusReport:
    """The report from what the stores hold: `rows` are the ledger rows completed in the window,
    `last_written` the newest written row (from the window or an older, bounded look back)."""
    now = now.astimezone(UTC)
    start = window_start(now, hours)
    end = start + timedelta(hours=hours)
    rows = [row for row in rows if start <= row.completed_at.astimezone(UTC) < end]
    buckets = hour_buckets(rows, now, hours)
    newest = newest_written(rows) or last_written
    reasons = Counter(skip_category(row.reason) for row in rows if row.state is LedgerState.SKIPPED)
    return StatusReport(
        generated_at=now,
        window_hours=hours,
        window_start=start,
        captured=sum(b.captured for b in buckets),
        skipped=sum(b.skipped for b in buckets),
        last_captured_id=newest.message_id if newest else None,
        last_captured_at=newest.completed_at if newest else None,
        seconds_since_last_capture=max(0, int((now - newest.completed_at).total_seconds())) if newest else None,
        hours=buckets,
        skip_reasons=[ReasonCount(reason=r, count=n) for r, n in sorted(reasons.items(), key=lambda i: (-i[1], i[0]))],
        subscriptions=sorted(
            (_subscription(s, now) for s in subscriptions), key=lambda s: (s.kind != "mail", s.mailbox, s.id)
        ),
        poison=[QueueDepth(queue=q, depth=d) for q, d in poison.items()],
        correspondents=[
            CorrespondentRow(address=str(c["address"]), count=int(c["count"]), last_seen=str(c["last_seen"]))
            for c in correspondents
        ],
        calendar=_calendar(calendar),
    )


def since_text(seconds: int | None) -> str:
    """'4 min ago', '3 h 5 min ago', '2 days ago'; 'never' without a capture."""
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds} s ago"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min ago"
    return f"{hours // 24} days ago"
