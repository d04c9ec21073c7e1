"""What calendar sync keeps between runs: event-activity pairs, overwritten edits, who is in sync.

Pairs are what make calendar sync idempotent: an Outlook event with a pair is updated, never
created again, and a change whose fingerprint equals the pair's is our own echo. A lost pair costs
a duplicate activity, so pairs are saved right after the write they record.

Two traps of Table storage shape this module:

* Graph ids are case-sensitive while nothing else here is, so an event id is hashed (`row_key`)
  exactly as Graph gives it, and two ids differing only in case are two rows.
* A filter constant must have the property's own type: an Int64 column never equals an Int32
  constant. The SDK renders every `int` parameter below 2**32 as an Int32 constant (and 0 and 1 as
  booleans), so `ActivityId eq @a` would find nothing for ordinary ids. Pairs therefore also keep
  the activity id as text (`ActivityKey`), which is what `by_activity` filters on; `ActivityId`
  stays an Int64 for anyone reading the table.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from crm_core.domain.calendar_state import CalendarConflict, CalendarPair, CalendarUsersState
from crm_core.storage.tables import (
    CALENDAR_CONFLICTS_TABLE,
    CALENDAR_PAIRS_TABLE,
    CALENDAR_USERS_TABLE,
    StorageUnavailable,
    TableStorage,
    clean,
    row_key,
    storage_error,
)

# A transaction holds at most 100 operations, all in one partition.
_BATCH = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEYS_ONLY = ["PartitionKey", "RowKey"]


def _mailbox_partition(mailbox: str) -> str:
    """One partition per user: a user's pairs are listed and wiped together, and mailbox case is noise."""
    return row_key(mailbox.lower())


def _to_utc(value: datetime | None) -> datetime | None:
    """An aware UTC time to store; a naive one is taken as UTC (as the SDK would, silently)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _from_utc(value: object) -> datetime | None:
    """A stored time as a plain aware `datetime` (the SDK returns its own subclass)."""
    if not isinstance(value, datetime):
        return None
    value = _to_utc(value)
    assert value is not None
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond, tzinfo=UTC
    )


def _int64(value: int) -> EntityProperty:
    """NET Genium ids may pass 2**31; typed Int64 always, so a column never mixes Int32 and Int64."""
    return EntityProperty(int(value), EdmType.INT64)


def _as_int(value: object) -> int:
    """An integer column as read back: the SDK wraps Int64 values in an `EntityProperty`."""
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, int | str):
        return int(value)
    raise TypeError(f"not an integer column value: {type(value).__name__}")


async def _delete_rows(table: TableClient, keys: Iterable[tuple[str, str]], what: str) -> None:
    """Delete rows by key, 100 per transaction; rows already gone are fine.

    A transaction fails whole if one of its rows has meanwhile been deleted by someone else, so
    such a batch is deleted again row by row (a single delete of a missing row is not an error).
    """
    by_partition: dict[str, list[str]] = {}
    for partition, row in keys:
        by_partition.setdefault(partition, []).append(row)
    try:
        for partition, rows in by_partition.items():
            for start in range(0, len(rows), _BATCH):
                chunk = rows[start : start + _BATCH]
                try:
                    await table.submit_transaction(
                        [("delete", {"PartitionKey": partition, "RowKey": row}) for row in chunk]
                    )
                except TableTransactionError as exc:
                    if exc.status_code != 404:
                        raise
                    for row in chunk:
                        await table.delete_entity(partition, row)
    except AzureError as exc:
        raise storage_error(exc, what) from exc


class CalendarPairs:
    """Which activity mirrors which Outlook event, one partition per user."""

    def __init__(self, storage: TableStorage) -> None:
        self._storage = storage

    async def by_event(self, mailbox: str, event_id: str) -> CalendarPair | None:
        """The pair of one event (or occurrence), by its id exactly as Graph gives it."""
        table = await self._storage.table(CALENDAR_PAIRS_TABLE)
        try:
            entity = await table.get_entity(_mailbox_partition(mailbox), row_key(event_id))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(exc, "reading a calendar pair") from exc
        return _pair(clean(entity))

    async def by_activity(self, mailbox: str, activity_id: int) -> CalendarPair | None:
        """The pair of one calendar activity in this user's calendar.

        An activity mirrors one event; should two rows ever name it (a crash between saving a new
        pair and deleting the old one), the first by key is given, the same one every time.
        """
        table = await self._storage.table(CALENDAR_PAIRS_TABLE)
        parameters = {"p": _mailbox_partition(mailbox), "a": str(int(activity_id))}
        try:
            async for entity in table.query_entities(
                "PartitionKey eq @p and ActivityKey eq @a", parameters=parameters, results_per_page=10
            ):
                return _pair(clean(entity))
        except AzureError as exc:
            raise storage_error(exc, "finding a calendar pair by activity") from exc
        return None

    async def save(self, pair: CalendarPair) -> None:
        """Insert or replace the pair of `pair.event_id` (every column, so none outlives a change)."""
        table = await self._storage.table(CALENDAR_PAIRS_TABLE)
        entity: dict[str, Any] = {
            "PartitionKey": _mailbox_partition(pair.mailbox),
            "RowKey": row_key(pair.event_id),
            "Mailbox": pair.mailbox,
            "EventId": pair.event_id,
            "ActivityId": _int64(pair.activity_id),
            "ActivityKey": str(int(pair.activity_id)),
            "Fingerprint": pair.fingerprint,
            "Private": bool(pair.private),
        }
        # None is simply left out: Table storage has no null, and a missing column reads as None.
        optional = {
            "SeriesMasterId": pair.series_master_id,
            "EventModified": _to_utc(pair.event_modified),
            "ActivityModified": _to_utc(pair.activity_modified),
        }
        entity.update({name: value for name, value in optional.items() if value is not None})
        try:
            await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise storage_error(exc, "saving a calendar pair") from exc

    async def delete(self, pair: CalendarPair) -> None:
        """Forget a pair; one already gone is fine (a retried unpairing must not fail)."""
        table = await self._storage.table(CALENDAR_PAIRS_TABLE)
        try:
            # The SDK's delete treats a missing row as success.
            await table.delete_entity(_mailbox_partition(pair.mailbox), row_key(pair.event_id))
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise storage_error(exc, "deleting a calendar pair") from exc

    async def all(self, mailbox: str) -> list[CalendarPair]:
        """Every pair of one user (a partition read: the user's calendar reconciliation)."""
        table = await self._storage.table(CALENDAR_PAIRS_TABLE)
        try:
            return [
                _pair(clean(entity))
                async for entity in table.query_entities(
                    "PartitionKey eq @p", parameters={"p": _mailbox_partition(mailbox)}
                )
            ]
        except AzureError as exc:
            raise storage_error(exc, "listing calendar pairs") from exc

    async def wipe(self, mailbox: str | None = None) -> int:
        """Delete the pairs of one user, or of everyone; how many were deleted.

        For the operator's "wipe mapping": the next sync pairs events and activities afresh.
        """
        table = await self._storage.table(CALENDAR_PAIRS_TABLE)
        try:
            # Keys are collected first, so that paging never runs over rows being deleted.
            rows: AsyncIterator[Any] = (
                table.list_entities(select=_KEYS_ONLY)
                if mailbox is None
                else table.query_entities(
                    "PartitionKey eq @p", parameters={"p": _mailbox_partition(mailbox)}, select=_KEYS_ONLY
                )
            )
            keys = [(str(entity["PartitionKey"]), str(entity["RowKey"])) async for entity in rows]
        except AzureError as exc:
            raise storage_error(exc, "listing calendar pairs to wipe") from exc
        await _delete_rows(table, keys, "wiping calendar pairs")
        return len(keys)


def _pair(entity: dict[str, Any]) -> CalendarPair:
    series = entity.get("SeriesMasterId")
    return CalendarPair(
        mailbox=str(entity["Mailbox"]),
        event_id=str(entity["EventId"]),
        activity_id=_as_int(entity["ActivityId"]),
        fingerprint=str(entity.get("Fingerprint", "")),
        series_master_id=str(series) if series is not None else None,
        event_modified=_from_utc(entity.get("EventModified")),
        activity_modified=_from_utc(entity.get("ActivityModified")),
        private=bool(entity.get("Private", False)),
    )


# Conflicts are rare (an edit on both sides of one pair between two syncs), so one partition holds
# them all: then "newest first" across every mailbox is simply the partition's key order.
_CONFLICT_PARTITION = "conflict"
_LAST_MICROSECOND = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def _newest_first_key(at: datetime) -> str:
    """A RowKey that sorts later times first, unique even for two conflicts in one microsecond."""
    moment = _to_utc(at)
    assert moment is not None
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return f"{_LAST_MICROSECOND - micros:020d}-{uuid.uuid4().hex[:12]}"


class CalendarConflicts:
    """Edits overwritten because the other side changed later: names of fields, never their values."""

    def __init__(self, storage: TableStorage) -> None:
        self._storage = storage

    async def add(self, conflict: CalendarConflict) -> None:
        table = await self._storage.table(CALENDAR_CONFLICTS_TABLE)
        entity: dict[str, Any] = {
            "PartitionKey": _CONFLICT_PARTITION,
            "RowKey": _newest_first_key(conflict.at),
            "Mailbox": conflict.mailbox,
            "MailboxKey": conflict.mailbox.lower(),
            "At": _to_utc(conflict.at),
            "Winner": conflict.winner,
            "Loser": conflict.loser,
            "EventId": conflict.event_id,
            "ActivityId": _int64(conflict.activity_id),
            "Fields": json.dumps(list(conflict.fields)),
        }
        optional = {
            "WinnerModified": _to_utc(conflict.winner_modified),
            "LoserModified": _to_utc(conflict.loser_modified),
        }
        entity.update({name: value for name, value in optional.items() if value is not None})
        try:
            await table.create_entity(entity)
        except AzureError as exc:
            raise storage_error(exc, "recording a calendar conflict") from exc

    async def recent(self, limit: int = 100, mailbox: str | None = None) -> list[CalendarConflict]:
        """The latest conflicts (of one mailbox, any case, or of all), newest first."""
        if limit <= 0:
            return []
        table = await self._storage.table(CALENDAR_CONFLICTS_TABLE)
        query = "PartitionKey eq @p"
        parameters = {"p": _CONFLICT_PARTITION}
        if mailbox is not None:
            query += " and MailboxKey eq @m"
            parameters["m"] = mailbox.lower()
        found: list[CalendarConflict] = []
        try:
            async for entity in table.query_entities(query, parameters=parameters, results_per_page=min(limit, 1000)):
                found.append(_conflict(clean(entity)))
                if len(found) >= limit:
                    break
        except AzureError as exc:
            raise storage_error(exc, "listing calendar conflicts") from exc
        return found

    async def count(self) -> int:
        """How many conflicts are recorded (keys only are read)."""
        table = await self._storage.table(CALENDAR_CONFLICTS_TABLE)
        try:
            return sum(
                [
                    1
                    async for _ in table.query_entities(
                        "PartitionKey eq @p", parameters={"p": _CONFLICT_PARTITION}, select=["RowKey"]
                    )
                ]
            )
        except AzureError as exc:
            raise storage_error(exc, "counting calendar conflicts") from exc


def _conflict(entity: dict[str, Any]) -> CalendarConflict:
    at = _from_utc(entity.get("At"))
    return CalendarConflict(
        mailbox=str(entity["Mailbox"]),
        at=at if at is not None else _EPOCH,
        winner=str(entity["Winner"]),
        loser=str(entity["Loser"]),
        event_id=str(entity["EventId"]),
        activity_id=_as_int(entity["ActivityId"]),
        fields=tuple(str(name) for name in json.loads(entity.get("Fields") or "[]")),
        winner_modified=_from_utc(entity.get("WinnerModified")),
        loser_modified=_from_utc(entity.get("LoserModified")),
    )


# The users state is one JSON document, but a string property holds at most 64 KiB (32K UTF-16
# units) and an entity 1 MiB, so the document is cut into parts, one row each. The parts of a save
# are a generation of their own; the head row names the current generation, so a reader sees a
# whole state, the old or the new, never half of each.
_USERS_PARTITION = "users"
_HEAD = "head"
# ASCII-only JSON (ensure_ascii), so a character is one UTF-16 unit: 30,000 stays under 64 KiB.
_PART_CHARS = 30_000
# Parts written per transaction: 50 x 30 KB stays well under a transaction's 4 MiB.
_PARTS_PER_BATCH = 50
# Parts of a save that never got to switch the head (it crashed) are removed after this long.
_ORPHAN_SECONDS = 3600
_SWAP_ATTEMPTS = 10
_READ_ATTEMPTS = 5


def _part_key(generation: str, index: int) -> str:
    return f"part-{generation}-{index:06d}"


def _generation_of(part_key: str) -> str:
    return part_key.split("-")[1]


def _generation_age(generation: str, now: float) -> float:
    """Seconds since a generation was written (its name starts with the writer's clock)."""
    try:
        return now - int(generation[:11])
    except ValueError:
        return float("inf")


class CalendarUsers:
    """The last refresh of who is in calendar sync and who is not (for `calendar status`)."""

    def __init__(self, storage: TableStorage) -> None:
        self._storage = storage

    async def save(self, state: CalendarUsersState) -> None:
        """Store a refresh; of two refreshes saved at once, the later `refreshed_at` stays."""
        document = json.dumps({"synced": state.synced, "unmatched": state.unmatched}, separators=(",", ":"))
        generation = f"{int(time.time()):011d}{uuid.uuid4().hex[:12]}"
        parts = [document[start : start + _PART_CHARS] for start in range(0, len(document), _PART_CHARS)]
        refreshed_at = _to_utc(state.refreshed_at)
        assert refreshed_at is not None
        table = await self._storage.table(CALENDAR_USERS_TABLE)
        try:
            for start in range(0, len(parts), _PARTS_PER_BATCH):
                await table.submit_transaction(
                    [
                        (
                            "upsert",
                            {"PartitionKey": _USERS_PARTITION, "RowKey": _part_key(generation, index), "Data": part},
                            {"mode": UpdateMode.REPLACE},
                        )
                        for index, part in enumerate(parts[start : start + _PARTS_PER_BATCH], start)
                    ]
                )
        except AzureError as exc:
            raise storage_error(exc, "saving the calendar users state") from exc
        head = {
            "PartitionKey": _USERS_PARTITION,
            "RowKey": _HEAD,
            "RefreshedAt": refreshed_at,
            "Generation": generation,
            "Parts": len(parts),
            "Length": len(document),
        }
        switched, previous = await self._switch_head(table, head)
        if not switched:
            # A later refresh is already stored: ours is dropped with its parts.
            await _delete_rows(
                table,
                [(_USERS_PARTITION, _part_key(generation, index)) for index in range(len(parts))],
                "dropping a superseded calendar users state",
            )
            return
        await self._remove_old_parts(table, generation, previous)

    async def _switch_head(self, table: TableClient, head: dict[str, Any]) -> tuple[bool, str | None]:
        """Point the head at the new parts (ETag-checked).

        Gives whether it did (not if a later refresh is stored) and the generation it replaced.
        """
        for _ in range(_SWAP_ATTEMPTS):
            try:
                current = await table.get_entity(_USERS_PARTITION, _HEAD)
            except ResourceNotFoundError:
                current = None
            except AzureError as exc:
                raise storage_error(exc, "reading the calendar users state") from exc
            try:
                if current is None:
                    await table.create_entity(head)
                    return True, None
                stored_at = _from_utc(current.get("RefreshedAt"))
                if stored_at is not None and stored_at > head["RefreshedAt"]:
                    return False, None
                await table.update_entity(
                    head,
                    mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return True, str(current.get("Generation", ""))
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another save switched it meanwhile: compare with that one
            except AzureError as exc:
                raise storage_error(exc, "saving the calendar users state") from exc
        raise StorageUnavailable("the calendar users state kept changing while being saved")

    async def _remove_old_parts(self, table: TableClient, current: str, previous: str | None) -> None:
        """Delete the parts of the generation just replaced, and those a crash left long ago.

        Nothing else goes: the parts of a save running at the same time may be about to become
        the head, and deleting them would leave a head without its parts. A head only ever moves
        to a fresh generation, so the replaced one is never needed again.
        """
        now = time.time()
        try:
            keys = [
                str(entity["RowKey"])
                async for entity in table.query_entities(
                    "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
                    parameters={"p": _USERS_PARTITION, "lo": "part-", "hi": "part."},
                    select=["RowKey"],
                )
            ]
        except AzureError as exc:
            raise storage_error(exc, "listing old calendar users state parts") from exc
        stale = [
            (_USERS_PARTITION, key)
            for key in keys
            if (generation := _generation_of(key)) != current
            and (generation == previous or _generation_age(generation, now) > _ORPHAN_SECONDS)
        ]
        await _delete_rows(table, stale, "removing old calendar users state parts")

    async def load(self) -> CalendarUsersState | None:
        """The last refresh stored, or None before the first."""
        table = await self._storage.table(CALENDAR_USERS_TABLE)
        for _ in range(_READ_ATTEMPTS):
            try:
                head = await table.get_entity(_USERS_PARTITION, _HEAD)
            except ResourceNotFoundError:
                return None
            except AzureError as exc:
                raise storage_error(exc, "reading the calendar users state") from exc
            generation = str(head["Generation"])
            try:
                rows = [
                    clean(entity)
                    async for entity in table.query_entities(
                        "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
                        parameters={
                            "p": _USERS_PARTITION,
                            "lo": f"part-{generation}-",
                            "hi": f"part-{generation}.",
                        },
                    )
                ]
            except AzureError as exc:
                raise storage_error(exc, "reading the calendar users state") from exc
            rows.sort(key=lambda row: str(row["RowKey"]))
            document = "".join(str(row.get("Data", "")) for row in rows)
            if len(rows) != _as_int(head["Parts"]) or len(document) != _as_int(head["Length"]):
                continue  # a save replaced this generation between the two reads: read the new one
            content = json.loads(document)
            refreshed_at = _from_utc(head.get("RefreshedAt"))
            return CalendarUsersState(
                refreshed_at=refreshed_at if refreshed_at is not None else _EPOCH,
                synced=list(content.get("synced", [])),
                unmatched=list(content.get("unmatched", [])),
            )
        raise StorageUnavailable("the calendar users state kept changing while being read")
