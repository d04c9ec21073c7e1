"""MailboxSync: notifications and the reconciliation timer become one message-delta run per mailbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crm_core.domain.errors import ServiceRejected, ServiceUnavailable
from crm_core.domain.tasks import CaptureTask
from crm_core.graph.errors import GraphUnavailable
from crm_core.usecases.leasing import LEASE_SECONDS
from crm_core.usecases.mail_capture import CaptureBusy, MailCapture, Outcome
from crm_core.usecases.mailbox_sync import BUSY_RETRY_SECONDS, MailboxBusy, MailboxSync, cursor_name
from tests.unit.messages import CRM, JANA, NOVAK, STRANGER, mail
from tests.usecases.fakes import FakeActivityStore, FakeCursors, FakeMailSource

CURSOR = cursor_name(CRM)


def task(graph_id: str, change_type: str = "created", mailbox: str = CRM) -> CaptureTask:
    return CaptureTask(
        subscription_id="sub-1",
        kind="mail",
        mailbox=mailbox,
        item_ids=[graph_id],
        change_type=change_type,  # type: ignore[arg-type]
    )


def deliver(source: FakeMailSource, n: int, *, start: int = 1, **kw: Any) -> list[str]:
    """n customer mails arrive in the CRM mailbox; returns their Graph ids."""
    ids = []
    for i in range(start, start + n):
        source.add(mail(sender=NOVAK, to=[JANA], message_id=f"<m{i}@zakaznik.example>", **kw), f"g{i}")
        ids.append(f"g{i}")
    return ids


@pytest.fixture
def cursors() -> FakeCursors:
    return FakeCursors()


@pytest.fixture
def sync(source: FakeMailSource, cursors: FakeCursors, capture: MailCapture) -> MailboxSync:
    return MailboxSync(source, cursors, capture)


def written_once(crm: FakeActivityStore, n: int, *, start: int = 1) -> bool:
    return all(len(crm.activities_for(f"<m{i}@zakaznik.example>")) == 1 for i in range(start, start + n))


async def test_a_burst_of_notifications_costs_one_delta_round(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore, cursors: FakeCursors
) -> None:
    ids = deliver(source, 20)

    first = await sync.handle(task(ids[0]))
    rest = [await sync.handle(task(i)) for i in ids[1:]]

    assert [r.outcome for r in first.captured] == [Outcome.WRITTEN] * 20
    assert first.graph_requests == 1
    assert all(r.graph_requests == 0 and r.captured == [] for r in rest)
    assert source.calls == {"message_delta_page": 1}
    assert len(crm.activities) == 20 and written_once(crm, 20)
    assert cursors.values[CURSOR] == "delta:20"


async def test_concurrent_notifications_share_one_delta_round(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    ids = deliver(source, 10)

    reports = await asyncio.gather(*(sync.handle(task(i)) for i in ids))

    assert source.calls == {"message_delta_page": 1}
    assert source.delta_overlap == 1
    assert sum(r.graph_requests for r in reports) == 1
    assert len(crm.activities) == 10 and written_once(crm, 10)


async def test_runs_on_one_mailbox_never_overlap(sync: MailboxSync, source: FakeMailSource) -> None:
    deliver(source, 3)

    await asyncio.gather(sync.reconcile(CRM), sync.reconcile(CRM.upper()), sync.reconcile(CRM))

    assert source.delta_overlap == 1
    assert source.calls["message_delta_page"] == 3


async def test_the_next_notification_runs_delta_from_the_cursor(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    await sync.handle(task(deliver(source, 2)[0]))
    later = deliver(source, 1, start=3)

    report = await sync.handle(task(later[0]))

    assert source.delta_links_asked == [None, "delta:2"]
    assert [r.message_id for r in report.captured] == ["<m3@zakaznik.example>"]
    assert len(crm.activities) == 3


async def test_a_notified_mail_the_delta_does_not_return_is_read_by_id(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    source.add(mail(sender=NOVAK, to=[JANA], message_id="<elsewhere@z>"), "g-other", in_delta=False)

    report = await sync.handle(task("g-other"))

    assert source.calls == {"message_delta_page": 1, "get_message": 1}
    assert report.graph_requests == 2
    assert [(r.message_id, r.outcome) for r in report.captured] == [("<elsewhere@z>", Outcome.WRITTEN)]
    # Remembered: the same notification again costs nothing.
    again = await sync.handle(task("g-other"))
    assert again.graph_requests == 0
    assert source.graph_requests == 2


async def test_a_deleted_mail_does_nothing(sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore) -> None:
    deliver(source, 1)

    report = await sync.handle(task("g1", change_type="deleted"))

    assert (report.captured, report.failed, report.graph_requests) == ([], [], 0)
    assert source.graph_requests == 0
    assert crm.requests == 0


async def test_retryable_failure_aborts_the_round_and_keeps_the_cursor(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore, cursors: FakeCursors
) -> None:
    await sync.reconcile(CRM)  # empty mailbox: cursor at delta:0
    ids = deliver(source, 5)
    crm.fail("create_email_activity", ServiceUnavailable("NET Genium 503"), message_id="<m3@zakaznik.example>")

    with pytest.raises(ServiceUnavailable):
        await sync.handle(task(ids[0]))

    assert cursors.values[CURSOR] == "delta:0"
    written_before = len(crm.activities)  # mails captured beside m3 (a round captures several at once)
    assert written_before < 5
    assert "<m3@zakaznik.example>" not in {a.activity.message_id for a in crm.activities.values()}

    report = await sync.handle(task(ids[0]))  # the queue retries the notification

    outcomes = sorted(r.outcome for r in report.captured)
    assert outcomes == sorted([Outcome.DUPLICATE] * written_before + [Outcome.WRITTEN] * (5 - written_before))
    assert len(crm.activities) == 5 and written_once(crm, 5)
    assert cursors.values[CURSOR] == "delta:5"
    assert source.delta_links_asked == [None, "delta:0", "delta:0"]


async def test_a_live_claim_of_another_worker_aborts_the_round_for_a_retry(
    sync: MailboxSync, source: FakeMailSource, ledger: Any, cursors: FakeCursors, crm: FakeActivityStore
) -> None:
    ids = deliver(source, 3)
    await ledger.claim("<m2@zakaznik.example>", "worker-b")

    with pytest.raises(CaptureBusy):
        await sync.handle(task(ids[0]))

    assert CURSOR not in cursors.values
    assert "<m2@zakaznik.example>" not in {a.activity.message_id for a in crm.activities.values()}


async def test_a_non_retryable_failure_of_one_mail_is_queued_alone(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore, cursors: FakeCursors
) -> None:
    ids = deliver(source, 4)
    crm.fail("create_email_activity", ServiceRejected("NET Genium 400"), message_id="<m2@zakaznik.example>")

    report = await sync.handle(task("g2"))

    assert report.failed == ["g2"]
    assert sorted(r.message_id for r in report.captured) == [f"<m{i}@zakaznik.example>" for i in (1, 3, 4)]
    assert cursors.values[CURSOR] == "delta:4"
    assert source.calls["get_message"] == 0  # the failed one is not read again in this run
    assert crm.activities_for("<m2@zakaznik.example>") == []

    retried = await sync.retry_one(CRM, ids[1])  # its own queue item

    assert retried is not None and retried.outcome is Outcome.WRITTEN
    assert len(crm.activities) == 4 and written_once(crm, 4)
    # Captured now: its notification, delivered again, costs nothing.
    assert (await sync.handle(task("g2"))).graph_requests == 0


async def test_a_mail_that_breaks_the_code_does_not_stop_the_mails_behind_it(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    deliver(source, 3)
    crm.fail("create_email_activity", ValueError("unexpected"), message_id="<m1@zakaznik.example>")

    report = await sync.reconcile(CRM)

    assert report.failed == ["g1"]
    assert len(report.captured) == 2


async def test_an_expired_delta_link_means_a_full_resync(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore, cursors: FakeCursors
) -> None:
    await sync.reconcile(CRM)
    deliver(source, 3)
    await sync.reconcile(CRM)
    source.expire_links()
    deliver(source, 2, start=4)
    creates = crm.calls["create_email_activity"]

    report = await sync.reconcile(CRM)

    assert report.resynced
    assert cursors.cleared == []  # a working cursor is replaced by the new round's, never cleared
    assert source.delta_links_asked[-2:] == ["delta:3", None]
    assert sorted(r.outcome for r in report.captured) == sorted([Outcome.DUPLICATE] * 3 + [Outcome.WRITTEN] * 2)
    assert crm.calls["create_email_activity"] - creates == 2
    assert len(crm.activities) == 5 and written_once(crm, 5)
    assert cursors.values[CURSOR] == "delta:5"


async def test_reconcile_captures_mail_nobody_notified_and_skips_what_is_not_for_the_crm(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    deliver(source, 2)
    source.add(mail(sender=STRANGER, to=[JANA], message_id="<spam@u>"), "g-spam")

    report = await sync.reconcile(CRM)
    quiet = await sync.reconcile(CRM)

    assert sorted(r.outcome for r in report.captured) == [Outcome.SKIPPED, Outcome.WRITTEN, Outcome.WRITTEN]
    assert (quiet.captured, quiet.graph_requests) == ([], 1)
    assert len(crm.activities) == 2


async def test_a_forgotten_id_falls_back_to_the_ledger(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    sync = MailboxSync(source, cursors, capture, remember=2)
    ids = deliver(source, 5)
    await sync.handle(task(ids[-1]))

    report = await sync.handle(task(ids[0]))  # no longer remembered in the process

    assert [r.outcome for r in report.captured] == [Outcome.DUPLICATE]
    assert len(crm.activities) == 5


async def test_mailbox_case_does_not_split_the_cursor(
    sync: MailboxSync, source: FakeMailSource, cursors: FakeCursors
) -> None:
    ids = deliver(source, 2)
    await sync.handle(task(ids[0], mailbox=CRM.upper()))

    assert list(cursors.values) == [CURSOR]
    assert (await sync.handle(task(ids[1]))).graph_requests == 0


async def test_graph_unavailable_keeps_the_cursor_and_the_notification_retries(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore, cursors: FakeCursors
) -> None:
    await sync.reconcile(CRM)
    ids = deliver(source, 2)
    source.delta_error = GraphUnavailable("throttled", retry_after=3)

    with pytest.raises(GraphUnavailable):
        await sync.handle(task(ids[0]))

    assert cursors.values[CURSOR] == "delta:0"
    assert crm.activities == {}
    report = await sync.handle(task(ids[0]))
    assert len(report.captured) == 2 and written_once(crm, 2)


async def test_a_conversation_is_captured_in_its_order_within_a_round(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    # Several mails at once, but a reply must find the order its original (earlier in the round) linked.
    for n in range(6):
        data = mail(sender=NOVAK, to=[JANA], message_id=f"<c{n}@x>", subject="Order:4" if n == 0 else f"Re: {n}")
        source.add({**data, "conversationId": "conv-1"}, f"g{n}")
    deliver(source, 6, start=10)  # other conversations in the same round
    await sync.reconcile(CRM)
    orders = {a.activity.message_id: a.activity.order_id for a in crm.activities.values()}
    assert {m: o for m, o in orders.items() if m.startswith("<c")} == {f"<c{n}@x>": 40 for n in range(6)}
    assert len(orders) == 12


async def test_one_gone_id_stops_no_other_id_of_the_notification(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    """A POST names a mail deleted meanwhile, then one a rule moved out of the inbox before capture."""
    deliver(source, 1)
    source.add(mail(sender=NOVAK, to=[JANA], message_id="<moved@zakaznik.example>"), "g-moved", in_delta=False)
    ids = ["g-deleted", "g-moved", "g1"]
    notification = CaptureTask(subscription_id="sub-1", kind="mail", mailbox=CRM, item_ids=ids, change_type="created")

    report = await sync.handle(notification)

    assert report.gone == ["g-deleted"]
    assert report.failed == []
    assert len(crm.activities_for("<moved@zakaznik.example>")) == 1  # captured from where it is now
    assert written_once(crm, 1)
    assert await sync.retry_one(CRM, "g-deleted") is None  # a queued retry of a gone mail ends, not poisons


async def test_a_retryable_failure_of_one_notified_id_queues_it_alone(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    source.add(mail(sender=NOVAK, to=[JANA], message_id="<a@zakaznik.example>"), "g-a", in_delta=False)
    source.add(mail(sender=NOVAK, to=[JANA], message_id="<b@zakaznik.example>"), "g-b", in_delta=False)
    crm.fail("create_email_activity", ServiceUnavailable("NET Genium 503"), message_id="<a@zakaznik.example>")
    notification = CaptureTask(
        subscription_id="sub-1", kind="mail", mailbox=CRM, item_ids=["g-a", "g-b"], change_type="created"
    )

    report = await sync.handle(notification)

    assert report.failed == ["g-a"]
    assert len(crm.activities_for("<b@zakaznik.example>")) == 1


# ---- issue 9: rounds page by page, bounded runs, partial and unordered items ---------------------


class FakeClock:
    """Monotonic seconds that move only when a delta page is read (each page takes `per_page`)."""

    def __init__(self, source: FakeMailSource, per_page: float) -> None:
        self.now = 0.0
        original = source.message_delta_page

        async def timed(*args: Any, **kwargs: Any) -> Any:
            self.now += per_page
            return await original(*args, **kwargs)

        source.message_delta_page = timed  # type: ignore[method-assign]

    def __call__(self) -> float:
        return self.now


async def test_a_round_is_captured_page_by_page_with_the_cursor_stored_after_each(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    source.page_size = 10
    deliver(source, 35)
    stored: list[str] = []
    original = cursors.set

    async def record(name: str, value: str) -> None:
        stored.append(value)
        await original(name, value)

    cursors.set = record  # type: ignore[method-assign]
    report = await MailboxSync(source, cursors, capture).reconcile(CRM)

    assert report.pages == 4 and not report.unfinished
    assert stored == ["page:10:35", "page:20:35", "page:30:35", "delta:35"]
    assert len(crm.activities) == 35 and written_once(crm, 35)


async def test_a_crash_mid_round_repeats_at_most_one_page(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    source.page_size = 10
    deliver(source, 30)
    crm.fail("create_email_activity", ServiceUnavailable("NET Genium 503"), message_id="<m15@zakaznik.example>")
    sync = MailboxSync(source, cursors, capture)

    with pytest.raises(ServiceUnavailable):
        await sync.reconcile(CRM)
    assert cursors.values[CURSOR] == "page:10:30"  # the first page is done and stays done
    written_before = len(crm.activities)
    assert 10 <= written_before < 20

    report = await sync.reconcile(CRM)
    assert source.delta_links_asked == [None, "page:10:30", "page:10:30", "page:20:30"]
    assert len(crm.activities) == 30 and written_once(crm, 30)
    assert sum(r.outcome is Outcome.WRITTEN for r in report.captured) == 30 - written_before
    assert sum(r.outcome is Outcome.DUPLICATE for r in report.captured) == written_before - 10  # page 2 only


async def test_a_run_stops_at_its_budget_and_asks_for_a_continuation(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    source.page_size = 10
    deliver(source, 50)
    clock = FakeClock(source, per_page=2.0)
    sync = MailboxSync(source, cursors, capture, budget_seconds=5.0, clock=clock)

    first = await sync.reconcile(CRM)
    assert first.unfinished and first.pages == 2  # a third page (2 s) would end past the 5 s budget
    assert cursors.values[CURSOR] == "page:20:50"

    rest = await sync.handle(
        CaptureTask(subscription_id="", kind="mail", mailbox=CRM, change_type="created", continuation=True)
    )
    assert rest.unfinished and rest.pages == 2
    last = await sync.handle(
        CaptureTask(subscription_id="", kind="mail", mailbox=CRM, change_type="created", continuation=True)
    )
    assert not last.unfinished and last.pages == 1
    assert cursors.values[CURSOR] == "delta:50"
    assert len(crm.activities) == 50 and written_once(crm, 50)


async def test_a_new_round_starts_at_the_cutoff_and_a_continued_one_does_not_restate_it(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    from datetime import UTC, datetime, timedelta

    today = datetime(2026, 12, 1, tzinfo=UTC)
    old = (today - timedelta(days=45)).isoformat()
    new = (today - timedelta(days=2)).isoformat()
    source.add(mail(sender=NOVAK, to=[JANA], message_id="<old@zakaznik.example>", receivedDateTime=old), "g-old")
    source.add(mail(sender=NOVAK, to=[JANA], message_id="<new@zakaznik.example>", receivedDateTime=new), "g-new")
    sync = MailboxSync(source, cursors, capture, initial_days=30, now=lambda: today)

    await sync.reconcile(CRM)
    await sync.reconcile(CRM)

    assert source.received_since_asked == [today - timedelta(days=30), None]
    assert crm.activities_for("<old@zakaznik.example>") == []  # the backfill's, not the webhook path's
    assert len(crm.activities_for("<new@zakaznik.example>")) == 1


async def test_a_resync_keeps_the_old_cursor_until_its_first_page_is_stored(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture
) -> None:
    deliver(source, 3)
    sync = MailboxSync(source, cursors, capture)
    await sync.reconcile(CRM)
    source.expire_links()
    source.delta_error = None
    original = source.message_delta_page
    calls = 0

    async def fail_the_new_round(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first page of the new round
            raise GraphUnavailable("throttled", retry_after=1)
        return await original(*args, **kwargs)

    source.message_delta_page = fail_the_new_round  # type: ignore[method-assign]
    with pytest.raises(GraphUnavailable):
        await sync.reconcile(CRM)
    assert cursors.values[CURSOR] == "delta:3"  # still there: nothing is lost to a failed resync


async def test_partial_items_are_hints_read_by_id_and_never_recorded_as_decisions(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    ids = deliver(source, 2)
    await sync.reconcile(CRM)
    source.update(ids[0])  # a read flag: comes back as a bare id
    source.add(mail(sender=NOVAK, to=[JANA], message_id="<late@zakaznik.example>"), "g-late", in_delta=False)
    source.update("g-late")  # a mail first seen as an update (created while we were not looking)

    report = await sync.reconcile(CRM)

    assert source.calls["get_message"] == 1  # only the one not captured yet is read
    assert len(crm.activities_for("<late@zakaznik.example>")) == 1
    assert not any(e.message_id.startswith("graph-id:") for e in await ledger.entries())
    assert [r.message_id for r in report.captured] == ["<late@zakaznik.example>"]


async def test_a_reply_in_a_shuffled_page_still_inherits_its_conversations_order(
    sync: MailboxSync, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    import random

    source.shuffle = random.Random(3)
    for n in range(1, 9):  # eight conversations: an original naming an order, then a reply
        conversation = {"conversationId": f"conv-{n}"}
        original = mail(
            sender=NOVAK,
            to=[JANA],
            message_id=f"<o{n}@z>",
            subject="Order:4",
            receivedDateTime=f"2026-11-30T10:0{n}:00Z",
            **conversation,
        )
        reply = mail(
            sender=NOVAK,
            to=[JANA],
            message_id=f"<r{n}@z>",
            subject="Re: thanks",
            receivedDateTime=f"2026-11-30T11:0{n}:00Z",
            **conversation,
        )
        source.add(reply, f"g-r{n}")  # the reply arrives first in the delta, and pages are shuffled
        source.add(original, f"g-o{n}")

    await sync.reconcile(CRM)

    orders = {a.activity.message_id: a.activity.order_id for a in crm.activities.values()}
    assert all(orders[f"<r{n}@z>"] == orders[f"<o{n}@z>"] is not None for n in range(1, 9))


async def test_a_page_of_mail_costs_one_contact_lookup_not_one_per_mail(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    source.page_size = 50
    deliver(source, 100)

    await MailboxSync(source, cursors, capture).reconcile(CRM)

    assert crm.calls["find_contacts_by_emails"] == 2  # one per page
    assert crm.calls["create_email_activity"] == 100


async def test_a_reply_captured_a_page_before_its_original_is_linked_when_the_original_arrives(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    source.page_size = 1
    conversation = {"conversationId": "conv-late"}
    reply = mail(
        sender=NOVAK,
        to=[JANA],
        message_id="<reply@z>",
        subject="Re: quote",
        headers={"In-Reply-To": "<original@z>"},
        receivedDateTime="2026-11-30T11:00:00Z",
        **conversation,
    )
    original = mail(
        sender=NOVAK,
        to=[JANA],
        message_id="<original@z>",
        subject="Quote Order:4",
        receivedDateTime="2026-11-30T10:00:00Z",
        **conversation,
    )
    other = mail(sender=NOVAK, to=[JANA], message_id="<other@z>", subject="no order, no reply", conversationId="c2")
    source.add(reply, "g-reply")  # page 1
    source.add(other, "g-other")  # page 2
    source.add(original, "g-original")  # page 3

    await MailboxSync(source, cursors, capture).reconcile(CRM)

    [stored_reply] = crm.activities_for("<reply@z>")
    [stored_original] = crm.activities_for("<original@z>")
    assert stored_original.activity.order_id is not None
    assert stored_reply.activity.order_id == stored_original.activity.order_id
    assert crm.calls["link_conversation_activities"] == 1  # only for the conversation that needed it


async def test_two_processes_never_read_one_mailbox_at_once(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    """Graph's 4 concurrent requests per mailbox hold for the app: one process holds the mailbox."""
    from tests.usecases.fakes import FakeLeases

    leases = FakeLeases()
    source.page_size = 5
    ids = deliver(source, 40)
    first = MailboxSync(source, cursors, capture, leases=leases, holder="instance-1")
    second = MailboxSync(source, cursors, capture, leases=leases, holder="instance-2")

    results = await asyncio.gather(first.handle(task(ids[0])), second.handle(task(ids[1])), return_exceptions=True)

    assert source.delta_overlap == 1  # never two delta pages in flight
    busy = [r for r in results if isinstance(r, MailboxBusy)]
    assert len(busy) == 1 and busy[0].retryable and busy[0].retry_after == BUSY_RETRY_SECONDS
    assert len(crm.activities) == 40 and written_once(crm, 40)
    assert leases.held == {}  # released at the end of the run
    later = await second.handle(task(ids[1]))  # the deferred task, once the holder is done
    # A quiet delta page, and its mail (which this process never saw) read by id: the ledger has it.
    assert [r.outcome for r in later.captured] == [Outcome.DUPLICATE]
    assert len(crm.activities) == 40
    assert (await second.reconcile(CRM)).busy is False


async def test_reconcile_skips_a_mailbox_another_process_reads(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture
) -> None:
    from tests.usecases.fakes import FakeLeases

    leases = FakeLeases()
    await leases.acquire(CRM, "instance-1", 300)
    report = await MailboxSync(source, cursors, capture, leases=leases, holder="instance-2").reconcile(CRM)
    assert report.busy and source.calls["message_delta_page"] == 0


async def test_mailbox_sync_takes_a_short_lease_not_its_run_budget(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture
) -> None:
    """The lease used to last the run budget plus two minutes (300 s): a killed worker stalled the
    mailbox for five minutes. Now it lasts LEASE_SECONDS and is renewed."""
    from tests.usecases.fakes import FakeLeases

    asked: list[float] = []

    class Recording(FakeLeases):
        async def acquire(self, mailbox: str, holder: str, seconds: float) -> bool:
            asked.append(seconds)
            return await super().acquire(mailbox, holder, seconds)

    leases = Recording()
    await leases.acquire(CRM, "killed", 0.3)
    sync = MailboxSync(source, cursors, capture, leases=leases, holder="next", budget_seconds=180.0)
    with pytest.raises(MailboxBusy):
        await sync.retry_one(CRM, "g-1")
    await asyncio.sleep(0.4)
    report = await sync.reconcile(CRM)
    assert not report.busy
    assert asked[1:] and all(seconds == LEASE_SECONDS <= 60 for seconds in asked[1:])


async def test_a_failure_between_linking_the_order_and_linking_the_replies_is_finished_by_the_retry(
    source: FakeMailSource, cursors: FakeCursors, capture: MailCapture, crm: FakeActivityStore
) -> None:
    source.page_size = 1
    conversation = {"conversationId": "conv-fail"}
    source.add(
        mail(
            sender=NOVAK,
            to=[JANA],
            message_id="<reply-f@z>",
            subject="Re: quote",
            headers={"In-Reply-To": "<original-f@z>"},
            **conversation,
        ),
        "g-reply",
    )
    source.add(
        mail(sender=NOVAK, to=[JANA], message_id="<original-f@z>", subject="Quote Order:4", **conversation),
        "g-original",
    )
    crm.fail("link_conversation_activities", ServiceUnavailable("NET Genium 503"))
    sync = MailboxSync(source, cursors, capture)

    with pytest.raises(ServiceUnavailable):
        await sync.reconcile(CRM)  # the original is written and the order noted; linking the reply fails
    await sync.reconcile(CRM)  # the retry takes the page again

    [stored_reply] = crm.activities_for("<reply-f@z>")
    [stored_original] = crm.activities_for("<original-f@z>")
    assert stored_reply.activity.order_id == stored_original.activity.order_id is not None
