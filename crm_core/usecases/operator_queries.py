"""What an operator asks of the live service's state, for the `crmservice` commands.

Each answer is plain JSON-ready data: why a mail was (not) stored (its ledger row), what failed
for good (poison queues, with the reason kept beside them), and who writes to the company without
being in the address book. No mail content is kept anywhere these read from.
"""

from __future__ import annotations

from typing import Any

from crm_core.storage.correspondents import UnmatchedCorrespondents
from crm_core.storage.failures import FailureLog
from crm_core.storage.ledger import CaptureLedger
from crm_core.storage.queues import list_poison, replay_poison
from crm_core.storage.tables import TableStorage


async def ledger_entry(connection: str, message_id: str) -> dict[str, Any] | None:
    """The ledger's record of one mail: its state, direction, links and the decision's reasons."""
    async with TableStorage.from_connection_string(connection) as storage:
        entry = await CaptureLedger(storage).get(message_id)
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


async def unmatched_correspondents(connection: str, limit: int) -> list[dict[str, Any]]:
    """The most frequent senders missing from the address book."""
    async with TableStorage.from_connection_string(connection) as storage:
        found = await UnmatchedCorrespondents(storage).top(limit)
    return [{"address": c.address, "count": c.count, "last_seen": c.last_seen.isoformat()} for c in found]


async def poison_items(connection: str, queue: str, limit: int) -> list[dict[str, Any]]:
    """Items of `<queue>-poison`, each with its attempts and the reason of its last failure."""
    async with TableStorage.from_connection_string(connection) as storage:
        items = await list_poison(connection, queue, FailureLog(storage), limit=limit)
    return [{"item": i.content, "attempts": i.dequeue_count, "reason": i.reason} for i in items]


async def replay_poison_items(connection: str, queue: str) -> int:
    """Move every item of `<queue>-poison` back to `queue`."""
    async with TableStorage.from_connection_string(connection) as storage:
        return await replay_poison(connection, queue, FailureLog(storage))
