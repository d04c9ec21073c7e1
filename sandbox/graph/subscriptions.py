"""The tenant's subscriptions: created after the subscriber's URLs pass validation, renewed, removed.

Graph refuses an expiry in the past or more than 10,080 minutes ahead, forgets a subscription once
it expires, wants https (the emulator also takes http on loopback), and under the real profile
requires `clientState` and never reads it back (docs/GRAPH.md cites the pages).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sandbox.graph.odata import GraphError, bad_request, now_utc, parse_instant
from sandbox.graph.profile import Profile
from sandbox.graph.records import CHANGE_TYPES, User
from sandbox.graph.store import Store

# Graph's longest lifetime for Outlook message and event subscriptions.
MAX_EXPIRATION_MINUTES = 10_080
MAX_CLIENT_STATE = 128

_RESOURCE = re.compile(
    r"^/?users/(?P<user>[^/]+)/(?:(?P<messages>messages)"
    r"|mailfolders(?:\('(?P<fq>[^']+)'\)|/(?P<fp>[^/]+))/messages"
    r"|(?P<events>events))/?$",
    re.IGNORECASE,
)


def fraction_iso(moment: datetime) -> str:
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

    def as_json(self, *, with_client_state: bool = True) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.raw_change_type,
            "clientState": self.client_state if with_client_state else None,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": fraction_iso(self.expiration),
            "creatorId": self.application_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


def check_url(value: Any, name: str) -> str:
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


class Subscriptions:
    """The subscriptions Graph holds for the application, as `/subscriptions` manages them."""

    def __init__(self, store: Store, profile: Profile, application_id: str) -> None:
        self.store = store
        self.profile = profile
        self.application_id = application_id
        self.items: dict[str, Subscription] = {}

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

    async def create(self, body: Any, validate: Callable[[str], Awaitable[None]]) -> Subscription:
        """POST /subscriptions: check the body, validate both URLs with the subscriber, then keep it."""
        if not isinstance(body, dict):
            raise bad_request("The subscription must be a JSON object.")
        raw_change_type = body.get("changeType")
        if not isinstance(raw_change_type, str) or not raw_change_type.strip():
            raise bad_request("changeType is required.", "InvalidRequest")
        change_types = frozenset(part.strip() for part in raw_change_type.split(","))
        if not change_types <= frozenset(CHANGE_TYPES):
            raise bad_request(f"changeType '{raw_change_type}' is not valid.", "InvalidRequest")
        notification_url = check_url(body.get("notificationUrl"), "notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        if lifecycle_url is not None:
            lifecycle_url = check_url(lifecycle_url, "lifecycleNotificationUrl")
        client_state = body.get("clientState")
        if client_state is None and self.profile.client_state_secret:
            raise bad_request("clientState is required.", "InvalidRequest")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
            raise bad_request(
                f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.", "InvalidRequest"
            )
        kind, user, folder_id = self._parse_resource(body.get("resource"))
        expiration = _expiration(body.get("expirationDateTime"))
        await validate(notification_url)
        if lifecycle_url is not None:
            await validate(lifecycle_url)
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
        self.items[subscription.id] = subscription
        return subscription

    def get(self, subscription_id: str) -> Subscription:
        subscription = self.items.get(subscription_id)
        if subscription is None or not subscription.active():
            # Graph deletes a subscription once it expires.
            self.items.pop(subscription_id, None)
            raise GraphError(404, "ResourceNotFound", f"The object was not found: subscription '{subscription_id}'.")
        return subscription

    def active(self) -> list[Subscription]:
        for key in [key for key, sub in self.items.items() if not sub.active()]:
            del self.items[key]
        return list(self.items.values())

    def renew(self, subscription_id: str, body: Any) -> Subscription:
        """PATCH: a new expiry (or URL); renewing also reauthorizes the subscription."""
        subscription = self.get(subscription_id)
        if not isinstance(body, dict):
            raise bad_request("The subscription update must be a JSON object.")
        if "expirationDateTime" in body:
            subscription.expiration = _expiration(body["expirationDateTime"])
        if "notificationUrl" in body:
            subscription.notification_url = check_url(body["notificationUrl"], "notificationUrl")
        subscription.needs_reauthorization = False
        return subscription

    def reauthorize(self, subscription_id: str) -> None:
        self.get(subscription_id).needs_reauthorization = False

    def delete(self, subscription_id: str) -> None:
        self.get(subscription_id)
        del self.items[subscription_id]

    def expire_now(self, subscription_id: str) -> Subscription:
        subscription = self.items.get(subscription_id)
        if subscription is None:
            raise GraphError(404, "ResourceNotFound", "No such subscription.")
        subscription.expiration = now_utc() - timedelta(seconds=1)
        return subscription

    def read_back(self, subscription: Subscription) -> dict[str, Any]:
        """A subscription as GET, list and PATCH return it (the real profile keeps clientState secret)."""
        return subscription.as_json(with_client_state=not self.profile.client_state_secret)
