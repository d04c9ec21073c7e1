"""The capture ledger: one row per Internet Message-ID, which makes capture exactly-once.

Graph delivers notifications at least once, queues deliver messages at least once, and the same
mail reaches the CRM mailbox once per employee who forwards or copies it. The first worker to
insert the row (insert-if-absent) owns the mail; everyone else sees `claimed`, `written` or
`skipped`. A claim older than the lease belongs to a worker that died: it may be taken over (with
an ETag check, so only one taker wins), and the taker must look the activity up in NET Genium
before writing, because the dead worker may have written it just before dying.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from crm_core.domain.capture_decision import ConversationOrder, Decision
from crm_core.domain.state import DEFAULT_LEASE as DEFAULT_LEASE
from crm_core.domain.state import Claim as Claim
from crm_core.domain.state import ClaimOutcome as ClaimOutcome
from crm_core.domain.state import LedgerEntry as LedgerEntry
from crm_core.domain.state import LedgerState as LedgerState
from crm_core.domain.state import claim_outcome
from crm_core.domain.status import LedgerOutcome
from crm_core.storage.tables import (
    CONVERSATIONS_TABLE,
    LEDGER_TABLE,
    TableStorage,
    partition_of,
    row_key,
    storage_error,
)


def _entry(entity: Any) -> LedgerEntry:
    claimed_at = entity.get("ClaimedAt")
    return LedgerEntry(
        message_id=entity["MessageId"],
        state=LedgerState(entity["State"]),
        claimed_by=entity.get("ClaimedBy", ""),
        claimed_at=claimed_at if isinstance(claimed_at, datetime) else datetime.min.replace(tzinfo=UTC),
        attempts=int(entity.get("Attempts", 1)),
        activity_id=entity.get("ActivityId"),
        direction=entity.get("Direction"),
        reasons=tuple(json.loads(entity.get("Reasons") or "[]")),
        conversation_id=entity.get("ConversationId"),
        order_id=entity.get("OrderId"),
        contact_ids=tuple(json.loads(entity.get("ContactIds") or "[]")),
        user_ids=tuple(json.loads(entity.get("UserIds") or "[]")),
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )


def ledger_key(message_id: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) of a mail's row; the id is compared as Graph gives it, trimmed."""
    key = row_key(message_id.strip())
    return partition_of(key), key


class CaptureLedger:
    """Claim, complete and read ledger rows; and the order each conversation is linked to."""

    def __init__(self, storage: TableStorage, *, lease: timedelta = DEFAULT_LEASE) -> None:
        self._storage = storage
        self._lease = lease

    async def get(self, message_id: str) -> LedgerEntry | None:
        partition, row = ledger_key(message_id)
        table = await self._storage.table(LEDGER_TABLE)
        try:
            return _entry(await table.get_entity(partition, row))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(exc, "reading the ledger") from exc

    async def claim(self, message_id: str, worker: str, *, now: datetime | None = None) -> Claim:
        """Insert-if-absent; or take over a claim whose lease ran out."""
        now = now or datetime.now(UTC)
        partition, row = ledger_key(message_id)
        table = await self._storage.table(LEDGER_TABLE)
        entity = {
            "PartitionKey": partition,
            "RowKey": row,
            "MessageId": message_id.strip(),
            "State": LedgerState.CLAIMED.value,
            "ClaimedBy": worker,
            "ClaimedAt": now,
            "Attempts": 1,
        }
        try:
            meta = await table.create_entity(entity)
            return Claim(ClaimOutcome.NEW, _entry_from(entity, meta.get("etag")))
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise storage_error(exc, "claiming a mail") from exc

        existing = await self.get(message_id)
        if existing is None:  # deleted between the two calls: claim again from the start
            return await self.claim(message_id, worker, now=now)
        outcome = claim_outcome(existing, worker, now, self._lease)
        if outcome is not ClaimOutcome.TAKEN_OVER:
            return Claim(outcome, existing)
        entity["Attempts"] = existing.attempts + 1
        try:
            meta = await table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=existing.etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return Claim(ClaimOutcome.BUSY, existing)
        except AzureError as exc:
            raise storage_error(exc, "taking over a claim") from exc
        return Claim(ClaimOutcome.TAKEN_OVER, _entry_from(entity, meta.get("etag")))

    async def complete(self, claim: LedgerEntry, decision: Decision, activity_id: int | None) -> None:
        """Record the outcome: written with the activity id, or skipped with the reasons."""
        partition, row = ledger_key(claim.message_id)
        table = await self._storage.table(LEDGER_TABLE)
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": row,
            "MessageId": claim.message_id,
            "State": (LedgerState.WRITTEN if activity_id is not None else LedgerState.SKIPPED).value,
            "ClaimedBy": claim.claimed_by,
            "ClaimedAt": claim.claimed_at,
            "Attempts": claim.attempts,
            "CompletedAt": datetime.now(UTC),
            "Direction": decision.direction,
            "Reasons": json.dumps(decision.reasons, ensure_ascii=False),
            "ContactIds": json.dumps(decision.contact_ids),
            "UserIds": json.dumps(decision.user_ids),
        }
        if activity_id is not None:
            entity["ActivityId"] = activity_id
        if decision.order_id is not None:
            entity["OrderId"] = decision.order_id
        try:
            # Unconditional: the write is done; recording it must not fail on a racing takeover.
            await table.upsert_entity({k: v for k, v in entity.items() if v is not None}, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise storage_error(exc, "completing a ledger row") from exc

    async def conversation_order(self, conversation_id: str) -> ConversationOrder | None:
        """The order the conversation's earlier mail was linked to, if any."""
        key = row_key(conversation_id)
        table = await self._storage.table(CONVERSATIONS_TABLE)
        try:
            entity = await table.get_entity(partition_of(key), key)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(exc, "reading a conversation's order") from exc
        number, order_id = entity.get("OrderNumber"), entity.get("OrderId")
        if number is None or order_id is None:
            return None
        return ConversationOrder(int(number), int(order_id))

    async def link_conversation(self, conversation_id: str, order: ConversationOrder) -> bool:
        """Remember a conversation's order, so that replies naming none inherit it.

        Returns whether replies of the conversation were stored unlinked before (`mark_unlinked`):
        Graph's delta has no order, so a reply may be captured before the mail naming the order.
        The note stays until `clear_unlinked`, after the replies are linked: a failure in between
        leaves it for the retry.
        """
        key = row_key(conversation_id)
        table = await self._storage.table(CONVERSATIONS_TABLE)
        try:
            try:
                pending = bool((await table.get_entity(partition_of(key), key)).get("UnlinkedReplies"))
            except ResourceNotFoundError:
                pending = False
            await table.upsert_entity(
                {"PartitionKey": partition_of(key), "RowKey": key, "OrderNumber": order.number, "OrderId": order.id},
                mode=UpdateMode.MERGE,
            )
        except AzureError as exc:
            raise storage_error(exc, "linking a conversation to its order") from exc
        return pending

    async def clear_unlinked(self, conversation_id: str) -> None:
        """The conversation's unlinked replies are linked now: forget the note."""
        key = row_key(conversation_id)
        table = await self._storage.table(CONVERSATIONS_TABLE)
        try:
            await table.upsert_entity(
                {"PartitionKey": partition_of(key), "RowKey": key, "UnlinkedReplies": False}, mode=UpdateMode.MERGE
            )
        except AzureError as exc:
            raise storage_error(exc, "clearing a conversation's unlinked replies") from exc

    async def mark_unlinked(self, conversation_id: str) -> ConversationOrder | None:
        """Note that a reply of this conversation was stored without an order; or, when the
        conversation has been linked meanwhile, return its order for the reply to take."""
        key = row_key(conversation_id)
        table = await self._storage.table(CONVERSATIONS_TABLE)
        try:
            await table.upsert_entity(
                {"PartitionKey": partition_of(key), "RowKey": key, "UnlinkedReplies": True}, mode=UpdateMode.MERGE
            )
        except AzureError as exc:
            raise storage_error(exc, "noting an unlinked reply") from exc
        return await self.conversation_order(conversation_id)

    async def completed_since(self, since: datetime) -> list[LedgerOutcome]:
        """Rows completed (written or skipped) at or after `since`, for the status page.

        The ledger is keyed by the hash of the Message-ID, so there is no index by time: this is a
        filtered scan (`CompletedAt ge since`, the row's own time, not the service's `Timestamp`),
        and only four properties come back, never the reasons past the first. The server still reads
        every partition; the answer holds only the window's rows.
        """
        table = await self._storage.table(LEDGER_TABLE)
        try:
            rows = table.query_entities(
                "CompletedAt ge @since",
                parameters={"since": since},
                select=["MessageId", "State", "CompletedAt", "Reasons"],
            )
            return [outcome async for entity in rows if (outcome := _outcome(entity)) is not None]
        except AzureError as exc:
            raise storage_error(exc, "reading the ledger's recent rows") from exc

    async def last_written(self, since: datetime) -> LedgerOutcome | None:
        """The newest written row completed at or after `since` (a bounded look back), if any."""
        table = await self._storage.table(LEDGER_TABLE)
        try:
            rows = table.query_entities(
                "State eq @written and CompletedAt ge @since",
                parameters={"written": LedgerState.WRITTEN.value, "since": since},
                select=["MessageId", "State", "CompletedAt"],
            )
            found = [outcome async for entity in rows if (outcome := _outcome(entity)) is not None]
        except AzureError as exc:
            raise storage_error(exc, "reading the ledger's last written row") from exc
        return max(found, key=lambda row: row.completed_at) if found else None

    async def entries(self) -> list[LedgerEntry]:
        """Every row (for the sandbox's replay report and for operators; not on a hot path)."""
        table = await self._storage.table(LEDGER_TABLE)
        try:
            return [_entry(entity) async for entity in table.list_entities()]
        except AzureError as exc:
            raise storage_error(exc, "listing the ledger") from exc


def _outcome(entity: Any) -> LedgerOutcome | None:
    completed = entity.get("CompletedAt")
    if not isinstance(completed, datetime):
        return None
    reasons = json.loads(entity.get("Reasons") or "[]")
    return LedgerOutcome(
        message_id=str(entity.get("MessageId", "")),
        state=LedgerState(entity["State"]),
        completed_at=completed,
        reason=str(reasons[0]) if reasons else None,
    )


def _entry_from(entity: dict[str, Any], etag: str | None) -> LedgerEntry:
    return LedgerEntry(
        message_id=entity["MessageId"],
        state=LedgerState(entity["State"]),
        claimed_by=entity["ClaimedBy"],
        claimed_at=entity["ClaimedAt"],
        attempts=entity["Attempts"],
        etag=etag,
    )
