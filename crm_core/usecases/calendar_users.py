"""Keeps the list of synced users current, and each of them watched by a Graph event subscription.

The timer matches NET Genium's users with Microsoft 365's (`crm_core.domain.calendar_users`),
stores who is synced and who is not with the reason (the operator's `calendar status` shows it), and
then creates the event subscriptions that are missing and deletes those of users no longer synced.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Protocol

from crm_core.domain.calendar_state import CalendarUsersState
from crm_core.domain.calendar_users import Account, SyncedUser, UserMatch, match_users
from crm_core.usecases.calendar_ports import UsersState

log = logging.getLogger("crm_core.calendar.users")


class NgUserLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str: ...


class NetGeniumUsers(Protocol):
    async def list_users(self) -> Sequence[NgUserLike]: ...


class Accounts(Protocol):
    async def list_accounts(self) -> Sequence[Account]: ...


async def refresh_users(
    netgenium: NetGeniumUsers,
    accounts: Accounts,
    state: UsersState,
    *,
    ensure_subscriptions: Callable[[Sequence[str]], Awaitable[object]] | None = None,
    now: datetime | None = None,
) -> UserMatch:
    """Match, store, and (when given) bring the event subscriptions in line with the match."""
    match = match_users(((u.id, u.email) for u in await netgenium.list_users()), await accounts.list_accounts())
    await state.save(
        CalendarUsersState(
            refreshed_at=now or datetime.now(UTC),
            synced=[asdict(user) for user in match.synced],
            unmatched=[asdict(user) for user in match.unmatched],
        )
    )
    if match.unmatched:
        log.info("calendar: users not synced", extra={"count": len(match.unmatched)})
    if ensure_subscriptions is not None:
        await ensure_subscriptions([user.mailbox for user in match.synced])
    return match


async def synced_users(state: UsersState) -> list[SyncedUser]:
    """The users of the last refresh (none before the first)."""
    loaded = await state.load()
    if loaded is None:
        return []
    return [
        SyncedUser(int(str(item["ng_user_id"])), str(item["email"]), str(item["mailbox"])) for item in loaded.synced
    ]


async def synced_user(
    state: UsersState, *, mailbox: str | None = None, ng_user_id: int | None = None
) -> SyncedUser | None:
    """One synced user by Graph user id or NET Genium user id."""
    for user in await synced_users(state):
        if mailbox is not None and user.mailbox.lower() == mailbox.lower():
            return user
        if ng_user_id is not None and user.ng_user_id == ng_user_id:
            return user
    return None
