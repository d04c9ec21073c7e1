"""The mail capture use case: one mail of the CRM mailbox becomes at most one e-mail activity.

Order of work, chosen so that nothing is lost and nothing doubled:
1. claim the mail in the ledger (insert-if-absent on its Internet Message-ID);
2. look up only what this mail needs in NET Genium (its addresses, unless its delta page's were
   looked up together; the order it names);
3. decide with the pure core; skipped mail is recorded with its reasons;
4. a takeover of a dead worker's claim first asks NET Genium whether the activity exists, and if
   so stores the files it lacks;
5. write the activity with its attachments, then complete the ledger row (linking the
   conversation's order both ways in time).
A crash anywhere leaves either no activity and a claim that expires, or an activity that step 4
finds. Errors that a retry can cure propagate (the queue retries, then the poison queue).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from crm_core.domain.activities import Attachment, EmailActivity
from crm_core.domain.addresses import normalize_address
from crm_core.domain.capture_decision import CaptureRules, ConversationOrder, Decision, Skip, decide
from crm_core.domain.directory import ContactRecord, Directory, OrderRecord, PageContacts, UserRecord
from crm_core.domain.email_content import DEFAULT_MAX_BODY_CHARS, EmailContent, email_content
from crm_core.domain.errors import ServiceUnavailable
from crm_core.domain.mail import GraphMessage
from crm_core.domain.state import Claim, ClaimOutcome, LedgerEntry
from crm_core.usecases import observability
from crm_core.usecases.observability import NO_TELEMETRY, Telemetry

T = TypeVar("T")

log = logging.getLogger("crm_core.capture")

_ORDER_CACHE = 10_000


class MailFile(Protocol):
    """A file attachment as the mail source hands it over (content None: over the size limit)."""

    @property
    def name(self) -> str: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def is_inline(self) -> bool: ...
    @property
    def content(self) -> bytes | None: ...


class MailSource(Protocol):
    """Microsoft Graph, as far as capture reads it."""

    async def get_message(self, mailbox: str, message_id: str) -> GraphMessage: ...

    async def list_file_attachments(
        self, mailbox: str, message_id: str, *, max_bytes: int | None = None
    ) -> Sequence[MailFile]: ...


class ActivityStore(Protocol):
    """NET Genium, as far as capture reads and writes it."""

    async def list_users(self) -> Sequence[UserRecord]: ...
    async def find_contacts_by_emails(self, emails: Iterable[str]) -> Sequence[ContactRecord]: ...
    async def find_order_by_number(self, number: int) -> OrderRecord | None: ...
    async def find_activity_by_message_id(self, message_id: str) -> int | None: ...
    async def create_email_activity(self, activity: EmailActivity, attachments: Sequence[Attachment] = ()) -> int: ...
    async def add_missing_attachments(self, activity_id: int, attachments: Sequence[Attachment]) -> None: ...
    async def link_conversation_activities(self, conversation_id: str, order_id: int) -> list[int]: ...


class Ledger(Protocol):
    """The capture ledger (Table storage)."""

    async def claim(self, message_id: str, worker: str) -> Claim: ...
    async def complete(self, claim: LedgerEntry, decision: Decision, activity_id: int | None) -> None: ...
    async def conversation_order(self, conversation_id: str) -> ConversationOrder | None: ...
    async def link_conversation(self, conversation_id: str, order: ConversationOrder) -> bool: ...
    async def mark_unlinked(self, conversation_id: str) -> ConversationOrder | None: ...
    async def clear_unlinked(self, conversation_id: str) -> None: ...


class Correspondents(Protocol):
    async def record(self, address: str) -> None: ...


class CaptureBusy(ServiceUnavailable):
    """Another worker holds a live claim on this mail: try again after it finished or expired."""


class Outcome(StrEnum):
    WRITTEN = "written"  # a new activity
    FOUND = "found"  # the activity existed already (a dead worker wrote it)
    SKIPPED = "skipped"  # not a customer mail: recorded with its reasons
    DUPLICATE = "duplicate"  # the ledger had it: nothing done


@dataclass(frozen=True, slots=True)
class CaptureResult:
    message_id: str
    outcome: Outcome
    activity_id: int | None
    decision: Decision | None


@dataclass(frozen=True, slots=True)
class CaptureOptions:
    """Limits of what is stored, from the app settings."""

    max_attachment_bytes: int = 10 * 1024 * 1024
    include_inline_attachments: bool = False
    max_body_chars: int = DEFAULT_MAX_BODY_CHARS
    users_cache_seconds: float = 300.0
    # Turning one body into stored content may take this long before the HTML is left out; with
    # flattened nesting the worst 1 MB body takes well under a second, so this is a safety net.
    content_seconds: float = 10.0


# Bodies larger than this are decided and converted off the event loop (`CpuWork`: a worker process
# in production), so that the loop, which also answers Graph's webhook, never waits on one mail's markup.
_OFF_LOOP_BODY_CHARS = 32 * 1024


class CpuWork(Protocol):
    """Where large bodies are decided and converted: off the event loop, within a time budget."""

    async def run(self, call: Callable[[], T], *, budget: float | None = None) -> T: ...
    def close(self) -> None: ...


class ThreadWork:
    """A worker thread: keeps the loop free of waiting, not of the GIL (the runtime uses a process)."""

    async def run(self, call: Callable[[], T], *, budget: float | None = None) -> T:
        return await asyncio.wait_for(asyncio.to_thread(call), budget)

    def close(self) -> None:
        """Nothing to stop: the threads belong to the event loop's default executor."""


def _large(message: GraphMessage) -> bool:
    return bool(message.body and message.body.content and len(message.body.content) > _OFF_LOOP_BODY_CHARS)


def ledger_id(message: GraphMessage) -> str:
    """The ledger key of a mail: its Internet Message-ID, or Graph's immutable id when it has none."""
    if message.internet_message_id and message.internet_message_id.strip():
        return message.internet_message_id.strip()
    return f"graph-id:{message.id}"


class MailCapture:
    """Captures mails of one CRM mailbox; one instance per process (it caches the user list)."""

    def __init__(
        self,
        mail: MailSource,
        crm: ActivityStore,
        ledger: Ledger,
        correspondents: Correspondents,
        rules: CaptureRules,
        *,
        worker: str,
        options: CaptureOptions | None = None,
        cpu: CpuWork | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._mail = mail
        self._crm = crm
        self._ledger = ledger
        self._correspondents = correspondents
        self._rules = rules
        self._worker = worker
        self._options = options or CaptureOptions()
        self._cpu: CpuWork = cpu or ThreadWork()
        self._telemetry: Telemetry = telemetry or NO_TELEMETRY
        self._users: Sequence[UserRecord] = ()
        self._users_at = float("-inf")
        self._users_lock = asyncio.Lock()
        # Orders found by number: an order keeps its number, and replies name the same one again.
        # Only hits are kept: an order that is not there yet may be created any minute.
        self._orders: OrderedDict[int, OrderRecord] = OrderedDict()

    def close(self) -> None:
        """Stop the worker process of large bodies, if one was started."""
        self._cpu.close()

    async def capture_by_id(self, mailbox: str, message_id: str) -> CaptureResult:
        """Capture a mail that a change notification named (one Graph read)."""
        return await self.capture(mailbox, await self._mail.get_message(mailbox, message_id))

    async def contacts_for(self, messages: Sequence[GraphMessage]) -> PageContacts:
        """The contacts of a whole page's mails in one lookup, instead of one lookup per mail."""
        users = await self._user_list()
        user_addresses = {normalize_address(u.email) for u in users}
        addresses: set[str] = set()
        for message in messages:
            addresses |= self._participants(message)
        asked = addresses - user_addresses
        found = await self._crm.find_contacts_by_emails(sorted(asked)) if asked else ()
        by_address: dict[str, list[ContactRecord]] = {}
        for contact in found:
            by_address.setdefault(normalize_address(contact.email), []).append(contact)
        return PageContacts(frozenset(asked | user_addresses), by_address)

    async def decision(self, message: GraphMessage, *, contacts: PageContacts | None = None) -> Decision:
        """What `capture` would decide for this mail, with nothing claimed or written (a dry run)."""
        return await self._decide(message, contacts)

    def _participants(self, message: GraphMessage) -> set[str]:
        """The addresses the decision looks up: everyone but the CRM mailbox and the exclusions."""
        addresses = {message.sender_address, *message.recipient_addresses()}
        addresses -= {"", self._rules.crm_address}
        return {a for a in addresses if a not in self._rules.exclusions}

    async def capture(
        self, mailbox: str, message: GraphMessage, *, contacts: PageContacts | None = None
    ) -> CaptureResult:
        """Capture a mail already read from Graph (from a notification or a delta page); `contacts`
        are its page's, looked up together (`contacts_for`)."""
        with self._telemetry.span(observability.SPAN_CAPTURE, {observability.MESSAGE_ID: ledger_id(message)}) as span:
            try:
                result = await self._capture(mailbox, message, contacts)
            except CaptureBusy:
                span.set(observability.DECISION, "busy")
                raise
            except Exception as exc:
                span.set(observability.DECISION, "failed")
                self._telemetry.count(observability.FAILED, 1, {"crm.error": type(exc).__name__})
                raise
            observability.record_capture(self._telemetry, span, result.outcome.value, result.decision)
            return result

    async def _capture(self, mailbox: str, message: GraphMessage, contacts: PageContacts | None) -> CaptureResult:
        key = ledger_id(message)
        claim = await self._ledger.claim(key, self._worker)
        if claim.outcome is ClaimOutcome.DONE:
            log.info("capture: already in the ledger", extra={"message_id": key, "outcome": "duplicate"})
            return CaptureResult(key, Outcome.DUPLICATE, claim.entry.activity_id, None)
        if claim.outcome is ClaimOutcome.BUSY:
            raise CaptureBusy(f"message {key} is being captured by {claim.entry.claimed_by}")

        decision = await self._decide(message, contacts)
        if not decision.capture:
            if (
                decision.skip is Skip.SENDER_UNKNOWN
                and claim.outcome is ClaimOutcome.NEW
                and decision.sender
                and decision.sender != self._rules.crm_address  # the CRM mailbox is no correspondent
            ):
                await self._correspondents.record(decision.sender)
            await self._ledger.complete(claim.entry, decision, None)
            log.info(
                "capture: skipped",
                extra={"message_id": key, "outcome": "skipped", "reason": decision.reasons[0]},
            )
            return CaptureResult(key, Outcome.SKIPPED, None, decision)

        if claim.outcome is ClaimOutcome.TAKEN_OVER:
            existing = await self._crm.find_activity_by_message_id(key)
            if existing is not None:
                # The worker before us wrote the activity and may have died (or been refused) before
                # its files were all stored: finish its write, then complete the row.
                attachments, _ = await self._attachments(mailbox, message)
                if attachments:
                    await self._crm.add_missing_attachments(existing, attachments)
                await self._finish(claim.entry, message, decision, existing)
                log.info("capture: found written", extra={"message_id": key, "activity_id": existing})
                return CaptureResult(key, Outcome.FOUND, existing, decision)

        attachments, too_large = await self._attachments(mailbox, message)
        notes = [
            f"[CRMService: attachment {name} was not stored: over {self._options.max_attachment_bytes} bytes]"
            for name in too_large
        ]
        content = await self._content(message, decision, notes)
        activity = EmailActivity(
            subject=content.subject,
            body_text=content.body_text,
            body_html=content.body_html,
            direction=decision.direction or "incoming",
            date=content.sent_at,
            message_id=key,
            conversation_id=message.conversation_id,
            contact_id=decision.contact_ids[0] if decision.contact_ids else None,
            company_id=decision.company_ids[0] if decision.company_ids else None,
            user_id=decision.user_ids[0] if decision.user_ids else None,
            order_id=decision.order_id,
        )
        activity_id = await self._crm.create_email_activity(activity, attachments)
        await self._finish(claim.entry, message, decision, activity_id)
        log.info(
            "capture: written",
            extra={
                "message_id": key,
                "outcome": "written",
                "activity_id": activity_id,
                "direction": decision.direction,
            },
        )
        return CaptureResult(key, Outcome.WRITTEN, activity_id, decision)

    async def _finish(self, entry: LedgerEntry, message: GraphMessage, decision: Decision, activity_id: int) -> None:
        """Complete the ledger row, after linking the conversation both ways in time.

        Delta items come in no particular order, so a reply may be stored before the mail that
        names its order (they sit on different pages). Such a reply (it has `In-Reply-To`) marks
        its conversation; the mail naming the order then links every stored activity of the
        conversation that has none, and a reply marked after that takes the order at once.
        """
        conversation = message.conversation_id
        if conversation and decision.order_id is not None and decision.order_number is not None:
            order = ConversationOrder(decision.order_number, decision.order_id)
            if await self._ledger.link_conversation(conversation, order):
                linked = await self._crm.link_conversation_activities(conversation, order.id)
                await self._ledger.clear_unlinked(conversation)
                log.info(
                    "capture: earlier replies linked to the order",
                    extra={"activity_ids": linked[:20], "order_id": order.id},
                )
        elif conversation and decision.order_id is None and message.header("In-Reply-To"):
            linked_meanwhile = await self._ledger.mark_unlinked(conversation)
            if linked_meanwhile is not None:
                await self._crm.link_conversation_activities(conversation, linked_meanwhile.id)
        await self._ledger.complete(entry, decision, activity_id)

    async def _content(self, message: GraphMessage, decision: Decision, notes: Sequence[str]) -> EmailContent:
        """The stored content, computed off the event loop for a large body and within a time budget:
        past it the mail is stored with its text body and a note instead of its HTML."""
        convert = functools.partial(
            email_content,
            message,
            direction=decision.direction,
            max_body_chars=self._options.max_body_chars,
            notes=notes,
        )
        if not _large(message):
            return convert()
        try:
            return await self._cpu.run(convert, budget=self._options.content_seconds)
        except TimeoutError:
            log.warning(
                "capture: HTML body over the time budget, stored as text",
                extra={"message_id": ledger_id(message), "budget_s": self._options.content_seconds},
            )
            why = f"sanitizing it took over {self._options.content_seconds:g} s"
            return await self._cpu.run(functools.partial(convert, html_omitted=why))

    async def _decide_now(
        self, message: GraphMessage, directory: Directory, order: ConversationOrder | None = None
    ) -> Decision:
        """The pure decision, in a worker thread when the body is large (its HTML is converted to text)."""
        call = functools.partial(decide, message, directory, self._rules, conversation_order=order)
        return await self._cpu.run(call) if _large(message) else call()

    async def _decide(self, message: GraphMessage, page: PageContacts | None = None) -> Decision:
        """Decide with a directory of just this mail's people, then add the order if one is named."""
        users = await self._user_list()
        addresses = self._participants(message)
        contacts = page.lookup(addresses) if page is not None else None
        if contacts is None:
            contacts = list(await self._crm.find_contacts_by_emails(sorted(addresses))) if addresses else []
        directory = Directory(users=users, contacts=contacts)
        decision = await self._decide_now(message, directory)
        if not decision.capture:
            return decision
        if decision.order_number is not None:
            order = await self._order(decision.order_number)
            if order is None:
                return decision
            directory.add_order(order)
            return await self._decide_now(message, directory)
        if message.conversation_id:
            inherited = await self._ledger.conversation_order(message.conversation_id)
            if inherited is not None:
                return await self._decide_now(message, directory, inherited)
        return decision

    async def _order(self, number: int) -> OrderRecord | None:
        order = self._orders.get(number)
        if order is None:
            order = await self._crm.find_order_by_number(number)
            if order is None:
                return None
            self._orders[number] = order
            while len(self._orders) > _ORDER_CACHE:
                self._orders.popitem(last=False)
        self._orders.move_to_end(number)
        return order

    async def _user_list(self) -> Sequence[UserRecord]:
        """All NET Genium users, cached: they are few and change rarely, and a lookup per mail would
        double the requests NET Genium serves."""
        async with self._users_lock:  # concurrent captures share one refresh
            if time.monotonic() - self._users_at > self._options.users_cache_seconds:
                self._users = await self._crm.list_users()
                self._users_at = time.monotonic()
        return self._users

    async def _attachments(self, mailbox: str, message: GraphMessage) -> tuple[list[Attachment], list[str]]:
        """The files to store, and the names of those over the size limit (the activity says so)."""
        inline_wanted = self._options.include_inline_attachments and message.shows_inline_content()
        if not (message.has_attachments or inline_wanted) or not message.id:
            return [], []
        files = await self._mail.list_file_attachments(
            mailbox, message.id, max_bytes=self._options.max_attachment_bytes
        )
        out, too_large = [], []
        for file in files:
            if file.is_inline and not self._options.include_inline_attachments:
                continue
            if file.content is None:
                too_large.append(file.name)
                continue
            out.append(Attachment(filename=file.name, content=file.content, content_type=file.content_type))
        return out, too_large
