"""Subscriptions and the notifications Graph sends for them, over real HTTP.

Graph validates a notification URL before it creates a subscription (a POST with `validationToken`
that must come back as text/plain within 10 s), batches changes that happen close together into one
POST, expects a 2xx within 3 s, retries a failed delivery with backoff for a bounded time, and sends
nothing for a subscription that has expired or was deleted. This module does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from sandbox.graph.faults import Faults, Stats
from sandbox.graph.store import GraphError, Store, User, bad_request, iso, now_utc, parse_instant

log = logging.getLogger("sandbox.graph.notifier")

# Graph's longest lifetime for Outlook message and event subscriptions.
MAX_EXPIRATION_MINUTES = 10_080
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})

_RESOURCE = re.compile(
    r"^/?users/(?P<user>[^/]+)/(?:(?P<messages>messages)"
    r"|mailfolders(?:\('(?P<fq>[^']+)'\)|/(?P<fp>[^/]+))/messages"
    r"|(?P<events>events))/?$",
    re.IGNORECASE,
)


def _fraction_iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Subscription:
    id: str
    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    kind: str
    user_id: str
    folder_id: str | None
    application_id: str
    needs_reauthorization: bool = False
    raw_change_type: str = ""

    def active(self) -> bool:
        return now_utc() < self.expiration

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.raw_change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _fraction_iso(self.expiration),
            "creatorId": self.application_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass
class _Pending:
    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def _check_url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{name} is required.", "InvalidRequest")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(f"{name} must be an absolute URL.", "InvalidRequest")
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            # Graph requires https; the emulator also takes http on loopback for local subscribers.
            raise bad_request(f"{name} must use https.", "InvalidRequest")
    return value


class Notifier:
    """Holds subscriptions, validates subscribers, and delivers change and lifecycle notifications."""

    def __init__(
        self,
        store: Store,
        faults: Faults,
        stats: Stats,
        *,
        application_id: str,
        validation_timeout: float = 10.0,
        delivery_timeout: float = 3.0,
        batch_window: float = 0.1,
        retry_base: float = 5.0,
        retry_window: float = 4 * 3600.0,
    ) -> None:
        self.store = store
        self.faults = faults
        self.stats = stats
        self.application_id = application_id
        self.validation_timeout = validation_timeout
        self.delivery_timeout = delivery_timeout
        self.batch_window = batch_window
        self.retry_base = retry_base
        self.retry_window = retry_window
        self.subscriptions: dict[str, Subscription] = {}
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

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- subscriptions -------------------------------------------------------------------------

    def _parse_resource(self, resource: Any) -> tuple[str, User, str | None]:
        if not isinstance(resource, str):
            raise bad_request("resource is required.", "InvalidRequest")
        match = _RESOURCE.match(resource.split("?", 1)[0].strip())
        if match is None:
            raise bad_request(
                f"Resource '{resource}' is not supported by the emulator: use users/{{id}}/messages, "
                "users/{id}/mailFolders('{folder}')/messages or users/{id}/events.",
                "InvalidRequest",
            )
        user = self.store.user(match["user"])
        if match["events"]:
            return "event", user, None
        folder_key = match["fq"] or match["fp"]
        folder_id = self.store.folder(user, folder_key).id if folder_key else None
        return "message", user, folder_id

    @staticmethod
    def _expiration(value: Any) -> datetime:
        expiration = parse_instant(value, name="expirationDateTime")
        now = now_utc()
        if expiration <= now:
            raise bad_request("Subscription expiration must be in the future.", "ExtensionError")
        if expiration > now + timedelta(minutes=MAX_EXPIRATION_MINUTES):
            raise bad_request(
                f"Subscription expiration can only be {MAX_EXPIRATION_MINUTES} minutes in the future.",
                "ExtensionError",
            )
        return expiration

    async def create(self, body: Any) -> Subscription:
        if not isinstance(body, dict):
            raise bad_request("The subscription must be a JSON object.")
        raw_change_type = body.get("changeType")
        if not isinstance(raw_change_type, str) or not raw_change_type.strip():
            raise bad_request("changeType is required.", "InvalidRequest")
        change_types = frozenset(part.strip() for part in raw_change_type.split(","))
        if not change_types <= CHANGE_TYPES:
            raise bad_request(f"changeType '{raw_change_type}' is not valid.", "InvalidRequest")
        notification_url = _check_url(body.get("notificationUrl"), "notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        if lifecycle_url is not None:
            lifecycle_url = _check_url(lifecycle_url, "lifecycleNotificationUrl")
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
            raise bad_request("clientState must be a string of at most 128 characters.", "InvalidRequest")
        kind, user, folder_id = self._parse_resource(body.get("resource"))
        expiration = self._expiration(body.get("expirationDateTime"))
        await self.validate(notification_url)
        if lifecycle_url is not None:
            await self.validate(lifecycle_url)
        subscription = Subscription(
            id=str(uuid.uuid4()),
            resource=str(body["resource"]),
            change_types=change_types,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            client_state=client_state,
            expiration=expiration,
            kind=kind,
            user_id=user.id,
            folder_id=folder_id,
            application_id=self.application_id,
            raw_change_type=raw_change_type,
        )
        self.subscriptions[subscription.id] = subscription
        return subscription

    def get(self, subscription_id: str) -> Subscription:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None or not subscription.active():
            # Graph deletes a subscription once it expires.
            self.subscriptions.pop(subscription_id, None)
            raise GraphError(404, "ResourceNotFound", f"The object was not found: subscription '{subscription_id}'.")
        return subscription

    def active(self) -> list[Subscription]:
        for key in [key for key, sub in self.subscriptions.items() if not sub.active()]:
            del self.subscriptions[key]
        return list(self.subscriptions.values())

    def renew(self, subscription_id: str, body: Any) -> Subscription:
        subscription = self.get(subscription_id)
        if not isinstance(body, dict):
            raise bad_request("The subscription update must be a JSON object.")
        if "expirationDateTime" in body:
            subscription.expiration = self._expiration(body["expirationDateTime"])
        if "notificationUrl" in body:
            subscription.notification_url = _check_url(body["notificationUrl"], "notificationUrl")
        return subscription

    def reauthorize(self, subscription_id: str) -> None:
        self.get(subscription_id).needs_reauthorization = False

    def delete(self, subscription_id: str) -> None:
        self.get(subscription_id)
        del self.subscriptions[subscription_id]

    def expire_now(self, subscription_id: str) -> Subscription:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            raise GraphError(404, "ResourceNotFound", "No such subscription.")
        subscription.expiration = now_utc() - timedelta(seconds=1)
        return subscription

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
        for subscription in list(self.subscriptions.values()):
            if subscription.kind != kind or subscription.user_id != user.id:
                continue
            if subscription.folder_id is not None and subscription.folder_id not in folders:
                continue
            if change not in subscription.change_types:
                continue
            if not subscription.active():
                self.stats.notifications["suppressedExpired"] += 1
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
        path = f"Users/{user.id}@{self.store.tenant_id}/{collection}/{item_id}"
        resource_data: dict[str, Any] = {
            "@odata.type": "#Microsoft.Graph.Message" if kind == "message" else "#Microsoft.Graph.Event",
            "@odata.id": path,
        }
        if change != "deleted":
            record = user.messages.get(item_id) if kind == "message" else user.events.get(item_id)
            if record is not None:
                resource_data["@odata.etag"] = f'W/"{record.data["changeKey"]}"'
        resource_data["id"] = item_id
        notification: dict[str, Any] = {
            "id": secrets.token_urlsafe(9),
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _fraction_iso(subscription.expiration),
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
                live = [
                    (sid, item) for sid, item in items if sid in self.subscriptions and self.subscriptions[sid].active()
                ]
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
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            raise GraphError(404, "ResourceNotFound", "No such subscription.")
        if event == "reauthorizationRequired":
            subscription.needs_reauthorization = True
        if event == "subscriptionRemoved":
            del self.subscriptions[subscription_id]
        if subscription.lifecycle_url is None:
            return False
        notification = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _fraction_iso(subscription.expiration),
            "tenantId": self.store.tenant_id,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        self._spawn(self._deliver(subscription.lifecycle_url, [(subscription.id, notification)], lifecycle=True))
        return True

    def pending_count(self) -> int:
        return sum(len(p.items) for p in self._pending.values()) + len(self._tasks)


__all__ = ["MAX_EXPIRATION_MINUTES", "Notifier", "Subscription", "iso"]
