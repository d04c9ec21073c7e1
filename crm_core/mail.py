"""A mail as Microsoft Graph returns it (`GET /users/{id}/messages/{id}`), as the core reads it.

Graph's JSON is the boundary: fields may be missing (depending on `$select`), `null` (a draft's
subject, a message without body) or new (Graph adds properties); none of that may stop a decision.
Only the fields the capture decision and the activity need are modelled; unknown ones are kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from crm_core.addresses import normalize_address


class _GraphModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class EmailAddress(_GraphModel):
    """Graph's `emailAddress`: a display name and an address, either may be null."""

    name: str | None = None
    address: str | None = None


class Recipient(_GraphModel):
    """Graph's `recipient` (used for `from`, `sender` and the recipient lists)."""

    email_address: EmailAddress | None = Field(default=None, alias="emailAddress")

    @property
    def normalized(self) -> str:
        """The address in the normal form of `crm_core.addresses`, or ``""``."""
        return normalize_address(self.email_address.address if self.email_address else None)


class ItemBody(_GraphModel):
    """Graph's `itemBody`: `contentType` is `text` or `html`."""

    content_type: str | None = Field(default=None, alias="contentType")
    content: str | None = None

    @property
    def is_html(self) -> bool:
        return (self.content_type or "").strip().lower() == "html"


class MessageHeader(_GraphModel):
    """One of `internetMessageHeaders` (Graph returns them only when selected)."""

    name: str | None = None
    value: str | None = None


def _none_to_empty(value: Any) -> Any:
    """A null list is an empty one, and null entries in it are nothing."""
    if value is None:
        return []
    if isinstance(value, list):
        return [item for item in value if item is not None]
    return value


class GraphMessage(_GraphModel):
    """The message fields that the capture decision and the e-mail activity use."""

    odata_type: str | None = Field(default=None, alias="@odata.type")
    id: str | None = None
    internet_message_id: str | None = Field(default=None, alias="internetMessageId")
    conversation_id: str | None = Field(default=None, alias="conversationId")
    subject: str | None = None
    body: ItemBody | None = None
    from_: Recipient | None = Field(default=None, validation_alias=AliasChoices("from", "from_"))
    sender: Recipient | None = None
    to_recipients: list[Recipient] = Field(default_factory=list, alias="toRecipients")
    cc_recipients: list[Recipient] = Field(default_factory=list, alias="ccRecipients")
    bcc_recipients: list[Recipient] = Field(default_factory=list, alias="bccRecipients")
    internet_message_headers: list[MessageHeader] = Field(default_factory=list, alias="internetMessageHeaders")
    received_date_time: str | None = Field(default=None, alias="receivedDateTime")
    sent_date_time: str | None = Field(default=None, alias="sentDateTime")
    has_attachments: bool | None = Field(default=None, alias="hasAttachments")

    _lists = field_validator(
        "to_recipients", "cc_recipients", "bcc_recipients", "internet_message_headers", mode="before"
    )(_none_to_empty)

    @property
    def sender_address(self) -> str:
        """`from`, or `sender` where `from` is missing, normalized; ``""`` when neither has one."""
        if self.from_ is not None and self.from_.normalized:
            return self.from_.normalized
        return self.sender.normalized if self.sender is not None else ""

    def recipient_addresses(self) -> list[str]:
        """To, then Cc, then Bcc, normalized, in address order, empty ones left out."""
        out = []
        for recipient in (*self.to_recipients, *self.cc_recipients, *self.bcc_recipients):
            address = recipient.normalized
            if address:
                out.append(address)
        return out

    def header(self, name: str) -> str | None:
        """The first header of that name (compared case-insensitively), or None."""
        wanted = name.lower()
        for item in self.internet_message_headers:
            if item.name is not None and item.name.strip().lower() == wanted:
                return item.value if item.value is not None else ""
        return None
