"""Builders of Graph-shaped message JSON and of the directory the unit tests decide against."""

from __future__ import annotations

from typing import Any

from crm_core.domain.capture_decision import CaptureRules, ConversationOrder, Decision, decide
from crm_core.domain.directory import Contact, Directory, Order, User
from crm_core.domain.mail import GraphMessage

CRM = "crm@firma.example"
JANA = "jana@firma.example"  # user 1
PETR = "petr@firma.example"  # user 2
NOVAK = "jan.novak@zakaznik.example"  # contact 101, company 11
MALA = "eva.mala@odberatel.example"  # contact 102, company 12
BOTH = "both@partner.example"  # user 3 and contact 103
STRANGER = "someone@unknown.example"

DIRECTORY = Directory(
    users=[User(id=1, email=JANA), User(id=2, email=PETR), User(id=3, email=BOTH)],
    contacts=[
        Contact(id=101, email=NOVAK, company_id=11),
        Contact(id=102, email=MALA, company_id=12),
        Contact(id=103, email=BOTH, company_id=13),
        Contact(id=104, email="no.company@zakaznik.example"),
    ],
    orders=[Order(id=40, number=4), Order(id=70, number=7), Order(id=1200, number=120)],
)
RULES = CaptureRules.build(CRM, ["@newsletter.example", "noreply@firma.example"], ["Order", "Objednávka"])


def recipient(address: str | None, name: str | None = None) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": address}}


def mail(
    sender: str | None = NOVAK,
    to: list[str] | None = None,
    cc: list[str] | None = None,
    bcc: list[str] | None = None,
    subject: str | None = "Hello",
    body: str | None = "Text",
    html: bool = False,
    headers: dict[str, str] | None = None,
    odata_type: str = "#microsoft.graph.message",
    message_id: str = "<m1@example>",
    **extra: Any,
) -> dict[str, Any]:
    """A message as Graph returns it; `to` defaults to [JANA, CRM in CC]."""
    data: dict[str, Any] = {
        "@odata.type": odata_type,
        "internetMessageId": message_id,
        "subject": subject,
        "from": recipient(sender) if sender is not None else None,
        "toRecipients": [recipient(a) for a in (to if to is not None else [JANA])],
        "ccRecipients": [recipient(a) for a in (cc if cc is not None else [CRM])],
        "bccRecipients": [recipient(a) for a in (bcc or [])],
        "body": {"contentType": "html" if html else "text", "content": body},
        "internetMessageHeaders": [{"name": k, "value": v} for k, v in (headers or {}).items()],
    }
    data.update(extra)
    return data


def decide_json(
    data: dict[str, Any],
    directory: Directory = DIRECTORY,
    rules: CaptureRules = RULES,
    conversation_order: ConversationOrder | None = None,
) -> Decision:
    return decide(GraphMessage.model_validate(data), directory, rules, conversation_order=conversation_order)
