"""What the service remembers between invocations, as the use cases see it.

The rows themselves live in Table storage (`crm_core.storage`), but their meaning belongs to the
core: the use cases decide on ledger states and claim outcomes and read subscription records
without importing the storage SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class LedgerState(StrEnum):
    CLAIMED = "claimed"
    WRITTEN = "written"
    SKIPPED = "skipped"


class ClaimOutcome(StrEnum):
    """What a worker may do with a mail after trying to claim it."""

    NEW = "new"  # ours; nobody touched it before
    TAKEN_OVER = "taken_over"  # ours, from a worker that died: look NET Genium up before writing
    DONE = "done"  # written or skipped already: nothing to do
    BUSY = "busy"  # another worker holds a live claim: try again later


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One mail's row, as the ledger holds it."""

    message_id: str
    state: LedgerState
    claimed_by: str
    claimed_at: datetime
    attempts: int
    activity_id: int | None = None
    direction: str | None = None
    reasons: tuple[str, ...] = ()
    conversation_id: str | None = None
    order_id: int | None = None
    contact_ids: tuple[int, ...] = ()
    user_ids: tuple[int, ...] = ()
    etag: str | None = None


DEFAULT_LEASE = timedelta(seconds=90)


def claim_outcome(existing: LedgerEntry, worker: str, now: datetime, lease: timedelta) -> ClaimOutcome:
    """The lease rule: what a worker may do with a mail whose row exists already.

    A finished row is done; a live claim of another worker is busy; a claim whose lease ran out
    (its worker died) or the worker's own claim (a retry of its own run) may be taken over. One
    rule for the Table ledger and every fake of it, so that the tests prove what production does.
    """
    if existing.state is not LedgerState.CLAIMED:
        return ClaimOutcome.DONE
    if existing.claimed_by != worker and now - existing.claimed_at < lease:
        return ClaimOutcome.BUSY
    return ClaimOutcome.TAKEN_OVER


def lease_is_free(holder: str, until: datetime | None, taker: str, now: datetime) -> bool:
    """A mailbox lease may be taken when it ended, or when the taker holds it already."""
    return holder == taker or until is None or until <= now


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    entry: LedgerEntry


@dataclass(frozen=True, slots=True)
class Correspondent:
    """Someone who writes to the company and is missing from the address book; never any content."""

    address: str
    count: int
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class PoisonItem:
    """A queue item that failed for good, with the reason of its last failure when one was kept."""

    content: str
    attempts: int  # the attempts it had in its queue, as the failure log counted them
    reason: str | None


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """What we keep of a subscription: what it watches, its secret, until when it lives."""

    id: str
    resource: str
    kind: str  # "mail" (the CRM mailbox) or "events" (a synced user's calendar)
    mailbox: str  # the user whose mail or calendar it watches, as Graph paths name it
    client_state: str
    expires_at: datetime
    created_at: datetime
