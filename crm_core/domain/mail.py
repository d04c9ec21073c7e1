"""A mail as Microsoft Graph returns it (`GET /users/{id}/messages/{id}`), as the core reads it.

Graph's JSON is the boundary: fields may be missing (depending on `$select`), `null` (a draft's
subject, a message without body) or new (Graph adds properties); none of that may stop a decision.
Only the fields the capture decision and the activity need are modelled; unknown ones are kept.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from crm_core.domain.addresses import normalize_address


class _GraphModel(BaseModel):
    # Unknown fields are accepted and dropped: Graph adds properties, the core needs none of them.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class EmailAddress(_GraphModel):
    """Graph's `emailAddress`: a display name and an address, either may be null."""

    name: str | None = None
    address: str | None = None


class Recipient(_GraphModel):
    """Graph's `recipient` (used for `from`, `sender` and the recipient lists)."""

    email_address: EmailAddress | None = Field(default=None, alias="emailAddress")

    @property
    def normalized(self) -> str:
        """The address in the normal form of `crm_core.domain.addresses`, or ``""``."""
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
    # Lists may be null, and so may their entries; no Python validator, for speed.
    to_recipients: list[Recipient | None] | None = Field(default=None, alias="toRecipients")
    cc_recipients: list[Recipient | None] | None = Field(default=None, alias="ccRecipients")
    bcc_recipients: list[Recipient | None] | None = Field(default=None, alias="bccRecipients")
    internet_message_headers: list[MessageHeader | None] | None = Field(default=None, alias="internetMessageHeaders")
    received_date_time: str | None = Field(default=None, alias="receivedDateTime")
    sent_date_time: str | None = Field(default=None, alias="sentDateTime")
    has_attachments: bool | None = Field(default=None, alias="hasAttachments")

    @property
    def sender_address(self) -> str:
        """`from`, or `sender` where `from` is missing, normalized; ``""`` when neither has one."""
        address = self.from_.normalized if self.from_ is not None else ""
        if not address and self.sender is not None:
            address = self.sender.normalized
        return address

    def recipient_addresses(self) -> list[str]:
        """To, then Cc, then Bcc, normalized, in address order, empty ones left out."""
        out = []
        for group in (self.to_recipients, self.cc_recipients, self.bcc_recipients):
            for recipient in group or ():
                address = recipient.normalized if recipient is not None else ""
                if address:
                    out.append(address)
        return out

    def shows_inline_content(self) -> bool:
        """Whether the HTML body shows content carried as inline attachments (`cid:` references).

        Graph's `hasAttachments` is false for a mail whose only attachments are inline (a pasted
        screenshot), so this is what tells that such a mail has files worth asking for.
        """
        body = self.body
        return bool(body and body.is_html and body.content and "cid:" in body.content.lower())

    def header(self, name: str) -> str | None:
        """The first header of that name (compared case-insensitively), or None."""
        wanted = name.lower()
        for item in self.internet_message_headers or ():
            if item is not None and item.name is not None and item.name.strip().lower() == wanted:
                return item.value if item.value is not None else ""
        return None
