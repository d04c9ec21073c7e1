"""The status report's use case with fakes, and the ledger's time-bounded reads against Azurite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from crm_core.domain.calendar_state import CalendarConflict, CalendarUsersState
from crm_core.domain.state import Correspondent, LedgerState, PoisonItem, SubscriptionRecord
from crm_core.domain.status import LedgerOutcome, window_start
from crm_core.storage.ledger import CaptureLedger, ledger_key
from crm_core.storage.tables import LEDGER_TABLE, TableStorage
from crm_core.usecases.operator_queries import OperatorState
from crm_core.usecases.status_report import StatusSources, status_report

NOW = datetime(2026, 12, 1, 6, 20, tzinfo=UTC)


class History:
    def __init__(self, rows: list[LedgerOutcome], older: LedgerOutcome | None = None) -> None:
        self.rows, self.older = rows, older
        self.asked: list[datetime] = []
        self.looked_back: list[datetime] = []

    async def completed_since(self, since: datetime) -> list[LedgerOutcome]:
        self.asked.append(since)
        return [r for r in self.rows if r.completed_at >= since]

    async def last_written(self, since: datetime) -> LedgerOutcome | None:
        self.looked_back.append(since)
        return self.older


class Subscriptions:
    async def all(self) -> list[SubscriptionRecord]:
        return [
            SubscriptionRecord("s-cal", "r", "events", "u1@firma.example", "secret", NOW - timedelta(minutes=5), NOW),
            SubscriptionRecord("s-mail", "r", "mail", "crm@firma.example", "secret", NOW + timedelta(hours=2), NOW),
        ]


class Queues:
    def __init__(self, depths: dict[str, int | None]) -> None:
        self.depths = depths

    async def message_count(self, queue: str) -> int | None:
        return self.depths.get(queue)


class Correspondents:
    async def top(self, limit: int = 100) -> list[Correspondent]:
        rows = [Correspondent(f"c{n}@x.example", 10 - n, NOW) for n in range(8)]
        return rows[:limit]


class Poison:
    async def list(self, queue: str, limit: int) -> list[PoisonItem]:
        raise AssertionError("the page reads the queues' depth, not their items")

    async def replay(self, queue: str) -> int:
        raise AssertionError("the page never replays")


class CalendarUsers:
    async def load(self) -> CalendarUsersState | None:
        return CalendarUsersState(
            refreshed_at=NOW - timedelta(minutes=10),
            synced=[{"ng_user_id": 1, "email": "u1@firma.example", "mailbox": "u1@firma.example"}],
            unmatched=[{"ng_user_id": 2, "email": "u2@firma.example", "reason": "no Microsoft 365 user"}],
        )


class Conflicts:
    async def recent(self, limit: int = 100, mailbox: str | None = None) -> list[CalendarConflict]:
        return [CalendarConflict("u1@firma.example", NOW, "outlook", "netgenium", "e1", 7, ("start",))][:limit]

    async def count(self) -> int:
        return 4


class Cursors:
    async def get(self, name: str) -> str | None:
        return "2026-12-01T06:00:00+00:00" if name.endswith("u1@firma.example") else None


def sources(history: History, depths: dict[str, int | None]) -> StatusSources:
    state = OperatorState(
        ledger=None,  # type: ignore[arg-type]  # the page asks the ledger through `history`
        correspondents=Correspondents(),
        poison=Poison(),
        calendar_users=CalendarUsers(),
        calendar_conflicts=Conflicts(),
        cursors=Cursors(),
    )
    return StatusSources(state=state, ledger=history, subscriptions=Subscriptions(), queues=Queues(depths))


async def test_the_report_gathers_every_store_through_the_operator_queries() -> None:
    rows = [
        LedgerOutcome("<w1@x>", LedgerState.WRITTEN, NOW - timedelta(hours=3)),
        LedgerOutcome("<w2@x>", LedgerState.WRITTEN, NOW - timedelta(minutes=7)),
        LedgerOutcome("<s1@x>", LedgerState.SKIPPED, NOW - timedelta(hours=1), "sender not in address book"),
    ]
    history = History(rows)
    depths: dict[str, int | None] = {"capture-tasks-poison": 2, "calendar-tasks-poison": 1}
    report = await status_report(sources(history, depths), now=NOW, correspondents=5, conflicts=3)

    assert history.asked == [window_start(NOW)] and history.looked_back == []  # the window had a capture
    assert (report.captured, report.skipped) == (2, 1)
    assert (report.last_captured_id, report.seconds_since_last_capture) == ("<w2@x>", 420)
    assert [(q.queue, q.depth) for q in report.poison] == [
        ("capture-tasks", 2),
        ("lifecycle-tasks", None),
        ("calendar-tasks", 1),
    ]
    assert report.poison_total == 3
    assert [c.address for c in report.correspondents] == [f"c{n}@x.example" for n in range(5)]
    assert [(s.id, s.expired) for s in report.subscriptions] == [("s-mail", False), ("s-cal", True)]
    assert report.subscriptions[0].minutes_left == 120
    calendar = report.calendar
    assert [(u.email, u.synced_up_to) for u in calendar.synced] == [("u1@firma.example", "2026-12-01T06:00:00+00:00")]
    assert [u.reason for u in calendar.unmatched] == ["no Microsoft 365 user"]
    assert calendar.conflicts_total == 4 and calendar.conflicts[0].fields == ["start"]
    assert "secret" not in report.model_dump_json()


async def test_without_a_capture_in_the_window_the_last_one_is_looked_up_thirty_days_back() -> None:
    older = LedgerOutcome("<old@x>", LedgerState.WRITTEN, NOW - timedelta(days=2))
    history = History([LedgerOutcome("<s@x>", LedgerState.SKIPPED, NOW, "internal")], older)
    report = await status_report(sources(history, {}), now=NOW)
    assert history.looked_back == [NOW - timedelta(days=30)]
    assert (report.captured, report.skipped, report.last_captured_id) == (0, 1, "<old@x>")
    assert report.poison_total == 0


async def _put(storage: TableStorage, message_id: str, state: LedgerState, completed: datetime | None) -> None:
    partition, row = ledger_key(message_id)
    table = await storage.table(LEDGER_TABLE)
    entity: dict[str, object] = {
        "PartitionKey": partition,
        "RowKey": row,
        "MessageId": message_id,
        "State": state.value,
        "ClaimedBy": "w",
        "ClaimedAt": NOW - timedelta(days=40),
        "Attempts": 1,
        "Reasons": json.dumps(["automated: Precedence is bulk"] if state is LedgerState.SKIPPED else ["incoming"]),
    }
    if completed is not None:
        entity["CompletedAt"] = completed
    await table.upsert_entity(entity)


async def test_the_table_ledger_reads_only_the_window_and_finds_the_last_written_row(storage: TableStorage) -> None:
    ledger = CaptureLedger(storage)
    since = window_start(NOW)
    await _put(storage, "<in-1@x>", LedgerState.WRITTEN, since + timedelta(minutes=1))
    await _put(storage, "<in-2@x>", LedgerState.SKIPPED, NOW - timedelta(minutes=1))
    await _put(storage, "<edge@x>", LedgerState.WRITTEN, since)
    await _put(storage, "<before@x>", LedgerState.WRITTEN, since - timedelta(seconds=1))
    await _put(storage, "<long-ago@x>", LedgerState.WRITTEN, NOW - timedelta(days=31))
    await _put(storage, "<claimed@x>", LedgerState.CLAIMED, None)

    found = {row.message_id: row for row in await ledger.completed_since(since)}
    assert set(found) == {"<in-1@x>", "<in-2@x>", "<edge@x>"}
    assert found["<in-2@x>"].state is LedgerState.SKIPPED
    assert found["<in-2@x>"].reason == "automated: Precedence is bulk"
    assert found["<in-1@x>"].completed_at == since + timedelta(minutes=1)

    last = await ledger.last_written(since - timedelta(days=1))
    assert last is not None and last.message_id == "<in-1@x>"
    assert await ledger.last_written(NOW) is None
    looked_back = await ledger.last_written(NOW - timedelta(days=30))
    assert looked_back is not None and looked_back.message_id == "<in-1@x>"
