"""Who is in calendar sync: NET Genium users matched with Microsoft 365 accounts by address.

A NET Genium user is synced when their e-mail equals a Microsoft 365 user's `mail`,
`userPrincipalName` or an SMTP `proxyAddresses` entry, compared in normal form (lower case, `smtp:`
prefix dropped). A user matching nobody, or more than one account, is not synced and is listed with
the reason, so that an administrator can fix the address instead of wondering.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crm_core.domain.addresses import normalize_address


@dataclass(frozen=True, slots=True)
class SyncedUser:
    """A NET Genium user in sync; `mailbox` is the Microsoft 365 user's id (stable across renames)."""

    ng_user_id: int
    email: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class UnmatchedUser:
    ng_user_id: int
    email: str
    reason: str


@dataclass(frozen=True, slots=True)
class Account:
    """A Microsoft 365 user: its id and every address it answers to, in normal form."""

    id: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserMatch:
    synced: tuple[SyncedUser, ...]
    unmatched: tuple[UnmatchedUser, ...]


def proxy_address(entry: str) -> str:
    """The address of a `proxyAddresses` entry (`SMTP:a@x`, `smtp:b@x`); "" for X500 and the like."""
    scheme, sep, address = entry.partition(":")
    if not sep:
        return normalize_address(entry)
    return normalize_address(address) if scheme.lower() == "smtp" else ""


def account(user_id: str, mail: str | None, upn: str | None, proxies: Iterable[str]) -> Account:
    found: list[str] = []
    for candidate in (normalize_address(mail), normalize_address(upn), *(proxy_address(p) for p in proxies)):
        if candidate and candidate not in found:
            found.append(candidate)
    return Account(user_id, tuple(found))


def match_users(ng_users: Iterable[tuple[int, str]], accounts: Sequence[Account]) -> UserMatch:
    """Pair each NET Genium user (id, e-mail) with the one account holding that address."""
    owners: dict[str, set[str]] = {}
    for acc in accounts:
        for address in acc.addresses:
            owners.setdefault(address, set()).add(acc.id)
    synced: list[SyncedUser] = []
    unmatched: list[UnmatchedUser] = []
    taken: dict[str, int] = {}
    for user_id, raw in sorted(ng_users):
        email = normalize_address(raw)
        ids = owners.get(email, set()) if email else set()
        if not email:
            unmatched.append(UnmatchedUser(user_id, raw, "no e-mail address in NET Genium"))
        elif not ids:
            unmatched.append(UnmatchedUser(user_id, email, "no Microsoft 365 user has this address"))
        elif len(ids) > 1:
            unmatched.append(UnmatchedUser(user_id, email, f"{len(ids)} Microsoft 365 users have this address"))
        else:
            mailbox = next(iter(ids))
            if mailbox in taken:
                reason = f"the Microsoft 365 user is already synced with NET Genium user {taken[mailbox]}"
                unmatched.append(UnmatchedUser(user_id, email, reason))
                continue
            taken[mailbox] = user_id
            synced.append(SyncedUser(user_id, email, mailbox))
    return UserMatch(tuple(synced), tuple(unmatched))
