"""What of a captured mail is stored in its e-mail activity: subject, text, safe HTML, times.

A mail is untrusted input that NET Genium users open in their browser, inside the CRM's own
origin: its HTML is sanitized here (an allow-list of tags, attributes, URL schemes and CSS
properties; no script, no event handler, no `javascript:` link, no remote image that would tell
the sender when a salesperson opened the customer card). Oversized bodies are cut on purpose,
with a note saying so, never by a failed write.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import nh3

from crm_core.domain.html_text import html_to_text
from crm_core.domain.mail import GraphMessage

# NET Genium's long text columns hold far more, but a 10 MB newsletter-sized body in a customer
# card helps nobody and slows every query that touches the table.
DEFAULT_MAX_BODY_CHARS = 1_000_000
CUT_NOTE = "[CRMService: the body was cut to {limit} characters; the full mail is in the mailbox]"

_TAGS = (nh3.ALLOWED_TAGS - {"img", "area", "map"}) | {"font"}
_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"style", "title", "dir", "lang", "align"},
    "a": {"href", "title"},
    "td": {"colspan", "rowspan", "valign", "width"},
    "th": {"colspan", "rowspan", "valign", "width"},
    "table": {"border", "cellpadding", "cellspacing", "width"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"},
}
_CSS = {
    "color", "background-color", "font-weight", "font-style", "font-size", "font-family", "text-decoration",
    "text-align", "vertical-align", "margin", "margin-left", "margin-right", "margin-top", "margin-bottom",
    "padding", "padding-left", "padding-right", "padding-top", "padding-bottom", "border", "border-left",
    "border-collapse", "width", "white-space", "line-height",
}  # fmt: skip
_SCHEMES = {"http", "https", "mailto", "tel"}


def sanitize_html(markup: str) -> str:
    """HTML that is safe to show inside NET Genium: no script can run, no beacon can load."""
    return nh3.clean(
        markup,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "noscript", "template", "xml"},
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        filter_style_properties=_CSS,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit], True


@dataclass(frozen=True, slots=True)
class EmailContent:
    """The stored form of a mail's content."""

    subject: str
    body_text: str
    body_html: str
    sent_at: datetime
    cut: bool


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def email_content(
    message: GraphMessage,
    *,
    direction: str | None,
    max_body_chars: int = DEFAULT_MAX_BODY_CHARS,
    notes: Sequence[str] = (),
) -> EmailContent:
    """Subject, text body and sanitized HTML body of a mail, cut to the limit with a note.

    `notes` are the service's own remarks (an attachment it did not store, say), added after the
    body in both forms, so that a reader of the activity knows what is missing and why.

    The activity's date is when the mail was sent for outgoing mail and when it was received for
    incoming mail, as a salesperson reads a mail history.
    """
    content = message.body.content if message.body and message.body.content else ""
    is_html = bool(message.body and message.body.is_html)
    content, cut = _cut(content, max_body_chars)
    if is_html:
        body_html = sanitize_html(content)
        body_text = html_to_text(content)
    else:
        body_text = content.replace("\r\n", "\n")
        body_html = "<pre>" + html.escape(body_text) + "</pre>"
    remarks = [CUT_NOTE.format(limit=max_body_chars)] if cut else []
    remarks += list(notes)
    for note in remarks:
        body_text = f"{body_text}\n\n{note}"
        body_html = f"{body_html}<p><em>{html.escape(note)}</em></p>"
    first, second = (
        (message.sent_date_time, message.received_date_time)
        if direction == "outgoing"
        else (message.received_date_time, message.sent_date_time)
    )
    sent_at = _timestamp(first) or _timestamp(second) or datetime.now(UTC)
    return EmailContent(
        subject=(message.subject or "").strip(), body_text=body_text, body_html=body_html, sent_at=sent_at, cut=cut
    )
