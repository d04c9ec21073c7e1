"""A first run over a mailbox of 20,000 mails (issue 9): bounded runs, page by page, through a 410.

The real Graph adapter reads the emulator over HTTP; NET Genium and the ledger are the use cases'
in-memory fakes (the mail path end to end is covered in tests/e2e). 10,000 mails are older than
the cutoff and 10,000 inside it; the runs have a budget measured in pages (a page costs the clock
`PAGE_SECONDS`), the sync state expires in the middle of the round, and the test checks that every
mail inside the cutoff ends as its decision, none twice, none older, with the cursor stored after
each page and no run past its budget.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_core.domain.tasks import continuation_task
from crm_core.usecases.mail_capture import MailCapture
from crm_core.usecases.mailbox_sync import MailboxSync, cursor_name
from tests.graph.conftest import MAILBOX, Admin
from tests.unit.messages import CRM, JANA, NOVAK, RULES, STRANGER, mail
from tests.usecases.fakes import FakeActivityStore, FakeCorrespondents, FakeCursors, FakeLedger

TOTAL, INSIDE = 20_000, 10_000
PAGE_SECONDS, BUDGET_SECONDS = 1.0, 10.0  # at most 10 pages a run (2,000 mails)


class PageClock:
    """Monotonic time that advances by PAGE_SECONDS for each delta page the adapter reads."""

    def __init__(self, graph: Any) -> None:
        self.now = 0.0
        self.pages = 0
        read = graph.message_delta_page

        async def timed(*args: Any, **kwargs: Any) -> Any:
            page = await read(*args, **kwargs)
            self.now += PAGE_SECONDS
            self.pages += 1
            return page

        graph.message_delta_page = timed

    def __call__(self) -> float:
        return self.now


def _mails(today: datetime) -> list[dict[str, Any]]:
    out = []
    for n in range(TOTAL):
        inside = n % 2 == 0
        received = today - (timedelta(days=5, minutes=n) if inside else timedelta(days=60, minutes=n))
        sender = NOVAK if n % 5 else STRANGER  # four in five are customer mail, one is skipped
        data = mail(sender=sender, to=[JANA], cc=[CRM], subject=f"m{n}", message_id=f"<first-{n}@zakaznik.example>")
        data["receivedDateTime"] = received.strftime("%Y-%m-%dT%H:%M:%SZ")
        data["conversationId"] = f"conv-{n}"
        out.append(data)
    return out


async def test_a_first_run_of_twenty_thousand_mails_with_a_410_in_the_middle(graph: Any, admin: Admin) -> None:
    today = datetime.now(UTC)
    mails = _mails(today)
    for start in range(0, TOTAL, 200):
        await admin.call("POST", f"/users/{MAILBOX}/messages", {"messages": mails[start : start + 200]})

    crm, ledger, cursors = FakeActivityStore(), FakeLedger(), FakeCursors()
    capture = MailCapture(graph, crm, ledger, FakeCorrespondents(), RULES, worker="w")
    clock = PageClock(graph)
    sync = MailboxSync(graph, cursors, capture, initial_days=30, budget_seconds=BUDGET_SECONDS, clock=clock)
    stored_cursors: list[str] = []
    original_set = cursors.set

    async def record(name: str, value: str) -> None:
        assert name == cursor_name(MAILBOX)
        stored_cursors.append(value)
        await original_set(name, value)

    cursors.set = record  # type: ignore[method-assign]

    runs, pages_per_run = 0, []
    report = await sync.reconcile(MAILBOX)
    while True:
        runs += 1
        pages_per_run.append(report.pages)
        assert report.failed == []
        if runs == 3:  # Graph forgets the sync state in the middle of the round
            await admin.call("POST", "/sync-states/expire")
        if not report.unfinished:
            break
        assert runs < 60, "the first run does not end"
        report = await sync.handle(continuation_task(MAILBOX))

    inside = {m["internetMessageId"] for m in mails[0::2]}
    decided = Counter(entry.message_id for entry in await ledger.entries())
    assert set(decided) == inside  # every mail inside the cutoff, and none older
    assert max(decided.values()) == 1
    activities = Counter(stored.activity.message_id for stored in crm.activities.values())
    assert max(activities.values()) == 1  # none doubled, through the resync too
    assert len(activities) == sum(1 for n in range(0, TOTAL, 2) if n % 5)
    assert max(pages_per_run) <= BUDGET_SECONDS / PAGE_SECONDS  # no run past its budget
    assert any(r > 0 for r in pages_per_run[3:])  # the resync went on after the 410
    assert len(stored_cursors) == clock.pages  # a cursor after every page read (a refused link is no page)
    assert stored_cursors[-1].split("?")[0].endswith("/messages/delta")
    assert "$deltatoken=" in stored_cursors[-1]
