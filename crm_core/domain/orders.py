"""Finding the order a mail names: `Order:4` in the subject, or on a line of its own in the body.

The keyword matches case-insensitively with optional spaces around the colon, then digits. In the
subject it may stand anywhere as a separate token (not glued to a word: `PreOrder:4` or `Order:4b`
name nothing). In the body only a line of its own counts, because order numbers in signatures,
quoted tables or prose (`see order: 4 items`) would link mail to the wrong order. Quoted lines
(`>`) count only when no unquoted line names an order: a reply's own text outranks the quote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from crm_core.domain.html_text import html_to_text

# An order number has at most 18 digits: that is what a 64-bit NET Genium id column holds, and it
# keeps int() away from Python's limit on huge digit strings.
_DIGITS = r"([0-9]{1,18})(?![0-9])"
_GAP = r"[ \t\u00a0]*"

OrderSource = Literal["subject", "body", "quoted body"]


@dataclass(frozen=True, slots=True)
class OrderMention:
    """An order number and where it was found."""

    number: int
    source: OrderSource


class OrderParser:
    """Compiled once for a set of keywords (default `Order`, e.g. also `Objednávka`)."""

    __slots__ = ("_body", "_keywords", "_subject")

    def __init__(self, keywords: Iterable[str] = ("Order",)) -> None:
        words = sorted({k.strip() for k in keywords if k and k.strip()}, key=len, reverse=True)
        if not words:
            raise ValueError("at least one order keyword is needed")
        self._keywords = tuple(words)
        alternatives = "|".join(re.escape(word) for word in words)
        self._subject = re.compile(rf"(?<!\w)(?:{alternatives}){_GAP}:{_GAP}{_DIGITS}(?!\w)", re.IGNORECASE)
        self._body = re.compile(
            rf"^[ \t\u00a0]*((?:>[ \t\u00a0]*)*)(?:{alternatives}){_GAP}:{_GAP}{_DIGITS}[ \t\u00a0]*$",
            re.IGNORECASE | re.MULTILINE,
        )

    @property
    def keywords(self) -> tuple[str, ...]:
        return self._keywords

    def in_subject(self, subject: str | None) -> int | None:
        """The first order number standing as a token in the subject."""
        if not subject:
            return None
        match = self._subject.search(subject)
        return int(match.group(1)) if match else None

    def in_text(self, text: str) -> OrderMention | None:
        """The first unquoted order line of a plain text, else the first quoted one."""
        if not text:
            return None
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        quoted: int | None = None
        for match in self._body.finditer(text):
            if not match.group(1):
                return OrderMention(int(match.group(2)), "body")
            if quoted is None:
                quoted = int(match.group(2))
        return OrderMention(quoted, "quoted body") if quoted is not None else None

    def in_body(self, content: str | None, *, is_html: bool) -> OrderMention | None:
        """Like `in_text`, after turning an HTML body into text with its rendered line breaks."""
        if not content:
            return None
        return self.in_text(html_to_text(content) if is_html else content)

    def find(self, subject: str | None, content: str | None, *, is_html: bool) -> OrderMention | None:
        """The subject wins over the body; the first match wins within each."""
        number = self.in_subject(subject)
        if number is not None:
            return OrderMention(number, "subject")
        return self.in_body(content, is_html=is_html)
