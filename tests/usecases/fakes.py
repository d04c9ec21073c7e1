"""In-memory fakes of the ports the use cases name (cosmicpython style: tests drive the use case,
the fakes stand in for Graph, NET Genium and Table storage, and count what was asked of them)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_core.domain.activities import Attachment, EmailActivity
from crm_core.domain.addresses import normalize_address
from crm_core.domain.capture_decision import ConversationOrder, Decision
from crm_core.domain.directory import Contact, Order, User
from crm_core.domain.mail import GraphMessage
from crm_core.domain.state import (
    DEFAULT_LEASE,
    Claim,
    ClaimOutcome,
    LedgerEntry,
    LedgerState,
    SubscriptionRecord,
    claim_outcome,
    lease_is_free,
)
from crm_core.graph.errors import FullResyncNeeded, GraphNotFound
from crm_core.graph.models import DeltaPage, FileAttachment, SubscriptionInfo
from tests.unit.messages import BOTH, JANA, MALA, NOVAK, PETR

# ---- Graph: mail -------------------------------------------------------------------------------


def _received_before(message: GraphMessage, moment: datetime) -> bool:
    received = message.received_date_time
    return bool(received) and datetime.fromisoformat(str(received).replace("Z", "+00:00")) < moment


class FakeMailSource:
    """One mailbox's inbox: messages by Graph id, and a message delta over the order they arrived in.

    A delta link is `delta:<n>`: the round returns what was added after the first n messages.
    `expire_links()` makes every link handed out so far unknown (Graph's 410 on a dead sync state).
    Mails added with `in_delta=False` (another folder) are only readable by id.
    """

    def __init__(self, mailbox: str) -> None:
        self.mailbox = mailbox
        self.messages: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, list[FileAttachment]] = {}
        self._arrived: list[tuple[str, bool]] = []  # (Graph id, arrives as a bare id)
        self._expired_before = 0
        self.calls: Counter[str] = Counter()
        self.delta_links_asked: list[str | None] = []
        self.delta_running = 0
        self.delta_overlap = 0
        self.delta_error: Exception | None = None  # raised by the next delta page, once
        self.received_since_asked: list[datetime | None] = []
        self.page_size = 200
        self.shuffle: random.Random | None = None  # Graph promises no order within a page

    def add(
        self, data: dict[str, Any], graph_id: str, *, files: Iterable[FileAttachment] = (), in_delta: bool = True
    ) -> GraphMessage:
        data = {**data, "id": graph_id}
        files = list(files)
        if files:
            # As Graph: `hasAttachments` is false when every attachment is inline.
            data["hasAttachments"] = any(not f.is_inline for f in files)
            self.attachments[graph_id] = files
        self.messages[graph_id] = data
        if in_delta:
            self._arrived.append((graph_id, False))
        return GraphMessage.model_validate(data)

    def expire_links(self) -> None:
        self._expired_before = len(self._arrived) + 1

    @property
    def graph_requests(self) -> int:
        return sum(self.calls.values())

    def _check(self, mailbox: str) -> None:
        assert mailbox.lower() == self.mailbox.lower(), f"asked for mailbox {mailbox}"

    async def get_message(self, mailbox: str, message_id: str) -> GraphMessage:
        self._check(mailbox)
        self.calls["get_message"] += 1
        if message_id not in self.messages:
            raise GraphNotFound(f"message {message_id} not found", status=404)
        return GraphMessage.model_validate(self.messages[message_id])

    async def list_file_attachments(
        self, mailbox: str, message_id: str, *, max_bytes: int | None = None
    ) -> Sequence[FileAttachment]:
        self._check(mailbox)
        self.calls["list_file_attachments"] += 1
        out = []
        for file in self.attachments.get(message_id, []):
            if max_bytes is not None and file.size > max_bytes:
                file = file.model_copy(update={"content": None})  # as the adapter: too big, not fetched
            out.append(file)
        return out

    async def message_delta_page(
        self,
        mailbox: str,
        folder: str = "inbox",
        link: str | None = None,
        *,
        received_since: datetime | None = None,
        page_size: int | None = None,
    ) -> DeltaPage:
        """A page of the round: `page:<pos>:<end>` continues a round over arrivals [pos, end),
        `delta:<n>` starts the round of what arrived after the first n. Pages come shuffled when
        `shuffle` is set; `update()` makes an arrival that comes back as a bare id (a hint)."""
        self._check(mailbox)
        assert folder == "inbox"
        self.calls["message_delta_page"] += 1
        self.delta_links_asked.append(link)
        self.received_since_asked.append(received_since)
        self.delta_running += 1
        self.delta_overlap = max(self.delta_overlap, self.delta_running)
        try:
            await asyncio.sleep(0)  # a real round awaits I/O: let a concurrent caller in, if it can get in
            if self.delta_error is not None:
                error, self.delta_error = self.delta_error, None
                raise error
            size = page_size or self.page_size
            if link is None:
                position, end = 0, len(self._arrived)
            elif link.startswith("delta:"):
                position, end = int(link.removeprefix("delta:")), len(self._arrived)
            else:
                _, first, last = link.split(":")
                position, end = int(first), int(last)
            if link is not None and position < self._expired_before:
                raise FullResyncNeeded("sync state not found", status=410, code="syncStateNotFound")
            chunk = self._arrived[position : min(end, position + size)]
            messages: list[GraphMessage] = []
            hints: list[str] = []
            for graph_id, partial in chunk:
                if partial:
                    hints.append(graph_id)
                    continue
                message = GraphMessage.model_validate(self.messages[graph_id])
                if link is None and received_since is not None and _received_before(message, received_since):
                    continue
                messages.append(message)
            if self.shuffle is not None:
                self.shuffle.shuffle(messages)
            following = position + len(chunk)
            more = following < end
            return DeltaPage(
                messages=messages,
                hints=hints,
                next_link=f"page:{following}:{end}" if more else None,
                delta_link=None if more else f"delta:{end}",
            )
        finally:
            self.delta_running -= 1

    def update(self, graph_id: str) -> None:
        """A change to a stored mail (a read flag): the next round returns it as a bare id."""
        self._arrived.append((graph_id, True))


def file(name: str, content: bytes, *, inline: bool = False, content_type: str = "application/pdf") -> FileAttachment:
    return FileAttachment(
        id=f"att-{name}", name=name, content_type=content_type, size=len(content), is_inline=inline, content=content
    )


# ---- NET Genium ---------------------------------------------------------------------------------

USERS = [User(id=1, email=JANA), User(id=2, email=PETR), User(id=3, email=BOTH)]
CONTACTS = [
    Contact(id=101, email=NOVAK, company_id=11),
    Contact(id=102, email=MALA, company_id=12),
    Contact(id=103, email=BOTH, company_id=13),
]
ORDERS = [Order(id=40, number=4), Order(id=70, number=7)]


@dataclass
class Failure:
    """Make one NET Genium operation fail `times` times (for one message id, or for any call)."""

    operation: str
    error: Exception
    message_id: str | None = None
    times: int = 1


@dataclass
class StoredActivity:
    id: int
    activity: EmailActivity
    attachments: list[Attachment]


class FakeActivityStore:
    """NET Genium's records as capture reads and writes them; every call is counted."""

    def __init__(self) -> None:
        self.users = list(USERS)
        self.contacts = list(CONTACTS)
        self.orders = list(ORDERS)
        self.activities: dict[int, StoredActivity] = {}
        self.calls: Counter[str] = Counter()
        self.contact_queries: list[list[str]] = []
        self.order_queries: list[int] = []
        self.failures: list[Failure] = []
        self._next_id = 5000

    def fail(self, operation: str, error: Exception, *, message_id: str | None = None, times: int = 1) -> None:
        self.failures.append(Failure(operation, error, message_id, times))

    def _maybe_fail(self, operation: str, message_id: str | None = None) -> None:
        for failure in self.failures:
            if failure.operation != operation or failure.times <= 0:
                continue
            if failure.message_id is not None and failure.message_id != message_id:
                continue
            failure.times -= 1
            raise failure.error

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    def activities_for(self, message_id: str) -> list[StoredActivity]:
        return [a for a in self.activities.values() if a.activity.message_id == message_id]

    def seed_activity(self, activity: EmailActivity) -> int:
        """An activity written by someone else (a worker that died before recording it)."""
        self._next_id += 1
        self.activities[self._next_id] = StoredActivity(self._next_id, activity, [])
        return self._next_id

    async def list_users(self) -> Sequence[User]:
        self.calls["list_users"] += 1
        self._maybe_fail("list_users")
        return list(self.users)

    async def find_contacts_by_emails(self, emails: Iterable[str]) -> Sequence[Contact]:
        wanted = [normalize_address(e) for e in emails]
        self.calls["find_contacts_by_emails"] += 1
        self.contact_queries.append(wanted)
        self._maybe_fail("find_contacts_by_emails")
        return [c for c in self.contacts if normalize_address(c.email) in wanted]

    async def find_order_by_number(self, number: int) -> Order | None:
        self.calls["find_order_by_number"] += 1
        self.order_queries.append(number)
        self._maybe_fail("find_order_by_number")
        return next((o for o in self.orders if o.number == number), None)

    async def find_activity_by_message_id(self, message_id: str) -> int | None:
        self.calls["find_activity_by_message_id"] += 1
        self._maybe_fail("find_activity_by_message_id", message_id)
        found = self.activities_for(message_id)
        return found[0].id if found else None

    async def create_email_activity(self, activity: EmailActivity, attachments: Sequence[Attachment] = ()) -> int:
        self.calls["create_email_activity"] += 1
        self._maybe_fail("create_email_activity", activity.message_id)
        self._next_id += 1
        self.activities[self._next_id] = StoredActivity(self._next_id, activity, list(attachments))
        return self._next_id

    async def link_conversation_activities(self, conversation_id: str, order_id: int) -> list[int]:
        self.calls["link_conversation_activities"] += 1
        self._maybe_fail("link_conversation_activities")
        linked = []
        for stored in self.activities.values():
            if stored.activity.conversation_id == conversation_id and stored.activity.order_id is None:
                stored.activity = stored.activity.model_copy(update={"order_id": order_id})
                linked.append(stored.id)
        return linked

    async def add_missing_attachments(self, activity_id: int, attachments: Sequence[Attachment]) -> None:
        self.calls["add_missing_attachments"] += 1
        self._maybe_fail("add_missing_attachments", self.activities[activity_id].activity.message_id)
        stored = self.activities[activity_id].attachments
        names = {a.filename.lower() for a in stored}
        stored.extend(a for a in attachments if a.filename.lower() not in names)


def activity_for(message_id: str) -> EmailActivity:
    return EmailActivity(direction="incoming", date=datetime(2024, 5, 1, tzinfo=UTC), message_id=message_id)


# ---- Table storage: ledger, correspondents, cursors, subscriptions ----------------------------


class FakeLedger:
    """CaptureLedger's semantics in memory: insert-if-absent claims, takeover after the lease or by
    the same worker, completion, and the order each conversation is linked to."""

    def __init__(self, *, lease: timedelta = DEFAULT_LEASE) -> None:
        self._lease = lease
        self.rows: dict[str, LedgerEntry] = {}
        self.conversations: dict[str, ConversationOrder] = {}
        self.unlinked: set[str] = set()
        self.calls: Counter[str] = Counter()

    async def get(self, message_id: str) -> LedgerEntry | None:
        return self.rows.get(message_id.strip())

    async def claim(self, message_id: str, worker: str, *, now: datetime | None = None) -> Claim:
        self.calls["claim"] += 1
        now = now or datetime.now(UTC)
        key = message_id.strip()
        fresh = LedgerEntry(key, LedgerState.CLAIMED, worker, now, 1)
        existing = self.rows.get(key)
        if existing is None:
            self.rows[key] = fresh
            return Claim(ClaimOutcome.NEW, fresh)
        outcome = claim_outcome(existing, worker, now, self._lease)
        if outcome is not ClaimOutcome.TAKEN_OVER:
            return Claim(outcome, existing)
        taken = replace(fresh, attempts=existing.attempts + 1)
        self.rows[key] = taken
        return Claim(ClaimOutcome.TAKEN_OVER, taken)

    async def complete(self, claim: LedgerEntry, decision: Decision, activity_id: int | None) -> None:
        self.calls["complete"] += 1
        self.rows[claim.message_id] = replace(
            claim,
            state=LedgerState.WRITTEN if activity_id is not None else LedgerState.SKIPPED,
            activity_id=activity_id,
            direction=decision.direction,
            reasons=tuple(decision.reasons),
            order_id=decision.order_id,
            etag=None,
        )

    async def conversation_order(self, conversation_id: str) -> ConversationOrder | None:
        self.calls["conversation_order"] += 1
        return self.conversations.get(conversation_id)

    async def link_conversation(self, conversation_id: str, order: ConversationOrder) -> bool:
        self.calls["link_conversation"] += 1
        self.conversations[conversation_id] = order
        return conversation_id in self.unlinked

    async def clear_unlinked(self, conversation_id: str) -> None:
        self.calls["clear_unlinked"] += 1
        self.unlinked.discard(conversation_id)

    async def mark_unlinked(self, conversation_id: str) -> ConversationOrder | None:
        self.calls["mark_unlinked"] += 1
        self.unlinked.add(conversation_id)
        return self.conversations.get(conversation_id)

    async def entries(self) -> list[LedgerEntry]:
        return list(self.rows.values())


class FlakyLedger:
    """Wraps a ledger; `complete` fails the first `fail_completes` times (a worker dying after the
    NET Genium write and before the ledger update)."""

    def __init__(self, inner: Any, error: Exception, *, fail_completes: int = 1) -> None:
        self._inner = inner
        self._error = error
        self.fail_completes = fail_completes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def complete(self, claim: LedgerEntry, decision: Decision, activity_id: int | None) -> None:
        if self.fail_completes > 0:
            self.fail_completes -= 1
            raise self._error
        await self._inner.complete(claim, decision, activity_id)


class FakeCorrespondents:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    async def record(self, address: str) -> None:
        if address:  # as UnmatchedCorrespondents: an empty address is not counted
            self.counts[address] += 1


class FakeCursors:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.cleared: list[str] = []

    async def get(self, name: str) -> str | None:
        return self.values.get(name)

    async def set(self, name: str, value: str) -> None:
        self.values[name] = value

    async def clear(self, name: str) -> None:
        self.cleared.append(name)
        self.values.pop(name, None)


class FakeSubscriptionRecords:
    def __init__(self, records: Iterable[SubscriptionRecord] = ()) -> None:
        self.rows = {r.id: r for r in records}

    async def save(self, record: SubscriptionRecord) -> None:
        self.rows[record.id] = record

    async def get(self, subscription_id: str) -> SubscriptionRecord | None:
        return self.rows.get(subscription_id)

    async def all(self) -> list[SubscriptionRecord]:
        return list(self.rows.values())

    async def delete(self, subscription_id: str) -> None:
        self.rows.pop(subscription_id, None)


# ---- Graph: subscriptions ----------------------------------------------------------------------


@dataclass
class GraphSubscription:
    id: str
    resource: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str
    change_type: str
    expires_at: datetime


@dataclass
class FakeSubscriptionApi:
    """Graph's subscription endpoints over a dict; `clock` is Graph's idea of now."""

    clock: Callable[[], datetime]
    live: dict[str, GraphSubscription] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    refuse_reauthorize: bool = False
    refuse_renewal: bool = False
    _next: int = 0

    def _alive(self, subscription_id: str) -> GraphSubscription:
        sub = self.live.get(subscription_id)
        if sub is None or sub.expires_at <= self.clock():
            self.live.pop(subscription_id, None)
            raise GraphNotFound(f"subscription {subscription_id} not found", status=404)
        return sub

    @staticmethod
    def _info(sub: GraphSubscription) -> SubscriptionInfo:
        return SubscriptionInfo.model_validate(
            {
                "id": sub.id,
                "resource": sub.resource,
                "changeType": sub.change_type,
                "notificationUrl": sub.notification_url,
                "lifecycleNotificationUrl": sub.lifecycle_url,
                "expirationDateTime": sub.expires_at,
            }
        )

    async def list_subscriptions(self) -> list[SubscriptionInfo]:
        self.calls["list"] += 1
        now = self.clock()
        return [self._info(sub) for sub in self.live.values() if sub.expires_at > now]

    async def create_subscription(
        self,
        *,
        resource: str,
        notification_url: str,
        lifecycle_notification_url: str | None,
        client_state: str,
        expiration: datetime,
        change_type: str = "created",
    ) -> SubscriptionInfo:
        self.calls["create"] += 1
        self._next += 1
        sub = GraphSubscription(
            f"sub-{self._next}",
            resource,
            notification_url,
            lifecycle_notification_url,
            client_state,
            change_type,
            expiration,
        )
        self.live[sub.id] = sub
        return self._info(sub)

    async def renew_subscription(self, subscription_id: str, expiration: datetime) -> SubscriptionInfo:
        self.calls["renew"] += 1
        sub = self._alive(subscription_id)
        if self.refuse_renewal:
            raise GraphNotFound("renewal refused", status=404)
        sub.expires_at = expiration
        return self._info(sub)

    async def reauthorize_subscription(self, subscription_id: str) -> None:
        self.calls["reauthorize"] += 1
        self._alive(subscription_id)
        if self.refuse_reauthorize:
            raise GraphNotFound("reauthorize refused", status=404)

    async def delete_subscription(self, subscription_id: str) -> bool:
        self.calls["delete"] += 1
        return self.live.pop(subscription_id, None) is not None


def notification_body(*items: dict[str, Any]) -> bytes:
    return json.dumps({"value": list(items)}).encode()


class FakeLeases:
    """MailboxLeases in memory, with the same rule (`lease_is_free`) the Table leases use."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[str, datetime]] = {}

    async def acquire(self, mailbox: str, holder: str, seconds: float) -> bool:
        now = datetime.now(UTC)
        current = self.held.get(mailbox.lower())
        if current is not None and not lease_is_free(current[0], current[1], holder, now):
            return False
        self.held[mailbox.lower()] = (holder, now + timedelta(seconds=seconds))
        return True

    async def release(self, mailbox: str, holder: str) -> None:
        current = self.held.get(mailbox.lower())
        if current is not None and current[0] == holder:
            del self.held[mailbox.lower()]
