"""Turn a raw RFC 822 message into the Graph JSON of a received message.

Exchange does this conversion when mail arrives; the emulator uses Python's `email` package so that
a test can drop in a real `.eml` file (with its headers, HTML body and attachments) and read it back
through Graph exactly as the product will.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
from email.message import EmailMessage, MIMEPart
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any


def _recipients(value: str | None) -> list[dict[str, Any]]:
    if not value:
        return []
    out = []
    for name, address in getaddresses([value]):
        if address:
            out.append({"emailAddress": {"name": name or address, "address": address}})
    return out


def _conversation_id(message: EmailMessage) -> str:
    # Exchange threads by the first message of the conversation; the root of References (or
    # In-Reply-To, or the message itself) gives the same id for every reply.
    references = str(message.get("References", "") or "").split()
    root = (references[0] if references else "") or str(message.get("In-Reply-To", "") or "").strip()
    root = root or str(message.get("Message-ID", "") or "")
    digest = hashlib.sha256(root.encode()).digest()[:24]
    return "AAQkA" + base64.urlsafe_b64encode(digest).decode()


def _text_of(part: MIMEPart) -> str:
    """A text part's content; Exchange shows a part in an unknown or wrong charset rather than
    refusing the mail, so undecodable bytes become U+FFFD instead of an error."""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        return data.decode("utf-8", errors="replace")


def rfc822_to_graph(raw: bytes) -> dict[str, Any]:
    """The message as Graph shows it: addresses, subject, body (HTML preferred), headers, files."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body_part = message.get_body(preferencelist=("html", "plain"))
    if body_part is not None:
        content = _text_of(body_part)
        content_type = "html" if body_part.get_content_subtype() == "html" else "text"
    else:
        content, content_type = "", "text"
    attachments = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        if not isinstance(payload, bytes):
            continue
        disposition = (part.get_content_disposition() or "").lower()
        content_id = str(part.get("Content-ID", "") or "").strip("<> ") or None
        attachments.append(
            {
                "name": part.get_filename() or "attachment",
                "contentType": part.get_content_type(),
                "contentBytes": base64.b64encode(payload).decode(),
                "isInline": disposition == "inline" or content_id is not None,
                "contentId": content_id,
            }
        )
    headers = [{"name": str(name), "value": str(value)} for name, value in message.items()]
    sent = None
    if message.get("Date"):
        try:
            sent = parsedate_to_datetime(str(message["Date"])).isoformat().replace("+00:00", "Z")
        except (TypeError, ValueError):
            sent = None
    senders = _recipients(str(message.get("From", "") or ""))
    sender_header = _recipients(str(message.get("Sender", "") or ""))
    graph: dict[str, Any] = {
        "subject": str(message.get("Subject", "") or ""),
        "internetMessageId": str(message.get("Message-ID", "") or "").strip() or None,
        "conversationId": _conversation_id(message),
        "body": {"contentType": content_type, "content": content},
        "from": senders[0] if senders else None,
        "sender": (sender_header or senders)[0] if sender_header or senders else None,
        "toRecipients": _recipients(str(message.get("To", "") or "")),
        "ccRecipients": _recipients(str(message.get("Cc", "") or "")),
        "bccRecipients": _recipients(str(message.get("Bcc", "") or "")),
        "replyTo": _recipients(str(message.get("Reply-To", "") or "")),
        "internetMessageHeaders": headers,
        "attachments": attachments,
    }
    if sent:
        graph["sentDateTime"] = sent
    return graph
