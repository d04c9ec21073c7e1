"""The notifications Graph sends for subscriptions, over real HTTP.

Graph validates a notification URL before it creates a subscription (a POST with `validationToken`
that must come back as text/plain within 10 s), batches changes that happen close together into one
POST, expects a 2xx within 3 s, retries a failed delivery with backoff for a bounded time, sends
nothing for a subscription that has expired or was deleted, and (real profile) sends nothing for a
subscription waiting to be reauthorized. This module does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from sandbox.graph.faults import Faults, Stats
from sandbox.graph.odata import GraphError, bad_request, etag
from sandbox.graph.profile import Profile
from sandbox.graph.records import DELETED, User
from sandbox.graph.store import Store
from sandbox.graph.subscriptions import Subscription, Subscriptions, fraction_iso

log = logging.getLogger("sandbox.graph.notifier")

LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


@dataclass
class _Pending:
    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Notifier:
    """Validates subscribers and delivers change and lifecycle notifications."""

    def __init__(
        self,
        store: Store,
        subscriptions: Subscriptions,
        faults: Faults,
        stats: Stats,
        profile: Profile,
        *,
        validation_timeout: float = 10.0,
        delivery_timeout: float = 3.0,
        batch_window: float = 0.1,
        retry_base: float = 5.0,
        retry_window: float = 4 * 3600.0,
    ) -> None:
        self.store = store
        self.subscriptions = subscriptions
        self.faults = faults
        self.stats = stats
        self.profile = profile
        self.validation_timeout = validation_timeout
        self.delivery_timeout = delivery_timeout
        self.batch_window = batch_window
        self.retry_base = retry_base
        self.retry_window = retry_window
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        store.listeners.append(self.on_change)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the notifier is not started")
        return self._session

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def create(self, body: Any) -> Subscription:
        return await self.subscriptions.create(body, self.validate)

    async def validate(self, url: str) -> None:
        """Graph's handshake: the token must come back unchanged, as text/plain, 200, within the limit."""
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(token, safe='')}"
        self.stats.notifications["validationRequests"] += 1
        failure = (
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must "
            "respond with 200 OK to validation request.",
        )
        try:
            async with asyncio.timeout(self.validation_timeout):
                async with self.session.post(
                    target, data=b"", headers={"Content-Type": "text/plain; charset=utf-8"}
                ) as answer:
                    text = await answer.text()
                    status, mimetype = answer.status, answer.content_type
        except TimeoutError:
            self.stats.notifications["validationFailures"] += 1
            raise bad_request("Subscription validation request timed out.", "ValidationError") from None
        except aiohttp.ClientError as exc:
            self.stats.notifications["validationFailures"] += 1
            raise bad_request(f"{failure[1]} ({type(exc).__name__})", failure[0]) from None
        if status != 200:
            self.stats.notifications["validationFailures"] += 1
            raise bad_request(failure[1], failure[0])
        if mimetype != "text/plain" or text != token:
            self.stats.notifications["validationFailures"] += 1
            raise bad_request(
                "Subscription validation request failed. Response must exactly match validationToken "
                "query parameter, as text/plain.",
                "ValidationError",
            )

    # ---- change notifications ------------------------------------------------------------------

    def on_change(self, kind: str, user: User, item_id: str, change: str, folders: tuple[str, ...]) -> None:
        for subscription in list(self.subscriptions.items.values()):
            if subscription.kind != kind or subscription.user_id != user.id:
                continue
            if subscription.folder_id is not None and subscription.folder_id not in folders:
                continue
            if change not in subscription.change_types:
                continue
            if not subscription.active():
                self.stats.notifications["suppressedExpired"] += 1
                continue
            if subscription.needs_reauthorization and self.profile.pause_until_reauthorized:
                # "Eventually change notification delivery pauses, until you take the required action",
                # and what changes meanwhile is lost: the app must catch up with delta.
                self.stats.notifications["pausedUntilReauthorized"] += 1
                continue
            if self.faults.drop_notification():
                self.stats.notifications["dropped"] += 1
                continue
            self._enqueue(
                subscription.notification_url,
                subscription.id,
                self._change_json(subscription, user, kind, item_id, change),
            )

    def _change_json(
        self, subscription: Subscription, user: User, kind: str, item_id: str, change: str
    ) -> dict[str, Any]:
        collection = "Messages" if kind == "message" else "Events"
        # The form of Outlook's basic notifications: "Users/{user id}/Messages/{message id}".
        path = f"Users/{user.id}/{collection}/{item_id}"
        resource_data: dict[str, Any] = {
            "@odata.type": "#Microsoft.Graph.Message" if kind == "message" else "#Microsoft.Graph.Event",
            "@odata.id": path,
        }
        if change != DELETED:
            record = user.messages.get(item_id) if kind == "message" else user.events.get(item_id)
            if record is not None:
                resource_data["@odata.etag"] = etag(record.data["changeKey"])
        resource_data["id"] = item_id
        notification: dict[str, Any] = {
            "id": secrets.token_urlsafe(9),
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": fraction_iso(subscription.expiration),
            "changeType": change,
            "resource": path,
            "resourceData": resource_data,
            "tenantId": self.store.tenant_id,
        }
        if subscription.client_state is not None:
            notification["clientState"] = subscription.client_state
        return notification

    def _enqueue(self, url: str, subscription_id: str, notification: dict[str, Any]) -> None:
        pending = self._pending.setdefault(url, _Pending())
        pending.items.append((subscription_id, notification))
        if pending.task is None:
            pending.task = self._spawn(self._flush_later(url))

    async def _flush_later(self, url: str) -> None:
        await asyncio.sleep(self.batch_window)
        pending = self._pending.pop(url, None)
        if pending is None or not pending.items:
            return
        await self._deliver(url, pending.items, lifecycle=False)

    async def _deliver(self, url: str, items: list[tuple[str, dict[str, Any]]], *, lifecycle: bool) -> None:
        started = time.monotonic()
        attempt = 0
        kind = "lifecycle" if lifecycle else "change"
        while True:
            if not lifecycle:
                # Nothing is sent for a subscription that expired or was deleted meanwhile.
                book = self.subscriptions.items
                live = [(sid, item) for sid, item in items if sid in book and book[sid].active()]
                self.stats.notifications["suppressedExpired"] += len(items) - len(live)
                items = live
            if not items:
                return
            self.stats.notifications[f"{kind}Posts"] += 1
            try:
                async with asyncio.timeout(self.delivery_timeout):
                    async with self.session.post(url, json={"value": [item for _, item in items]}) as answer:
                        await answer.read()
                        ok = 200 <= answer.status < 300
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            if ok:
                self.stats.notifications[f"{kind}Delivered"] += len(items)
                return
            self.stats.notifications["failedAttempts"] += 1
            delay = min(self.retry_base * 2**attempt, 600.0)
            attempt += 1
            if time.monotonic() - started + delay > self.retry_window:
                self.stats.notifications["abandoned"] += len(items)
                log.warning("gave up delivering %d notification(s) to %s", len(items), url)
                return
            await asyncio.sleep(delay)

    async def lifecycle(self, subscription_id: str, event: Any) -> bool:
        """Send a lifecycle notification now; `subscriptionRemoved` also removes the subscription."""
        if event not in LIFECYCLE_EVENTS:
            raise bad_request(f"lifecycleEvent must be one of {sorted(LIFECYCLE_EVENTS)}.")
        subscription = self.subscriptions.items.get(subscription_id)
        if subscription is None:
            raise GraphError(404, "ResourceNotFound", "No such subscription.")
        if event == "reauthorizationRequired":
            subscription.needs_reauthorization = True
        if event == "subscriptionRemoved":
            del self.subscriptions.items[subscription_id]
        if subscription.lifecycle_url is None:
            return False
        notification = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": fraction_iso(subscription.expiration),
            "tenantId": self.store.tenant_id,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        self._spawn(self._deliver(subscription.lifecycle_url, [(subscription.id, notification)], lifecycle=True))
        return True

    def pending_count(self) -> int:
        return sum(len(p.items) for p in self._pending.values()) + len(self._tasks)
