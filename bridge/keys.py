"""API keys kept as salted hashes, compared in constant time.

`python -m bridge hash-key` prints `pbkdf2_sha256$ITERATIONS$SALT$HASH` for a key; the config holds
only such hashes, so a leaked config gives away no key. Deriving a hash takes tens of
milliseconds on purpose, which would be paid by every request: so a key that once matched is
remembered as its SHA-256 (only correct keys are remembered, at most one entry per configured
hash), and later requests compare that digest with `hmac.compare_digest` against every
remembered one, without stopping at the first match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading

DEFAULT_ITERATIONS = 200_000
_PREFIX = "pbkdf2_sha256"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_key(key: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """The hash the config keeps for `key`."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", key.encode("utf-8"), salt, iterations)
    return f"{_PREFIX}${iterations}${_b64(salt)}${_b64(digest)}"


def new_key() -> str:
    """A fresh key with 256 bits of randomness."""
    return secrets.token_urlsafe(32)


def parse_hash(text: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest) of a stored hash, or ValueError naming what is wrong."""
    parts = text.split("$")
    if len(parts) != 4 or parts[0] != _PREFIX or not parts[1].isascii() or not parts[1].isdigit():
        raise ValueError("an API key hash looks like pbkdf2_sha256$ITERATIONS$SALT$HASH (python -m bridge hash-key)")
    iterations = int(parts[1])
    if not 1_000 <= iterations <= 10_000_000:
        raise ValueError("an API key hash needs 1,000 to 10,000,000 iterations")
    return iterations, _unb64(parts[2]), _unb64(parts[3])


class KeyVerifier:
    """Checks a presented key against the configured hashes."""

    def __init__(self, hashes: list[str]) -> None:
        if not hashes:
            raise ValueError("at least one API key hash is needed")
        self._hashes = [parse_hash(h) for h in hashes]
        self._known: list[bytes] = []
        self._lock = threading.Lock()

    def verify(self, presented: str) -> bool:
        """Whether `presented` is one of the keys (constant time in the key's content)."""
        raw = presented.encode("utf-8", "surrogatepass")
        fingerprint = hashlib.sha256(raw).digest()
        matched = False
        for known in list(self._known):
            matched |= hmac.compare_digest(fingerprint, known)
        if matched:
            return True
        if not raw:
            return False
        for iterations, salt, digest in self._hashes:
            matched |= hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", raw, salt, iterations), digest)
        if matched:
            with self._lock:
                if fingerprint not in self._known and len(self._known) < len(self._hashes):
                    self._known.append(fingerprint)
        return matched
