"""E-mail address rules of docs/DESIGN.md section 3: one normal form, so that every comparison agrees.

Mail clients and address books write the same address as ` <Jan.Novak@Firma.CZ> `,
`mailto:jan.novak@firma.cz` or `jan.novak@firma.cz`; comparing anything but the normal form
would store one customer's mail under two contacts, or under none.
"""

from __future__ import annotations

from collections.abc import Iterable

_STRIP = " \t\r\n\u00a0\u200b\ufeff"


def normalize_address(raw: str | None) -> str:
    """Trim white space, angle brackets and a `mailto:` prefix; lower-case. `None` gives ``""``."""
    if not raw:
        return ""
    address = raw.strip(_STRIP)
    # Repeat: "<mailto:x@y>" and "mailto:<x@y>" both occur in the wild.
    while True:
        before = address
        if address.startswith("<") and address.endswith(">"):
            address = address[1:-1].strip(_STRIP)
        if address[:7].lower() == "mailto:":
            address = address[7:].strip(_STRIP)
        if address == before:
            break
    return address.lower()


def local_part(address: str) -> str:
    """The part before the last `@` of a normalized address."""
    return address.rpartition("@")[0] if "@" in address else address


def domain_of(address: str) -> str:
    """The part after the last `@` of a normalized address, or ``""``."""
    return address.rpartition("@")[2] if "@" in address else ""


def is_plausible_address(address: str) -> bool:
    """A normalized address with one non-empty local part and a dotted domain."""
    local, at, domain = address.rpartition("@")
    return bool(at and local and "." in domain and not domain.startswith(".") and " " not in address)


class Exclusions:
    """Excluded addresses: exact (`noreply@x.com`) or a whole domain (`@x.com`)."""

    __slots__ = ("_addresses", "_domains")

    def __init__(self, entries: Iterable[str]) -> None:
        self._addresses: set[str] = set()
        self._domains: set[str] = set()
        for entry in entries:
            normal = normalize_address(entry)
            if normal.startswith("@"):
                self._domains.add(normal[1:])
            elif normal:
                self._addresses.add(normal)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        return address in self._addresses or domain_of(address) in self._domains
