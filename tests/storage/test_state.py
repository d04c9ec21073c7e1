"""Table storage state against Azurite: the ledger's exactly-once claims and the other tables."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_core.domain.capture_decision import ConversationOrder, Decision
from crm_core.storage.correspondents import UnmatchedCorrespondents
from crm_core.storage.cursors import SyncCursors
from crm_core.storage.failures import FailureLog
from crm_core.storage.ledger import CaptureLedger, ClaimOutcome, LedgerState
from crm_core.storage.queues import list_poison, replay_poison
from crm_core.storage.subscriptions import SubscriptionRecord, SubscriptionStore
from crm_core.storage.tables import TableStorage
from sandbox.azurite import Azurite

MESSAGE_ID = "<CAF=a/b#c?d@mail.example>"
CAPTURED = Decision(
    message_id=MESSAGE_ID, capture=True, direction="incoming", reasons=["incoming: x", "order 4 not found"]
)


async def test_first_claim_wins_and_others_wait(storage: TableStorage) -> None:
    ledger = CaptureLedger(storage)
    first = await ledger.claim(MESSAGE_ID, "worker-1")
    second = await ledger.claim(MESSAGE_ID, "worker-2")
    assert (first.outcome, second.outcome) == (ClaimOutcome.NEW, ClaimOutcome.BUSY)
    assert second.entry.claimed_by == "worker-1"


async def test_concurrent_claims_give_exactly_one_owner(storage: TableStorage) -> None:
    ledger = CaptureLedger(storage)
    claims = await asyncio.gather(*(ledger.claim(MESSAGE_ID, f"worker-{n}") for n in range(12)))
    assert [c.outcome for c in claims].count(ClaimOutcome.NEW) == 1
    assert {c.outcome for c in claims} == {ClaimOutcome.NEW, ClaimOutcome.BUSY}


async def test_expired_claim_is_taken_over_once(storage: TableStorage) -> None:
    ledger = CaptureLedger(storage, lease=timedelta(seconds=90))
    await ledger.claim(MESSAGE_ID, "dead-worker")
    later = datetime.now(UTC) + timedelta(minutes=5)
    takers = await asyncio.gather(*(ledger.claim(MESSAGE_ID, f"taker-{n}", now=later) for n in range(6)))
    outcomes = [t.outcome for t in takers]
    assert outcomes.count(ClaimOutcome.TAKEN_OVER) == 1
    assert set(outcomes) <= {ClaimOutcome.TAKEN_OVER, ClaimOutcome.BUSY}
    winner = next(t for t in takers if t.outcome is ClaimOutcome.TAKEN_OVER)
    assert winner.entry.attempts == 2


async def test_the_same_worker_may_reclaim_its_own_claim(storage: TableStorage) -> None:
    ledger = CaptureLedger(storage)
    await ledger.claim(MESSAGE_ID, "worker-1")
    assert (await ledger.claim(MESSAGE_ID, "worker-1")).outcome is ClaimOutcome.TAKEN_OVER


async def test_completed_mail_is_done_with_its_outcome(storage: TableStorage) -> None:
    ledger = CaptureLedger(storage)
    claim = await ledger.claim(MESSAGE_ID, "worker-1")
    await ledger.complete(claim.entry, CAPTURED, 812)
    again = await ledger.claim(MESSAGE_ID, "worker-2")
    assert again.outcome is ClaimOutcome.DONE
    assert again.entry.state is LedgerState.WRITTEN
    assert again.entry.activity_id == 812
    assert again.entry.reasons == ("incoming: x", "order 4 not found")
    skipped = Decision(message_id="<s@x>", capture=False, reasons=["sender not in address book"])
    claim = await ledger.claim("<s@x>", "worker-1")
    await ledger.complete(claim.entry, skipped, None)
    entry = await ledger.get("<s@x>")
    assert entry is not None and entry.state is LedgerState.SKIPPED
    assert entry.reasons == ("sender not in address book",)
    assert {e.message_id for e in await ledger.entries()} == {MESSAGE_ID, "<s@x>"}


async def test_message_ids_of_any_shape_are_keys(storage: TableStorage) -> None:
    ledger = CaptureLedger(storage)
    odd = ["<" + "x" * 2000 + "@long.example>", "<\\back\\slash@x>", "<tab\there@x>", "<ümlaut@x>"]
    outcomes = [(await ledger.claim(mid, "w")).outcome for mid in odd]
    assert outcomes == [ClaimOutcome.NEW] * len(odd)
    assert (await ledger.get(odd[0])) is not None


async def test_conversation_order_round_trip(storage: TableStorage) -> None:
    ledger = CaptureLedger(storage)
    assert await ledger.conversation_order("AAQkADc=/conv") is None
    await ledger.link_conversation("AAQkADc=/conv", ConversationOrder(4, 40))
    assert await ledger.conversation_order("AAQkADc=/conv") == ConversationOrder(4, 40)


async def test_unmatched_correspondents_count_under_concurrency(storage: TableStorage) -> None:
    correspondents = UnmatchedCorrespondents(storage)
    await asyncio.gather(*(correspondents.record("buyer@prospect.example") for _ in range(10)))
    await correspondents.record("other@prospect.example")
    await correspondents.record("")
    top = await correspondents.top()
    assert [(c.address, c.count) for c in top] == [("buyer@prospect.example", 10), ("other@prospect.example", 1)]


async def test_subscriptions_store(storage: TableStorage) -> None:
    store = SubscriptionStore(storage, cache_seconds=0)
    now = datetime.now(UTC).replace(microsecond=0)
    record = SubscriptionRecord(
        id="7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        resource="users/crm@firma.example/mailFolders('inbox')/messages",
        kind="mail",
        mailbox="crm@firma.example",
        client_state="s3cret",
        expires_at=now + timedelta(days=3),
        created_at=now,
    )
    await store.save(record)
    assert await store.get(record.id) == record
    assert await store.all() == [record]
    assert await store.get("no/such#id") is None
    assert await store.get("unknown") is None
    await store.delete(record.id)
    assert await store.get(record.id) is None


async def test_cursors(storage: TableStorage) -> None:
    cursors = SyncCursors(storage)
    assert await cursors.get("mail-delta:crm@firma.example:inbox") is None
    await cursors.set("mail-delta:crm@firma.example:inbox", "https://graph/delta?$deltatoken=a")
    assert await cursors.get("mail-delta:crm@firma.example:inbox") == "https://graph/delta?$deltatoken=a"
    await cursors.clear("mail-delta:crm@firma.example:inbox")
    assert await cursors.get("mail-delta:crm@firma.example:inbox") is None


async def test_poison_items_show_their_reason_and_replay(storage: TableStorage, azurite: Azurite) -> None:
    from azure.storage.queue.aio import QueueClient

    queue = "q" + datetime.now(UTC).strftime("%H%M%S%f")
    failures = FailureLog(storage)
    async with QueueClient.from_connection_string(azurite.connection_string, queue + "-poison") as poison:
        await poison.create_queue()
        await poison.send_message('{"item": 1}')
    await failures.record(queue, '{"item": 1}', "NetGeniumRejected: 400 value_too_long", 5)
    items = await list_poison(azurite.connection_string, queue, failures)
    assert [(i.content, i.reason) for i in items] == [('{"item": 1}', "NetGeniumRejected: 400 value_too_long")]
    assert [i.attempts for i in items] == [5]  # the attempts in its queue, not the poison copy's 0
    assert await replay_poison(azurite.connection_string, queue, failures) == 1
    assert await list_poison(azurite.connection_string, queue, failures) == []
    async with QueueClient.from_connection_string(azurite.connection_string, queue) as target:
        assert [m.content async for m in target.receive_messages()] == ['{"item": 1}']
    assert await failures.get(queue, '{"item": 1}') is None


async def test_subscription_cache_keeps_unknown_ids_only_briefly_and_stays_small(storage: TableStorage) -> None:
    webhook = SubscriptionStore(storage, miss_seconds=0)  # the webhook's store, its misses already stale
    upkeep = SubscriptionStore(storage)  # another process's
    for n in range(300):
        assert await webhook.get(f"made-up-{n}") is None
    now = datetime.now(UTC).replace(microsecond=0)
    record = SubscriptionRecord(
        id="made-up-7", resource="r", kind="mail", mailbox="m", client_state="s", expires_at=now, created_at=now
    )
    await upkeep.save(record)
    assert await webhook.get("made-up-7") == record  # asked before, found now: no "unknown" was kept
    assert len(webhook._cache) <= 256


class _CountingStorage:
    """A TableStorage whose tables count their point reads."""

    def __init__(self, inner: TableStorage) -> None:
        self._inner = inner
        self.reads = 0

    async def table(self, name: str) -> Any:
        table = await self._inner.table(name)
        outer = self

        class _Counting:
            def __getattr__(self, attr: str) -> Any:
                return getattr(table, attr)

            async def get_entity(self, *args: Any, **kwargs: Any) -> Any:
                outer.reads += 1
                return await table.get_entity(*args, **kwargs)

        return _Counting()


async def test_a_flood_of_unknown_subscription_ids_costs_one_read_each_per_window(storage: TableStorage) -> None:
    counting = _CountingStorage(storage)
    webhook = SubscriptionStore(counting, miss_seconds=60)  # type: ignore[arg-type]
    for _ in range(3):
        for n in range(50):
            assert await webhook.get(f"unknown-{n}") is None
    assert counting.reads == 50  # each unknown id read once, then remembered as unknown
    now = datetime.now(UTC).replace(microsecond=0)
    record = SubscriptionRecord(
        id="unknown-3", resource="r", kind="mail", mailbox="m", client_state="s", expires_at=now, created_at=now
    )
    await webhook.save(record)  # a subscription this process creates is known at once
    assert await webhook.get("unknown-3") == record


async def test_a_mailbox_lease_has_one_holder_until_it_ends_or_is_released(storage: TableStorage) -> None:
    from crm_core.storage.leases import MailboxLeases

    leases = MailboxLeases(storage)
    now = datetime.now(UTC)
    assert await leases.acquire("CRM@firma.example", "instance-1", 60, now=now)
    assert await leases.acquire("crm@firma.example", "instance-1", 60, now=now)  # its own, again
    assert not await leases.acquire("crm@firma.example", "instance-2", 60, now=now)
    await leases.release("crm@firma.example", "instance-2")  # not its lease: nothing happens
    assert not await leases.acquire("crm@firma.example", "instance-2", 60, now=now)
    later = now + timedelta(seconds=61)
    assert await leases.acquire("crm@firma.example", "instance-2", 60, now=later)  # the holder died
    await leases.release("crm@firma.example", "instance-1")  # too late: it is instance-2's now
    assert not await leases.acquire("crm@firma.example", "instance-1", 60, now=later)
    await leases.release("crm@firma.example", "instance-2")
    assert await leases.acquire("crm@firma.example", "instance-1", 60, now=later)


async def test_a_lease_is_given_back_with_one_request(storage: TableStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Release deletes with the ETag its own last write got (a read first would be one more Table
    request in every capture run); a lease someone wrote since is left alone."""
    from azure.data.tables.aio import TableClient

    from crm_core.storage.leases import MailboxLeases

    leases = MailboxLeases(storage)
    assert await leases.acquire("one@firma.example", "instance-1", 60)
    assert await leases.acquire("one@firma.example", "instance-1", 60)  # renewed: a new ETag

    async def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("release read the lease first")

    with monkeypatch.context() as patch:
        patch.setattr(TableClient, "get_entity", no_read)
        await leases.release("one@firma.example", "instance-1")
    assert await MailboxLeases(storage).acquire("one@firma.example", "instance-2", 60)  # it was deleted
    stale = MailboxLeases(storage)
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert await stale.acquire("two@firma.example", "instance-3", 60)
    assert await MailboxLeases(storage).acquire("two@firma.example", "instance-4", 60, now=later)  # ran out
    await stale.release("two@firma.example", "instance-3")  # its ETag is stale: nothing deleted
    assert not await MailboxLeases(storage).acquire("two@firma.example", "instance-3", 60)


async def test_racing_takers_of_an_ended_lease_get_it_once(storage: TableStorage) -> None:
    from crm_core.storage.leases import MailboxLeases

    now = datetime.now(UTC)
    assert await MailboxLeases(storage).acquire("race@firma.example", "dead", 1, now=now)
    later = now + timedelta(seconds=5)
    won = await asyncio.gather(
        *(MailboxLeases(storage).acquire("race@firma.example", f"taker-{n}", 60, now=later) for n in range(8))
    )
    assert sum(won) == 1
