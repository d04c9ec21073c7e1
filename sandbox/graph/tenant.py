"""The emulated tenant: what both the Graph API (`app`) and the admin API (`admin`) act on.

Graph's `/v1.0` paths and the `/_admin` orders are two doors into the same tenant, so its state
lives here: the mailboxes and calendars (`store`), the subscriptions and their notifications
(`subscriptions`, `notifier`), the profile it follows and the random streams it draws from
(`profile`), the faults it is set to show and the counts it keeps (`faults`, `stats`).
"""

from __future__ import annotations

import asyncio
import uuid

from sandbox.graph.faults import Faults, Stats
from sandbox.graph.notifier import Notifier
from sandbox.graph.profile import REAL, Profile, Randomness
from sandbox.graph.protocol import Request, Response
from sandbox.graph.store import Store
from sandbox.graph.subscriptions import Subscriptions


class Tenant:
    """One tenant's state; `GraphEmulator` (in `app`) adds the `/v1.0` pipeline that `handle` runs."""

    def __init__(
        self,
        *,
        tenant_id: str,
        profile: Profile = REAL,
        seed: int = 0,
        mailbox_concurrency: int = 4,
        validation_timeout: float = 10.0,
        delivery_timeout: float = 3.0,
        batch_window: float = 0.1,
        retry_base: float = 5.0,
        retry_window: float = 4 * 3600.0,
    ) -> None:
        self.profile = profile
        self.randomness = Randomness(seed)
        self.store = Store(tenant_id)
        self.faults = Faults(randomness=self.randomness, profile=profile, default_concurrency=mailbox_concurrency)
        self.stats = Stats()
        self.subscriptions = Subscriptions(
            self.store, profile, application_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "crmservice-graph-emulator"))
        )
        self.notifier = Notifier(
            self.store,
            self.subscriptions,
            self.faults,
            self.stats,
            profile,
            validation_timeout=validation_timeout,
            delivery_timeout=delivery_timeout,
            batch_window=batch_window,
            retry_base=retry_base,
            retry_window=retry_window,
        )
        # Delta and skip tokens whose sync state Outlook has evicted: they answer 410 from then on.
        self.evicted_tokens: set[str] = set()

    async def handle(self, request: Request, *, authenticated: bool) -> Response:
        """Run one `/v1.0` request (a `$batch` item runs its requests through this)."""
        raise NotImplementedError

    async def page_time(self, items: int) -> None:
        """A page takes time in proportion to what it holds."""
        seconds = self.faults.page_seconds(items)
        if seconds > 0:
            await asyncio.sleep(seconds)

    def reset(self) -> None:
        """Forget users, subscriptions, faults and counts; make every delta token stale."""
        self.store.users.clear()
        self.subscriptions.items.clear()
        self.faults.reset()
        self.stats.reset()
        self.store.sync_generation += 1
        self.evicted_tokens.clear()
