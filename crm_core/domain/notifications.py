"""What Microsoft Graph POSTs to our webhook: change notifications, lifecycle notifications, validation.

The SDK has no model for these, so they are written here from Graph's documented shapes
(`changeNotificationCollection`, `changeNotification`, `resourceData`, lifecycle events). They accept
fields Graph may add later, but they bound what they read: the webhook is reachable from the internet,
so a body that is not JSON, too large, too deep or with too many entries is rejected with a 4xx
(`NotificationRejected.status`) before any model is built.

This module imports no SDK (msgraph, kiota, azure-identity): the webhook trigger imports it on every
cold start and must stay light.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

# Graph batches notifications; real POSTs carry a handful to a few hundred. These bounds leave room
# for that and stop a hostile or broken sender from making the function parse megabytes.
MAX_BODY_BYTES = 1_048_576
MAX_NOTIFICATIONS = 1_000
MAX_TEXT = 2_048
MAX_CLIENT_STATE = 255
MAX_VALIDATION_TOKEN = 1_024
_MAX_DEPTH = 32

Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


class NotificationRejected(ValueError):
    """The POST is not a notification we accept; `status` is the 4xx to answer, `reason` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class ChangeType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class LifecycleEvent(StrEnum):
    REAUTHORIZATION_REQUIRED = "reauthorizationRequired"
    SUBSCRIPTION_REMOVED = "subscriptionRemoved"
    MISSED = "missed"


class ResourceData(_Model):
    """`resourceData` of a basic notification: which item changed (its id and etag, no content)."""

    odata_type: Text | None = Field(default=None, alias="@odata.type")
    odata_id: Text | None = Field(default=None, alias="@odata.id")
    odata_etag: Text | None = Field(default=None, alias="@odata.etag")
    id: Text | None = None


class ChangeNotification(_Model):
    """One change: `subscriptionId` and `clientState` say whose, `resource` and `resourceData` what."""

    id: Text | None = None
    subscription_id: Text = Field(alias="subscriptionId", min_length=1)
    subscription_expiration_date_time: datetime | None = Field(
        default=None, alias="subscriptionExpirationDateTime"
    )
    change_type: ChangeType = Field(alias="changeType")
    client_state: Annotated[str, StringConstraints(max_length=MAX_CLIENT_STATE)] | None = Field(
        default=None, alias="clientState"
    )
    resource: Text = Field(min_length=1)
    resource_data: ResourceData | None = Field(default=None, alias="resourceData")
    tenant_id: Text | None = Field(default=None, alias="tenantId")

    @property
    def item_id(self) -> str | None:
        """The id of the changed message or event: `resourceData.id`, else the last resource segment."""
        if self.resource_data is not None and self.resource_data.id:
            return self.resource_data.id
        tail = self.resource.rstrip("/").rsplit("/", 1)[-1]
        if tail.endswith("')") and "('" in tail:
            tail = tail[tail.index("('") + 2 : -2]
        return tail or None

    @property
    def user_id(self) -> str | None:
        """The mailbox the change is in (`Users/{id}` or `Users/{id}@{tenant}` in `resource`)."""
        parts = self.resource.strip("/").split("/")
        if len(parts) >= 2 and parts[0].lower() == "users":
            return parts[1].split("@")[0] if parts[1].count("@") == 1 and "." not in parts[1] else parts[1]
        return None


class ChangeNotificationCollection(_Model):
    """The body of one POST to `notificationUrl`: changes from one or several subscriptions."""

    value: list[ChangeNotification] = Field(min_length=1, max_length=MAX_NOTIFICATIONS)
    validation_tokens: list[Text] | None = Field(default=None, alias="validationTokens", max_length=100)


class LifecycleNotification(_Model):
    """A lifecycle notification: the subscription needs reauthorizing, was removed, or missed changes."""

    subscription_id: Text = Field(alias="subscriptionId", min_length=1)
    subscription_expiration_date_time: datetime | None = Field(
        default=None, alias="subscriptionExpirationDateTime"
    )
    tenant_id: Text | None = Field(default=None, alias="tenantId")
    client_state: Annotated[str, StringConstraints(max_length=MAX_CLIENT_STATE)] | None = Field(
        default=None, alias="clientState"
    )
    lifecycle_event: LifecycleEvent = Field(alias="lifecycleEvent")
    resource: Text | None = None


class LifecycleNotificationCollection(_Model):
    """The body of one POST to `lifecycleNotificationUrl`."""

    value: list[LifecycleNotification] = Field(min_length=1, max_length=MAX_NOTIFICATIONS)


class NotificationBatch(_Model):
    """A POST that may mix both kinds (when `lifecycleNotificationUrl` equals `notificationUrl`)."""

    changes: list[ChangeNotification] = Field(default_factory=list)
    lifecycle: list[LifecycleNotification] = Field(default_factory=list)


class ValidationRequest(_Model):
    """Graph's handshake: `?validationToken=...`; answer 200, text/plain, the decoded token, within 10 s."""

    validation_token: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VALIDATION_TOKEN)] = Field(
        alias="validationToken"
    )

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ValidationRequest | None:
        """From already-decoded query parameters (an Azure Functions `req.params`), or None."""
        for key, value in params.items():
            if key.lower() == "validationtoken":
                try:
                    return cls.model_validate({"validationToken": value})
                except ValidationError:
                    raise NotificationRejected(400, "validationToken is empty or too long") from None
        return None

    @classmethod
    def from_query_string(cls, query: str) -> ValidationRequest | None:
        """From a raw query string; the token is URL-decoded (`+` and `%3A` become space and colon)."""
        decoded = parse_qs(query.lstrip("?"), keep_blank_values=True)
        return cls.from_params({key: values[0] for key, values in decoded.items() if values})

    def response_body(self) -> str:
        """The text/plain body Graph expects back: the token, unchanged, not HTML-encoded."""
        return self.validation_token


def _depth(value: Any, limit: int = _MAX_DEPTH) -> int:
    depth, frontier = 0, [value]
    while frontier:
        depth += 1
        if depth > limit:
            return depth
        nxt: list[Any] = []
        for item in frontier:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        frontier = nxt
    return depth


def _load(body: bytes | str) -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise NotificationRejected(413, f"body of {len(raw)} bytes exceeds {MAX_BODY_BYTES}")
    if not raw.strip():
        raise NotificationRejected(400, "empty body: expected a JSON object with 'value'")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise NotificationRejected(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise NotificationRejected(400, "expected a JSON object with 'value'")
    if _depth(data) > _MAX_DEPTH:
        raise NotificationRejected(400, "JSON nested too deeply")
    value = data.get("value")
    if not isinstance(value, list):
        raise NotificationRejected(400, "'value' must be a list of notifications")
    if len(value) > MAX_NOTIFICATIONS:
        raise NotificationRejected(413, f"{len(value)} notifications exceed {MAX_NOTIFICATIONS} in one POST")
    return data


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def parse_change_notifications(body: bytes | str) -> ChangeNotificationCollection:
    """Parse a POST to `notificationUrl`, or raise NotificationRejected with the 4xx to answer."""
    data = _load(body)
    try:
        return ChangeNotificationCollection.model_validate(data)
    except ValidationError as exc:
        raise NotificationRejected(400, _explain(exc)) from None


def parse_lifecycle_notifications(body: bytes | str) -> LifecycleNotificationCollection:
    """Parse a POST to `lifecycleNotificationUrl`, or raise NotificationRejected."""
    data = _load(body)
    try:
        return LifecycleNotificationCollection.model_validate(data)
    except ValidationError as exc:
        raise NotificationRejected(400, _explain(exc)) from None


def parse_notifications(body: bytes | str) -> NotificationBatch:
    """Parse a POST that may hold change and lifecycle notifications (`lifecycleEvent` tells them apart)."""
    data = _load(body)
    changes: list[ChangeNotification] = []
    lifecycle: list[LifecycleNotification] = []
    try:
        for index, item in enumerate(data["value"]):
            if not isinstance(item, dict):
                raise NotificationRejected(400, f"value.{index}: expected an object")
            if "lifecycleEvent" in item:
                lifecycle.append(LifecycleNotification.model_validate(item))
            else:
                changes.append(ChangeNotification.model_validate(item))
    except ValidationError as exc:
        raise NotificationRejected(400, _explain(exc)) from None
    if not changes and not lifecycle:
        raise NotificationRejected(400, "'value' is empty")
    return NotificationBatch(changes=changes, lifecycle=lifecycle)


def client_state_matches(received: str | None, expected: str) -> bool:
    """Compare `clientState` in constant time: a mismatch means the POST did not come from our subscription."""
    if received is None or not expected:
        return False
    return hmac.compare_digest(received.encode(), expected.encode())
