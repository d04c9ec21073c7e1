"""The claim semantics the capture use case relies on, checked on the in-memory FakeLedger and on the
real CaptureLedger over Azurite alike (so the fake the other tests use cannot drift from the real one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crm_core.domain.capture_decision import ConversationOrder, Decision
from crm_core.domain.state import DEFAULT_LEASE, ClaimOutcome, LedgerState

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WRITTEN = Decision(message_id="<m@x>", capture=True, direction="incoming", order_id=40, reasons=["incoming: ..."])
SKIPPED = Decision(message_id="<m@x>", capture=False, reasons=["automated: Auto-Submitted is auto-replied"])


async def test_first_claim_is_new_and_a_live_claim_of_another_worker_is_busy(ledger: Any) -> None:
    first = await ledger.claim("<m@x>", "a", now=T0)
    other = await ledger.claim("<m@x>", "b", now=T0 + DEFAULT_LEASE - timedelta(seconds=1))

    assert first.outcome is ClaimOutcome.NEW
    assert (other.outcome, other.entry.claimed_by) == (ClaimOutcome.BUSY, "a")


async def test_a_claim_is_taken_over_after_the_lease_or_by_the_same_worker(ledger: Any) -> None:
    await ledger.claim("<m@x>", "a", now=T0)

    same = await ledger.claim("<m@x>", "a", now=T0 + timedelta(seconds=1))
    later = await ledger.claim("<m@x>", "b", now=T0 + DEFAULT_LEASE + timedelta(seconds=2))

    assert (same.outcome, same.entry.attempts) == (ClaimOutcome.TAKEN_OVER, 2)
    assert (later.outcome, later.entry.claimed_by, later.entry.attempts) == (ClaimOutcome.TAKEN_OVER, "b", 3)


async def test_a_completed_claim_is_done_for_everyone(ledger: Any) -> None:
    claim = await ledger.claim(" <m@x> ", "a", now=T0)
    await ledger.complete(claim.entry, WRITTEN, 5001)

    again = await ledger.claim("<m@x>", "b", now=T0 + timedelta(days=1))

    assert again.outcome is ClaimOutcome.DONE
    entry = again.entry
    assert (entry.state, entry.activity_id, entry.direction, entry.order_id) == (
        LedgerState.WRITTEN,
        5001,
        "incoming",
        40,
    )
    assert entry.reasons == ("incoming: ...",)


async def test_a_skipped_mail_keeps_its_reasons(ledger: Any) -> None:
    claim = await ledger.claim("<m@x>", "a", now=T0)
    await ledger.complete(claim.entry, SKIPPED, None)

    entry = await ledger.get("<m@x>")

    assert (entry.state, entry.activity_id) == (LedgerState.SKIPPED, None)
    assert entry.reasons == ("automated: Auto-Submitted is auto-replied",)
    assert (await ledger.claim("<m@x>", "a")).outcome is ClaimOutcome.DONE


async def test_conversation_orders(ledger: Any) -> None:
    assert await ledger.conversation_order("conv-1") is None

    await ledger.link_conversation("conv-1", ConversationOrder(4, 40))
    await ledger.link_conversation("conv-1", ConversationOrder(7, 70))  # the latest link wins

    assert await ledger.conversation_order("conv-1") == ConversationOrder(7, 70)
    assert await ledger.conversation_order("conv-2") is None


async def test_a_reply_stored_unlinked_is_reported_to_the_mail_that_links_its_conversation(ledger: Any) -> None:
    assert await ledger.mark_unlinked("conv-9") is None  # no order yet: the reply stays unlinked, noted
    assert await ledger.link_conversation("conv-9", ConversationOrder(4, 40)) is True  # link the noted replies
    # Linking them in NET Genium failed: the retry is told again.
    assert await ledger.link_conversation("conv-9", ConversationOrder(4, 40)) is True
    await ledger.clear_unlinked("conv-9")  # linked now
    assert await ledger.link_conversation("conv-9", ConversationOrder(4, 40)) is False  # nothing noted since
    assert await ledger.mark_unlinked("conv-9") == ConversationOrder(4, 40)  # linked meanwhile: take it
    assert await ledger.link_conversation("conv-10", ConversationOrder(5, 50)) is False
