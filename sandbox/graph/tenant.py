"""The emulated tenant: what both the Graph API (`app`) and the admin API (`admin`) act on.

Graph's `/v1.0` paths and the `/_admin` orders are two doors into the same tenant, so its state
lives here and each door imports only this: the mailboxes and calendars (`store`), the
subscriptions and their notifications (`notifier`), the faults it is set to show and the counts it
keeps (`faults`, `stats`).
"""

from __future__ import annotations

import uuid

from sandbox.graph.faults import Faults, Stats
from sandbox.graph.notifier import Notifier
from sandbox.graph.store import Store


class Tenant:
    """One tenant's state; `default_concurrency` is what a faults reset returns the mailbox limit to."""

    def __init__(
        self,
        *,
        tenant_id: str,
        seed: int = 0,
        mailbox_concurrency: int = 4,
        validation_timeout: float = 10.0,
        delivery_timeout: float = 3.0,
        batch_window: float = 0.1,
        retry_base: float = 5.0,
        retry_window: float = 4 * 3600.0,
    ) -> None:
        self.default_concurrency = mailbox_concurrency
        self.store = Store(tenant_id)
        self.faults = Faults(seed=seed, mailbox_concurrency=mailbox_concurrency)
        self.stats = Stats()
        self.notifier = Notifier(
            self.store,
            self.faults,
            self.stats,
            application_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "crmservice-graph-emulator")),
            validation_timeout=validation_timeout,
            delivery_timeout=delivery_timeout,
            batch_window=batch_window,
            retry_base=retry_base,
            retry_window=retry_window,
        )
