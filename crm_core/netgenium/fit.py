"""Making values fit NET Genium columns on purpose, so that no mail is lost to a too-long subject.

NET Genium keeps text in MS SQL `nvarchar(n)` columns, whose length counts UTF-16 code units (an
emoji counts two), and SQL Server refuses a longer value instead of cutting it. A mail whose
subject is longer than the column must still be stored, so the client cuts such values itself:
readable text loses its tail (marked with an ellipsis), and identifiers (Message-ID, conversation
and event ids) keep a prefix plus a hash of the whole value, so the cut value is still unique and
the same cut finds the record again.
"""

from __future__ import annotations

import hashlib
import re

ELLIPSIS = "…"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FILENAME_BAD = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
# Characters that change the direction or visibility of text: `invoice\u202efdp.exe` shows as
# "invoiceexe.pdf" in a file list. Bidi embeddings, overrides and isolates, marks, zero-width ones.
_FILENAME_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
# Names Windows reserves for devices, with or without an extension (`CON`, `nul.txt`, `COM1.pdf`):
# a NET Genium server on Windows cannot store a file of that name.
_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"{port}{n}" for port in ("com", "lpt") for n in (*"123456789", "¹", "²", "³")]
)


def utf16_len(value: str) -> int:
    """The length SQL Server's nvarchar counts."""
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def clean_text(value: str) -> str:
    """Text any column can hold: no NUL or other C0 controls but tab and line breaks, no lone surrogates."""
    value = value.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(value) else value
    return _CONTROL.sub("", value)


def _has_surrogates(value: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in value)


def _head(value: str, units: int) -> str:
    """The longest prefix of `value` within `units` UTF-16 code units (never half a pair)."""
    used = 0
    for index, ch in enumerate(value):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            return value[:index]
    return value


def fit_text(value: str, max_length: int | None) -> str:
    """`value` cleaned and, if longer than the column, cut with an ellipsis at the end."""
    value = clean_text(value)
    if max_length is None or utf16_len(value) <= max_length:
        return value
    if max_length < 2:
        return _head(value, max_length)
    return _head(value, max_length - 1) + ELLIPSIS


def fit_identifier(value: str, max_length: int | None) -> str:
    """`value` cleaned and, if too long, a prefix plus `~` and 16 hex digits of its SHA-256.

    Deterministic, so a lookup that fits its value the same way finds what an insert stored.
    """
    value = clean_text(value)
    if max_length is None or utf16_len(value) <= max_length:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    if max_length <= len(digest) + 1:
        return digest[:max_length]
    return _head(value, max_length - len(digest) - 1) + "~" + digest


def fit_filename(value: str, taken: set[str], max_length: int = 255) -> str:
    """A file name the API accepts, unique (case-insensitively) among `taken`, which it joins.

    Two attachments called `image001.png` are both kept, as `image001.png` and `image001 (2).png`.
    """
    name = _FILENAME_BAD.sub("_", _FILENAME_INVISIBLE.sub("", clean_text(value))).strip(" .") or "attachment"
    if name.split(".", 1)[0].rstrip(" ").lower() in _DEVICE_NAMES:
        name = "_" + name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    ext = ("." + ext) if ext else ""
    if utf16_len(ext) > 20:
        stem, ext = name, ""
    candidate = _head(stem, max_length - utf16_len(ext)) + ext
    counter = 1
    while candidate.lower() in taken:
        counter += 1
        suffix = f" ({counter})"
        candidate = _head(stem, max_length - utf16_len(ext) - len(suffix)) + suffix + ext
    taken.add(candidate.lower())
    return candidate
