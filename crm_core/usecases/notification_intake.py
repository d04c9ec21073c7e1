"""The webhook's use case: check what Graph POSTed and turn it into queue items, nothing more.

It makes no Graph and no NET Genium call: Graph counts an answer slower than 3 s as a failed
delivery, so the webhook only parses, checks each notification's clientState against the secret
of its subscription (in constant time), and hands the accepted ones to the queue. A notification
for an unknown subscription, or with a wrong clientState, is dropped and logged, never processed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from crm_core.domain.notifications import (
    client_state_matches,
    parse_change_notifications,
    parse_lifecycle_notifications,
)
from crm_core.domain.state import SubscriptionRecord
from crm_core.domain.tasks import MAX_ITEMS_PER_TASK, CaptureTask, LifecycleTask

log = logging.getLogger("crm_core.webhook")

# Work per POST is bounded, so every answer stays well inside Graph's 3 s: distinct subscriptions
# looked up per POST (Graph batches notifications of many subscriptions, but not of hundreds),
# and lookups in flight at once. Notifications of further subscriptions are dropped unread.
MAX_SUBSCRIPTIONS_PER_POST = 100
_LOOKUPS_AT_ONCE = 16


class SubscriptionLookup(Protocol):
    async def get(self, subscription_id: str) -> SubscriptionRecord | None: ...


@dataclass
class Intake:
    """What to enqueue, and how many notifications were refused."""

    tasks: list[str] = field(default_factory=list)
    dropped: int = 0


async def _records(subscriptions: SubscriptionLookup, ids: Iterable[str]) -> dict[str, SubscriptionRecord | None]:
    """Each distinct subscription id read once, a bounded number of them, some at a time."""
    distinct = list(dict.fromkeys(ids))
    wanted, ignored = distinct[:MAX_SUBSCRIPTIONS_PER_POST], len(distinct) - MAX_SUBSCRIPTIONS_PER_POST
    if ignored > 0:
        log.warning("webhook: a POST names too many subscriptions; the rest dropped", extra={"ignored": ignored})
    gate = asyncio.Semaphore(_LOOKUPS_AT_ONCE)

    async def one(subscription_id: str) -> SubscriptionRecord | None:
        async with gate:
            return await subscriptions.get(subscription_id)

    found = await asyncio.gather(*(one(i) for i in wanted))
    return dict(zip(wanted, found, strict=True))


def _owned(
    records: dict[str, SubscriptionRecord | None], subscription_id: str, client_state: str | None
) -> SubscriptionRecord | None:
    record = records.get(subscription_id)
    if record is None:
        log.warning(
            "webhook: notification for an unknown subscription dropped", extra={"subscription_id": subscription_id}
        )
        return None
    if not client_state_matches(client_state, record.client_state):
        log.warning(
            "webhook: notification with a wrong clientState dropped", extra={"subscription_id": subscription_id}
        )
        return None
    return record


async def accept_changes(body: bytes, subscriptions: SubscriptionLookup) -> Intake:
    """Change notifications to capture tasks (one per subscription and change type, in order, each
    Graph id once); raises NotificationRejected (a 4xx) for a bad body."""
    collection = parse_change_notifications(body)
    intake = Intake()
    records = await _records(subscriptions, (note.subscription_id for note in collection.value))
    groups: dict[tuple[str, str], tuple[SubscriptionRecord, list[str]]] = {}
    for note in collection.value:
        record = _owned(records, note.subscription_id, note.client_state)
        item_id = note.item_id
        if record is None or not item_id:
            intake.dropped += 1
            continue
        _, ids = groups.setdefault((record.id, note.change_type.value), (record, []))
        if item_id not in ids:
            ids.append(item_id)
    for (_, change_type), (record, ids) in groups.items():
        for start in range(0, len(ids), MAX_ITEMS_PER_TASK):
            task = CaptureTask(
                subscription_id=record.id,
                kind="events" if record.kind == "events" else "mail",
                mailbox=record.mailbox,
                item_ids=ids[start : start + MAX_ITEMS_PER_TASK],
                change_type=change_type,
            )
            intake.tasks.append(task.model_dump_json())
    return intake


async def accept_lifecycle(body: bytes, subscriptions: SubscriptionLookup) -> Intake:
    """Lifecycle notifications to lifecycle tasks; raises NotificationRejected for a bad body."""
    collection = parse_lifecycle_notifications(body)
    intake = Intake()
    records = await _records(subscriptions, (note.subscription_id for note in collection.value))
    for note in collection.value:
        record = _owned(records, note.subscription_id, note.client_state)
        if record is None:
            intake.dropped += 1
            continue
        intake.tasks.append(
            LifecycleTask(subscription_id=record.id, event=note.lifecycle_event.value).model_dump_json()
        )
    return intake
