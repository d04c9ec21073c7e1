"""Continuation tokens: the offset of a query's next page, signed by the bridge process.

A token is `payload.signature`, both base64url without padding: the payload is JSON holding the
offset and a fingerprint of the query (table, filter, columns, orderby, top), the signature an
HMAC-SHA256 of the payload text under a secret drawn when the process starts. A client cannot
write a token of its own (an offset the bridge never handed out, or one beyond the 64-bit
range), alter or cut one, or bring one from another process: each is a 400 `bad_continuation`
naming the problem, checked in constant time before the payload is even decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets

from bridge.errors import ApiError, bad_request
from bridge.integers import INT64_MAX

SECRET_BYTES = 32
_SIGNATURE_CHARS = 43  # base64url of 32 bytes, unpadded
_PART = re.compile(r"[A-Za-z0-9_-]+")
MAX_PAYLOAD_CHARS = 200


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _refused(message: str) -> ApiError:
    return bad_request("bad_continuation", f"the continuation token {message}")


def query_fingerprint(table: str, filter_text: str | None, columns: str | None, orderby: str | None, top: int) -> str:
    """What ties a token to its query: the same parameters give the same fingerprint."""
    return hashlib.sha256(json.dumps([table, filter_text, columns, orderby, top]).encode()).hexdigest()[:16]


class Continuations:
    """Hands out and checks the tokens of one bridge process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(SECRET_BYTES)

    def _signature(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, offset: int, fingerprint: str) -> str:
        """The token for the page that starts at `offset` of the query with `fingerprint`."""
        payload = _b64(json.dumps({"o": offset, "h": fingerprint}, separators=(",", ":")).encode())
        return f"{payload}.{self._signature(payload)}"

    def offset(self, token: str | None, fingerprint: str, *, max_offset: int = INT64_MAX) -> int:
        """The offset a token this process handed out for this query holds (0 without one)."""
        if token is None:
            return 0
        parts = token.split(".")
        if len(parts) != 2:
            raise _refused("is malformed: expected payload.signature (is it cut or not one handed out here?)")
        payload, signature = parts
        if not _PART.fullmatch(payload) or len(payload) > MAX_PAYLOAD_CHARS:
            raise _refused("is malformed: its payload is not base64url of a size this bridge hands out")
        if not _PART.fullmatch(signature) or len(signature) != _SIGNATURE_CHARS:
            raise _refused(f"is malformed: its signature is not {_SIGNATURE_CHARS} base64url characters (cut?)")
        if not hmac.compare_digest(signature.encode("ascii"), self._signature(payload).encode("ascii")):
            raise _refused(
                "has a signature that does not match: it was forged, altered or handed out by another process"
            )
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            offset, handed_for = data["o"], data["h"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise _refused("has a payload this bridge cannot read") from None
        if handed_for != fingerprint:
            raise _refused("belongs to another query: send it with the same filter, columns, orderby and top")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= max_offset:
            raise _refused("holds an offset out of range")
        return offset
