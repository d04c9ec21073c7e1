"""The capture decision of docs/DESIGN.md section 3: store this mail as an e-mail activity, or not, and why.

Pure: plain data in, a `Decision` out, no I/O. The reasons it returns are the answer an
administrator gets to "why was this mail (not) stored?", from the same code that decided.
Each skip reason starts with the phrase of the design (`automated`, `excluded sender`,
`sender not in address book`, ...), optionally followed by `: ` and the detail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from crm_core.domain.addresses import Exclusions, local_part, normalize_address
from crm_core.domain.directory import Directory
from crm_core.domain.mail import GraphMessage
from crm_core.domain.orders import OrderParser

Direction = Literal["incoming", "outgoing"]


class Skip(StrEnum):
    """Why a mail is not stored, in the order the rules are applied; the value is the phrase."""

    NOT_A_MAIL = "not a mail"
    AUTOMATED = "automated"
    EXCLUDED_SENDER = "excluded sender"
    INTERNAL = "internal"
    SENDER_UNKNOWN = "sender not in address book"
    NO_USER_RECIPIENT = "no recipient is a user"
    NO_CONTACT_RECIPIENT = "no recipient in address book"


class Decision(BaseModel):
    """The outcome for one mail, with the reasons in the order they were found."""

    model_config = ConfigDict(frozen=True)

    message_id: str | None
    capture: bool
    direction: Direction | None = None
    skip: Skip | None = None
    sender: str = ""
    contact_ids: list[int] = Field(default_factory=list)
    company_ids: list[int] = Field(default_factory=list)
    user_ids: list[int] = Field(default_factory=list)
    order_number: int | None = None
    order_id: int | None = None
    reasons: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CaptureRules:
    """The settings the decision depends on, prepared once per process."""

    crm_address: str
    exclusions: Exclusions
    orders: OrderParser

    @classmethod
    def build(cls, crm_address: str, excluded: Iterable[str], order_keywords: Iterable[str]) -> CaptureRules:
        return cls(normalize_address(crm_address), Exclusions(excluded), OrderParser(order_keywords))


_MEETING_TYPE = "#microsoft.graph.eventmessage"
_BULK_PRECEDENCE = frozenset(("bulk", "junk", "list"))
_DAEMON_LOCAL_PARTS = frozenset(("mailer-daemon", "postmaster"))


def _not_a_mail(message: GraphMessage) -> str | None:
    odata_type = (message.odata_type or "").strip()
    if odata_type.lower().startswith(_MEETING_TYPE):
        return f"{Skip.NOT_A_MAIL}: meeting request or response ({odata_type})"
    return None


def _automated(message: GraphMessage, sender: str) -> str | None:
    auto_submitted = message.header("Auto-Submitted")
    if auto_submitted is not None:
        value = auto_submitted.split(";", 1)[0].strip().lower()
        if value != "no":
            return f"{Skip.AUTOMATED}: Auto-Submitted is {value or 'empty'}"
    precedence = message.header("Precedence")
    if precedence is not None and precedence.strip().lower() in _BULK_PRECEDENCE:
        return f"{Skip.AUTOMATED}: Precedence is {precedence.strip().lower()}"
    content_type = message.header("Content-Type")
    if content_type is not None and content_type.strip().lower().startswith("multipart/report"):
        return f"{Skip.AUTOMATED}: delivery report (multipart/report)"
    if sender and local_part(sender) in _DAEMON_LOCAL_PARTS:
        return f"{Skip.AUTOMATED}: sender is {local_part(sender)}"
    return None


def _skipped(message: GraphMessage, skip: Skip, reason: str, sender: str) -> Decision:
    return Decision(message_id=message.internet_message_id, capture=False, skip=skip, sender=sender, reasons=[reason])


class ConversationOrder(NamedTuple):
    """The order an earlier mail of the same conversation was linked to."""

    number: int
    id: int


def decide(
    message: GraphMessage,
    directory: Directory,
    rules: CaptureRules,
    *,
    conversation_order: ConversationOrder | None = None,
) -> Decision:
    """Apply the rules of docs/DESIGN.md section 3 in their order; the first skip rule that holds wins.

    A captured reply that names no order inherits `conversation_order`, when the caller knows one.
    """
    raw_sender = message.sender_address
    reason = _not_a_mail(message)
    if reason:
        return _skipped(message, Skip.NOT_A_MAIL, reason, raw_sender)
    reason = _automated(message, raw_sender)
    if reason:
        return _skipped(message, Skip.AUTOMATED, reason, raw_sender)
    if raw_sender and raw_sender in rules.exclusions:
        return _skipped(message, Skip.EXCLUDED_SENDER, f"{Skip.EXCLUDED_SENDER}: {raw_sender}", raw_sender)

    # Participants: the CRM mailbox and excluded addresses never count.
    sender = "" if raw_sender == rules.crm_address else raw_sender
    recipients: list[str] = []
    seen = {sender}
    for address in message.recipient_addresses():
        if address not in seen and address != rules.crm_address and address not in rules.exclusions:
            seen.add(address)
            recipients.append(address)

    # An address that is both a user and a contact counts as a user.
    sender_user = directory.user_id(sender) if sender else None
    sender_contacts = directory.contacts(sender) if sender and sender_user is None else ()
    recipient_users: list[int] = []
    recipient_contacts: list[int] = []
    companies: list[int] = []
    all_users = bool(sender or recipients) and (not sender or sender_user is not None)
    for address in recipients:
        user_id = directory.user_id(address)
        if user_id is not None:
            if user_id not in recipient_users:
                recipient_users.append(user_id)
            continue
        all_users = False
        if sender_user is not None:
            for contact in directory.contacts(address):
                if contact.id not in recipient_contacts:
                    recipient_contacts.append(contact.id)
                    if contact.company_id is not None and contact.company_id not in companies:
                        companies.append(contact.company_id)

    if all_users:
        return _skipped(message, Skip.INTERNAL, f"{Skip.INTERNAL}: every participant is a user", raw_sender)

    if sender_contacts and recipient_users:
        direction: Direction = "incoming"
        contact_ids = [contact.id for contact in sender_contacts]
        companies = list(dict.fromkeys(c.company_id for c in sender_contacts if c.company_id is not None))
        user_ids = recipient_users
        reasons = ["incoming: the sender is a contact and a recipient is a user"]
    elif sender_user is not None and recipient_contacts:
        direction = "outgoing"
        contact_ids = recipient_contacts
        user_ids = [sender_user]
        reasons = ["outgoing: the sender is a user and a recipient is a contact"]
    elif sender_contacts:
        return _skipped(message, Skip.NO_USER_RECIPIENT, str(Skip.NO_USER_RECIPIENT), raw_sender)
    elif sender_user is not None:
        return _skipped(message, Skip.NO_CONTACT_RECIPIENT, str(Skip.NO_CONTACT_RECIPIENT), raw_sender)
    else:
        return _skipped(message, Skip.SENDER_UNKNOWN, str(Skip.SENDER_UNKNOWN), raw_sender)

    order_number = order_id = None
    body = message.body
    mention = rules.orders.find(
        message.subject,
        body.content if body is not None else None,
        is_html=body is not None and body.is_html,
    )
    if mention is not None:
        order_number = mention.number
        order_id = directory.order_id(mention.number)
        if order_id is None:
            reasons.append(f"order {order_number} not found")
        else:
            reasons.append(f"order {order_number} named in the {mention.source}")
    elif conversation_order is not None:
        order_number, order_id = conversation_order
        reasons.append(f"order {order_number} inherited from the conversation")
    return Decision(
        message_id=message.internet_message_id,
        capture=True,
        direction=direction,
        sender=raw_sender,
        contact_ids=contact_ids,
        company_ids=companies,
        user_ids=user_ids,
        order_number=order_number,
        order_id=order_id,
        reasons=reasons,
    )
