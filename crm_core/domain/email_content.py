"""What of a captured mail is stored in its e-mail activity: subject, text, safe HTML, times.

A mail is untrusted input that NET Genium users open in their browser, inside the CRM's own
origin: its HTML is sanitized here (an allow-list of tags, attributes, URL schemes and CSS
properties; no script, no event handler, no `javascript:` link, no remote image that would tell
the sender when a salesperson opened the customer card; no CSS `url()` or `expression()`). Every
limit holds for what is stored, not only for what came in: a body is cut before conversion, the
text and the HTML are cut again after it (an entity-heavy body grows when escaped), and markup
nested past `MAX_NESTING` levels is shown flat. Each cut adds a note saying what was cut; a mail
is never refused or poisoned for its size.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import nh3

from crm_core.domain.html_text import MAX_NESTING, flatten_nesting, html_to_text
from crm_core.domain.mail import GraphMessage

# NET Genium's long text columns hold far more, but a 10 MB newsletter-sized body in a customer
# card helps nobody and slows every query that touches the table.
DEFAULT_MAX_BODY_CHARS = 1_000_000
CUT_NOTE = "[CRMService: the body was cut to {limit} characters; the full mail is in the mailbox]"
FLAT_NOTE = f"[CRMService: markup nested deeper than {MAX_NESTING} levels is shown flat]"
NO_HTML_NOTE = "[CRMService: the HTML body was not stored ({why}); the text body is complete]"

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
# CSS functions that load a resource or run script, in any property: a remote image in a
# `background` is a read receipt, `expression()` is script in old Internet Explorer.
_CSS_FUNCTIONS = re.compile(r"(url|expression|image|image-set|-webkit-image-set|element|paint)\(")
_CSS_COMMENT = re.compile(r"/\*.*?(\*/|$)", re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?|\\(.)", re.DOTALL)


def _css_unescape(match: re.Match[str]) -> str:
    if match.group(1):
        code = int(match.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF else ""
    return match.group(2)


def safe_style(value: str) -> str:
    """A `style` value without the declarations that could load a resource or run script.

    Declarations are judged on their decoded form (comments gone, CSS escapes resolved, case and
    white space ignored), so `u\\72l(` or `URL /**/ (` are caught like `url(`.
    """
    kept = []
    for declaration in value.split(";"):
        decoded = _CSS_ESCAPE.sub(_css_unescape, _CSS_COMMENT.sub("", declaration))
        normal = "".join(decoded.split()).lower()
        if _CSS_FUNCTIONS.search(normal) or "\\" in decoded:
            continue
        kept.append(declaration)
    return ";".join(kept)


def _attribute(element: str, attribute: str, value: str) -> str | None:
    return safe_style(value) if attribute == "style" else value


def sanitize_html(markup: str) -> str:
    """HTML that is safe to show inside NET Genium: no script can run, no beacon can load.

    The caller flattens deep nesting first (`flatten_nesting`): the sanitizer's time grows with the
    square of the nesting depth.
    """
    return nh3.clean(
        markup,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "noscript", "template", "xml"},
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        filter_style_properties=_CSS,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_attribute,
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
    html_omitted: str | None = None,
) -> EmailContent:
    """Subject, text body and sanitized HTML body of a mail, cut to the limit with a note.

    `notes` are the service's own remarks (an attachment it did not store, say), added after the
    body in both forms, so that a reader of the activity knows what is missing and why.

    The activity's date is when the mail was sent for outgoing mail and when it was received for
    incoming mail, as a salesperson reads a mail history.

    `html_omitted` says why the HTML body is left out (the caller's time budget ran out): the
    activity then holds the text body and a note. Pure and CPU-bound: callers on an event loop run
    it in a thread.
    """
    content = message.body.content if message.body and message.body.content else ""
    is_html = bool(message.body and message.body.is_html)
    content, cut = _cut(content, max_body_chars)
    flat = False
    if is_html:
        body_text, text_cut = _cut(html_to_text(content), max_body_chars)
        if html_omitted is None:
            shallow, flat = flatten_nesting(content)
            body_html, html_cut = _cut(sanitize_html(shallow), max_body_chars)
            if html_cut:  # cut mid-tag, perhaps: sanitizing the cut piece closes what it opened
                body_html = sanitize_html(body_html)
        else:
            body_html, html_cut = "", False
        cut = cut or text_cut or html_cut
    else:
        body_text = content.replace("\r\n", "\n")
        escaped, html_cut = _cut(html.escape(body_text), max_body_chars)
        if html_cut and escaped.rfind("&") > escaped.rfind(";"):  # never half an entity
            escaped = escaped[: escaped.rfind("&")]
        body_html = "<pre>" + escaped + "</pre>"
        cut = cut or html_cut
    remarks = [CUT_NOTE.format(limit=max_body_chars)] if cut else []
    if flat:
        remarks.append(FLAT_NOTE)
    if is_html and html_omitted is not None:
        remarks.append(NO_HTML_NOTE.format(why=html_omitted))
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
