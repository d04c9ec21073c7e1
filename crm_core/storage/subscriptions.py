"""The Graph subscriptions this app created, with the clientState secret of each.

The webhook checks every notification's clientState against the secret stored here (in constant
time), so a forged POST, or one for a subscription we no longer own, is dropped unprocessed. The
webhook reads this on its hot path, so lookups are cached in the process for a short time.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from crm_core.domain.state import SubscriptionRecord as SubscriptionRecord
from crm_core.storage.tables import SUBSCRIPTIONS_TABLE, TableStorage, clean, storage_error

_PARTITION = "subscription"


_CACHE_ENTRIES = 256
# A miss is remembered briefly, so a flood of made-up ids costs one Table read per id per few
# seconds at most; briefly, because a subscription created a moment ago by another instance must
# not stay unknown (the reconciliation that follows each new subscription covers the moment).
_MISS_SECONDS = 5.0
_MISS_ENTRIES = 10_000


class SubscriptionStore:
    """Subscription rows, with a short in-process cache for the webhook.

    Subscriptions that exist are cached for a minute, and only a few; ids that do not are
    remembered for seconds, in a bounded list: the webhook is reachable from the internet, and a
    flood of made-up subscription ids must neither fill memory nor cost a Table read each.
    """

    def __init__(
        self, storage: TableStorage, *, cache_seconds: float = 60.0, miss_seconds: float = _MISS_SECONDS
    ) -> None:
        self._storage = storage
        self._cache_seconds = cache_seconds
        self._miss_seconds = miss_seconds
        self._cache: OrderedDict[str, tuple[float, SubscriptionRecord]] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()

    def _remember_miss(self, subscription_id: str) -> None:
        self._misses[subscription_id] = time.monotonic()
        self._misses.move_to_end(subscription_id)
        while len(self._misses) > _MISS_ENTRIES:
            self._misses.popitem(last=False)

    def _remember(self, record: SubscriptionRecord) -> None:
        self._misses.pop(record.id, None)
        self._cache[record.id] = (time.monotonic(), record)
        self._cache.move_to_end(record.id)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)

    async def save(self, record: SubscriptionRecord) -> None:
        table = await self._storage.table(SUBSCRIPTIONS_TABLE)
        entity = {
            "PartitionKey": _PARTITION,
            "RowKey": record.id,
            "Resource": record.resource,
            "Kind": record.kind,
            "Mailbox": record.mailbox,
            "ClientState": record.client_state,
            "ExpiresAt": record.expires_at,
            "CreatedAt": record.created_at,
        }
        try:
            await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise storage_error(exc, "saving a subscription") from exc
        self._remember(record)

    async def get(self, subscription_id: str) -> SubscriptionRecord | None:
        cached = self._cache.get(subscription_id)
        if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        missed = self._misses.get(subscription_id)
        if missed is not None and time.monotonic() - missed < self._miss_seconds:
            return None
        if not subscription_id or any(c in subscription_id for c in "/\\#?") or len(subscription_id) > 200:
            return None  # not a key Graph would give, and not one Table storage accepts
        table = await self._storage.table(SUBSCRIPTIONS_TABLE)
        try:
            record = _record(clean(await table.get_entity(_PARTITION, subscription_id)))
        except ResourceNotFoundError:
            self._remember_miss(subscription_id)
            return None
        except AzureError as exc:
            raise storage_error(exc, "reading a subscription") from exc
        self._remember(record)
        return record

    async def all(self) -> list[SubscriptionRecord]:
        table = await self._storage.table(SUBSCRIPTIONS_TABLE)
        try:
            return [
                _record(clean(e))
                async for e in table.query_entities("PartitionKey eq @p", parameters={"p": _PARTITION})
            ]
        except AzureError as exc:
            raise storage_error(exc, "listing subscriptions") from exc

    async def delete(self, subscription_id: str) -> None:
        table = await self._storage.table(SUBSCRIPTIONS_TABLE)
        try:
            await table.delete_entity(_PARTITION, subscription_id)
        except AzureError as exc:
            raise storage_error(exc, "deleting a subscription") from exc
        self._cache.pop(subscription_id, None)


def _record(entity: dict[str, object]) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=str(entity["RowKey"]),
        resource=str(entity["Resource"]),
        kind=str(entity["Kind"]),
        mailbox=str(entity.get("Mailbox", "")),
        client_state=str(entity["ClientState"]),
        expires_at=entity["ExpiresAt"],  # type: ignore[arg-type]
        created_at=entity["CreatedAt"],  # type: ignore[arg-type]
    )
