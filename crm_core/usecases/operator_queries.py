"""What an operator asks of the live service's state, for the `crmservice` commands.

Each answer is plain JSON-ready data: why a mail was (not) stored (its ledger row), what failed
for good (poison queues, with the reason kept beside them), and who writes to the company without
being in the address book. No mail content is kept anywhere these read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from crm_core.domain.calendar_state import CalendarConflict, CalendarUsersState
from crm_core.domain.state import Correspondent, LedgerEntry, PoisonItem


class LedgerReader(Protocol):
    async def get(self, message_id: str) -> LedgerEntry | None: ...


class CorrespondentsReader(Protocol):
    async def top(self, limit: int = ...) -> list[Correspondent]: ...


class PoisonQueues(Protocol):
    async def list(self, queue: str, limit: int) -> list[PoisonItem]: ...
    async def replay(self, queue: str) -> int: ...


class CalendarUsersReader(Protocol):
    async def load(self) -> CalendarUsersState | None: ...


class ConflictsReader(Protocol):
    async def recent(self, limit: int = ..., mailbox: str | None = ...) -> list[CalendarConflict]: ...
    async def count(self) -> int: ...


class CursorReader(Protocol):
    async def get(self, name: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class OperatorState:
    """The stores an operator's questions read; `crm_core.runtime.operator_state` opens them."""

    ledger: LedgerReader
    correspondents: CorrespondentsReader
    poison: PoisonQueues
    calendar_users: CalendarUsersReader | None = None
    calendar_conflicts: ConflictsReader | None = None
    cursors: CursorReader | None = None


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


async def calendar_status(state: OperatorState, conflicts: int = 20) -> dict[str, Any]:
    """Who is in calendar sync and who is not (with why), each user's last sync, and the latest
    overwritten edits."""
    from crm_core.usecases.calendar_sync import watermark_cursor

    users = await state.calendar_users.load() if state.calendar_users is not None else None
    synced = []
    for user in users.synced if users is not None else []:
        last = None
        if state.cursors is not None:
            last = await state.cursors.get(watermark_cursor(str(user["mailbox"])))
        synced.append({**user, "netgenium_watermark": last})
    recent = await state.calendar_conflicts.recent(conflicts) if state.calendar_conflicts is not None else []
    total = await state.calendar_conflicts.count() if state.calendar_conflicts is not None else 0
    return {
        "refreshed_at": users.refreshed_at.isoformat() if users is not None else None,
        "synced": synced,
        "unmatched": list(users.unmatched) if users is not None else [],
        "conflicts_total": total,
        "conflicts": [
            {
                "at": c.at.isoformat(),
                "mailbox": c.mailbox,
                "winner": c.winner,
                "loser": c.loser,
                "event_id": c.event_id,
                "activity_id": c.activity_id,
                "fields": list(c.fields),
            }
            for c in recent
        ],
    }
