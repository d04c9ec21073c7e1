"""Backfill: older mail through the live capture (same decision, same ledger), page by page,
resumable after an interruption, and a dry run that writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_core.domain.errors import ServiceUnavailable
from crm_core.domain.mail import GraphMessage
from crm_core.graph.models import MessagePage
from crm_core.usecases.backfill import Backfill, BackfillItem, BackfillReport, backfill_cursor
from crm_core.usecases.mail_capture import MailCapture
from tests.unit.messages import CRM, JANA, NOVAK, STRANGER, mail
from tests.usecases.fakes import FakeActivityStore, FakeCursors, FakeMailSource

SINCE = datetime(2024, 1, 1, tzinfo=UTC)
UNTIL = datetime(2024, 3, 1, tzinfo=UTC)


def _at(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(message["receivedDateTime"]).replace("Z", "+00:00"))


class FakeHistory:
    """The inbox of `FakeMailSource` listed by received time, oldest first, as Graph's message list
    with `$filter` on receivedDateTime and `$orderby=receivedDateTime asc` answers it."""

    def __init__(self, source: FakeMailSource, page_size: int = 3) -> None:
        self.source = source
        self.page_size = page_size
        self.calls: Counter[str] = Counter()
        self.asked_from: list[datetime | None] = []
        self.fail_next: Exception | None = None

    def _range(self, received_from: datetime | None, received_before: datetime | None) -> list[dict[str, Any]]:
        items = [
            m
            for m in self.source.messages.values()
            if (received_from is None or _at(m) >= received_from)
            and (received_before is None or _at(m) < received_before)
        ]
        return sorted(items, key=lambda m: (_at(m), m["id"]))

    async def message_list_page(
        self,
        mailbox: str,
        folder: str = "inbox",
        link: str | None = None,
        *,
        received_from: datetime | None = None,
        received_before: datetime | None = None,
        page_size: int | None = None,
    ) -> MessagePage:
        assert mailbox == CRM and folder == "inbox"
        self.calls["list"] += 1
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        if link:
            state = json.loads(link)
            offset = state["o"]
            received_from = datetime.fromisoformat(state["f"])
            received_before = datetime.fromisoformat(state["b"])
        else:
            offset = 0
            self.asked_from.append(received_from)
        assert received_from is not None and received_before is not None
        items = self._range(received_from, received_before)
        size = page_size or self.page_size
        page = items[offset : offset + size]
        following = None
        if offset + size < len(items):
            following = json.dumps(
                {"o": offset + size, "f": received_from.isoformat(), "b": received_before.isoformat()}
            )
        return MessagePage(messages=[GraphMessage.model_validate(m) for m in page], next_link=following)

    async def message_count(
        self,
        mailbox: str,
        folder: str = "inbox",
        *,
        received_from: datetime | None = None,
        received_before: datetime | None = None,
    ) -> int | None:
        self.calls["count"] += 1
        return len(self._range(received_from, received_before))


def old_mails(source: FakeMailSource, n: int, *, start: datetime = SINCE, **kw: Any) -> list[str]:
    """n customer mails received a day apart from `start`; returns their Message-IDs."""
    ids = []
    for i in range(n):
        message_id = f"<old{i}@zakaznik.example>"
        received = (start + timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        source.add(
            mail(sender=NOVAK, to=[JANA], message_id=message_id, receivedDateTime=received, **kw),
            f"g-old{i}",
            in_delta=False,
        )
        ids.append(message_id)
    return ids


@pytest.fixture
def history(source: FakeMailSource) -> FakeHistory:
    return FakeHistory(source)


def backfill(history: FakeHistory, cursors: FakeCursors, capture: MailCapture, ledger: Any) -> Backfill:
    return Backfill(history, cursors, capture, ledger, mailbox=CRM)


async def test_older_mail_is_captured_once_oldest_first_with_its_outcomes(
    history: FakeHistory, source: FakeMailSource, crm: FakeActivityStore, capture: MailCapture, ledger: Any
) -> None:
    ids = old_mails(source, 7)
    source.add(
        mail(sender=STRANGER, to=[JANA], message_id="<stranger@x>", receivedDateTime="2024-01-03T12:00:00Z"),
        "g-stranger",
        in_delta=False,
    )
    source.add(  # after --until: the live path's, not the backfill's
        mail(sender=NOVAK, to=[JANA], message_id="<recent@x>", receivedDateTime="2024-03-02T00:00:00Z"), "g-recent"
    )
    cursors = FakeCursors()
    seen: list[BackfillItem] = []
    starts: list[BackfillReport] = []

    report = await backfill(history, cursors, capture, ledger).run(
        SINCE, UNTIL, on_start=starts.append, on_item=seen.append
    )

    assert starts[0].total == 8
    assert report.mails == 8 and report.outcomes == {"written": 7, "skipped": 1} and report.failed == []
    assert all(len(crm.activities_for(i)) == 1 for i in ids)
    assert crm.activities_for("<recent@x>") == []
    assert [i.message_id for i in seen if i.outcome == "skipped"] == ["<stranger@x>"]
    [skipped] = [i for i in seen if i.outcome == "skipped"]
    assert skipped.decision is not None and skipped.decision.reasons == ["sender not in address book"]
    saved = json.loads(cursors.values[backfill_cursor(CRM, "inbox", SINCE, UNTIL)])
    assert saved["done"] is True and saved["mails"] == 8

    again = await backfill(history, cursors, capture, ledger).run(SINCE, UNTIL)
    assert again.already_done and history.calls["list"] == 3  # 8 mails, pages of 3; the second run reads nothing

    restarted = await backfill(history, cursors, capture, ledger).run(SINCE, UNTIL, restart=True)
    assert restarted.outcomes == {"duplicate": 8}  # the ledger drops every repeat
    assert all(len(crm.activities_for(i)) == 1 for i in ids)


async def test_mail_the_live_path_stored_is_a_duplicate_not_a_second_activity(
    history: FakeHistory, source: FakeMailSource, crm: FakeActivityStore, capture: MailCapture, ledger: Any
) -> None:
    ids = old_mails(source, 4)
    await capture.capture_by_id(CRM, "g-old2")  # a notification had named it

    report = await backfill(history, FakeCursors(), capture, ledger).run(SINCE, UNTIL)

    assert report.outcomes == {"written": 3, "duplicate": 1}
    assert all(len(crm.activities_for(i)) == 1 for i in ids)


async def test_an_interrupted_run_continues_where_it_stopped(
    history: FakeHistory, source: FakeMailSource, crm: FakeActivityStore, capture: MailCapture, ledger: Any
) -> None:
    ids = old_mails(source, 10)
    cursors = FakeCursors()
    done: list[str] = []
    run: asyncio.Task[BackfillReport] | None = None

    def stop_after_five(item: BackfillItem) -> None:
        done.append(item.message_id)
        if len(done) == 5 and run is not None:
            run.cancel()  # Ctrl+C in the middle of the second page: asyncio.run cancels the main task

    run = asyncio.ensure_future(backfill(history, cursors, capture, ledger).run(SINCE, UNTIL, on_item=stop_after_five))
    with pytest.raises(asyncio.CancelledError):
        await run
    saved = json.loads(cursors.values[backfill_cursor(CRM, "inbox", SINCE, UNTIL)])
    assert saved["mails"] == 3 and "done" not in saved  # the first page of 3 is complete
    assert saved["after"] == (SINCE + timedelta(days=2)).isoformat()
    assert sum(len(crm.activities_for(i)) for i in ids) >= 5

    starts: list[BackfillReport] = []
    rest: list[BackfillItem] = []
    report = await backfill(history, cursors, capture, ledger).run(
        SINCE, UNTIL, on_start=starts.append, on_item=rest.append
    )

    assert history.asked_from == [SINCE, SINCE + timedelta(days=2)]
    assert starts[0].resumed_from == "2024-01-03T00:00:00Z" and starts[0].total == 10
    assert report.mails == 10
    # The mails of the interrupted page that were done come back as duplicates; the rest is written.
    assert sorted(i.message_id for i in rest) == ids[3:]
    duplicates = {i.message_id for i in rest if i.outcome == "duplicate"}
    assert set(done[3:]) <= duplicates <= set(ids[3:6])  # only the interrupted page comes twice
    assert all(len(crm.activities_for(i)) == 1 for i in ids)  # nothing lost, nothing doubled
    assert json.loads(cursors.values[backfill_cursor(CRM, "inbox", SINCE, UNTIL)])["done"] is True


async def test_an_outage_stops_the_run_at_the_last_complete_page(
    history: FakeHistory, source: FakeMailSource, crm: FakeActivityStore, capture: MailCapture, ledger: Any
) -> None:
    ids = old_mails(source, 6)
    cursors = FakeCursors()
    crm.fail("create_email_activity", ServiceUnavailable("NET Genium 503"), message_id=ids[4])

    with pytest.raises(ServiceUnavailable):
        await backfill(history, cursors, capture, ledger).run(SINCE, UNTIL)
    assert json.loads(cursors.values[backfill_cursor(CRM, "inbox", SINCE, UNTIL)])["mails"] == 3

    report = await backfill(history, cursors, capture, ledger).run(SINCE, UNTIL)
    assert report.failed == [] and all(len(crm.activities_for(i)) == 1 for i in ids)


async def test_a_dry_run_decides_as_explain_and_writes_nothing(
    history: FakeHistory, source: FakeMailSource, crm: FakeActivityStore, capture: MailCapture, ledger: Any
) -> None:
    ids = old_mails(source, 3, subject="Order:4")
    source.add(
        mail(sender=STRANGER, to=[JANA], message_id="<stranger@x>", receivedDateTime="2024-01-05T00:00:00Z"),
        "g-stranger",
        in_delta=False,
    )
    await capture.capture_by_id(CRM, "g-old0")
    before = len(crm.activities)
    cursors = FakeCursors()
    seen: list[BackfillItem] = []

    report = await backfill(history, cursors, capture, ledger).run(SINCE, UNTIL, dry_run=True, on_item=seen.append)

    assert report.outcomes == {"in ledger": 1, "would store": 2, "would skip": 1}
    assert len(crm.activities) == before and cursors.values == {}
    assert await ledger.get(ids[1]) is None  # not even claimed
    by_id = {i.message_id: i for i in seen}
    assert by_id[ids[0]].ledger_state == "written"
    stored = by_id[ids[1]].decision
    assert stored is not None and (stored.direction, stored.order_id) == ("incoming", 40)
    assert by_id["<stranger@x>"].decision is not None
    assert by_id["<stranger@x>"].decision.reasons == ["sender not in address book"]


async def test_an_empty_or_inverted_range(history: FakeHistory, capture: MailCapture, ledger: Any) -> None:
    cursors = FakeCursors()
    report = await backfill(history, cursors, capture, ledger).run(SINCE, UNTIL)
    assert report.mails == 0 and json.loads(cursors.values[backfill_cursor(CRM, "inbox", SINCE, UNTIL)])["done"]
    with pytest.raises(ValueError, match="before"):
        await backfill(history, cursors, capture, ledger).run(UNTIL, SINCE)


async def test_each_page_waits_for_the_live_capture_and_holds_the_mailbox_while_it_runs(
    history: FakeHistory, source: FakeMailSource, crm: FakeActivityStore, capture: MailCapture, ledger: Any
) -> None:
    """Graph's 4 concurrent requests per mailbox hold for the whole app: the backfill takes the
    live capture's mailbox lease for each page, waits while a live run holds it, and gives it
    back between pages (so a live run waits at most one page)."""
    from crm_core.usecases.leasing import LEASE_SECONDS
    from tests.usecases.fakes import FakeLeases

    ids = old_mails(source, 7)
    leases = FakeLeases()
    await leases.acquire(CRM, "live-worker", LEASE_SECONDS)  # a live run reads the mailbox
    waited: list[float] = []
    held_during_pages: list[str] = []

    async def wait(seconds: float) -> None:
        waited.append(seconds)
        await leases.release(CRM, "live-worker")  # the live run ends

    list_page = history.message_list_page

    async def observed(*args: Any, **kwargs: Any) -> MessagePage:
        held_during_pages.append(leases.held[CRM.lower()][0])
        return await list_page(*args, **kwargs)

    history.message_list_page = observed  # type: ignore[method-assign]
    run = Backfill(history, FakeCursors(), capture, ledger, mailbox=CRM, leases=leases, holder="backfill", sleep=wait)

    report = await run.run(SINCE, UNTIL)

    assert waited == [5.0]
    assert held_during_pages == ["backfill"] * 3  # 7 mails, pages of 3
    assert CRM.lower() not in leases.held  # given back after the last page
    assert report.outcomes == {"written": 7} and all(len(crm.activities_for(i)) == 1 for i in ids)


def test_pages_are_protocol_shaped() -> None:
    page: Sequence[GraphMessage] = MessagePage().messages
    assert list(page) == []
