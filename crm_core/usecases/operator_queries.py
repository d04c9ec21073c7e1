"""What an operator asks of the live service's state, for the `crmservice` commands.

Each answer is plain JSON-ready data: why a mail was (not) stored (its ledger row), what failed
for good (poison queues, with the reason kept beside them), and who writes to the company without
being in the address book. No mail content is kept anywhere these read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from crm_core.domain.state import Correspondent, LedgerEntry, PoisonItem


class LedgerReader(Protocol):
    async def get(self, message_id: str) -> LedgerEntry | None: ...


class CorrespondentsReader(Protocol):
    async def top(self, limit: int = ...) -> list[Correspondent]: ...


class PoisonQueues(Protocol):
    async def list(self, queue: str, limit: int) -> list[PoisonItem]: ...
    async def replay(self, queue: str) -> int: ...


@dataclass(frozen=True, slots=True)
class OperatorState:
    """The stores an operator's questions read; `crm_core.runtime.operator_state` opens them."""

    ledger: LedgerReader
    correspondents: CorrespondentsReader
    poison: PoisonQueues


async def ledger_entry(state: OperatorState, message_id: str) -> dict[str, Any] | None:
    """The ledger's record of one mail: its state, direction, links and the decision's reasons."""
    entry = await state.ledger.get(message_id)
    if entry is None:
        return None
    return {
        "message_id": entry.message_id,
        "state": entry.state.value,
        "activity_id": entry.activity_id,
        "direction": entry.direction,
        "contacts": list(entry.contact_ids),
        "users": list(entry.user_ids),
        "order_id": entry.order_id,
        "reasons": list(entry.reasons),
        "attempts": entry.attempts,
        "claimed_at": entry.claimed_at.isoformat(),
    }


async def unmatched_correspondents(state: OperatorState, limit: int) -> list[dict[str, Any]]:
    """The most frequent senders missing from the address book."""
    found = await state.correspondents.top(limit)
    return [{"address": c.address, "count": c.count, "last_seen": c.last_seen.isoformat()} for c in found]


async def poison_items(state: OperatorState, queue: str, limit: int) -> list[dict[str, Any]]:
    """Items of `<queue>-poison`, each with its attempts and the reason of its last failure."""
    items = await state.poison.list(queue, limit)
    return [{"item": i.content, "attempts": i.attempts, "reason": i.reason} for i in items]


async def replay_poison_items(state: OperatorState, queue: str) -> int:
    """Move every item of `<queue>-poison` back to `queue`."""
    return await state.poison.replay(queue)
