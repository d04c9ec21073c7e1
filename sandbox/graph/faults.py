"""Faults the admin API can switch on, and the counters tests and benchmarks read.

Shares (``throttleRate``) draw from seeded random streams so a run is repeatable; counters
(``throttleNext``) make a test exact ("the next request gets a 429"). The settings the profile
gives (page latency, sync-state expiry) start at the profile's values, can be changed like any
fault, and return to the profile's values when the faults are cleared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sandbox.graph.odata import bad_request
from sandbox.graph.profile import REAL, Profile, Randomness


def _rate(body: dict[str, Any], key: str, current: float) -> float:
    if key not in body:
        return current
    value = body[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise bad_request(f"{key} must be a number from 0 to 1.")
    return float(value)


def _count(body: dict[str, Any], key: str, current: int, *, minimum: int = 0) -> int:
    if key not in body:
        return current
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise bad_request(f"{key} must be a whole number of at least {minimum}.")
    return value


def _duration(body: dict[str, Any], key: str, current: float) -> float:
    if key not in body:
        return current
    value = body[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 60_000:
        raise bad_request(f"{key} must be a number of milliseconds from 0 to 60000.")
    return float(value)


@dataclass
class Faults:
    """What goes wrong, and how often."""

    randomness: Randomness = field(default_factory=lambda: Randomness(0))
    profile: Profile = REAL
    default_concurrency: int = 4
    throttle_rate: float = 0.0
    throttle_next: int = 0
    unavailable_rate: float = 0.0
    unavailable_next: int = 0
    retry_after: int = 1
    latency_ms: int = 0
    drop_notifications_rate: float = 0.0
    drop_notifications_next: int = 0
    mailbox_concurrency: int = 4
    page_latency_ms: float = 0.0
    item_latency_ms: float = 0.0
    sync_state_expiry_rate: float = 0.0
    sync_state_expiry_next: int = 0
    operations: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.reset()

    def update(self, body: dict[str, Any]) -> None:
        self.throttle_rate = _rate(body, "throttleRate", self.throttle_rate)
        self.throttle_next = _count(body, "throttleNext", self.throttle_next)
        self.unavailable_rate = _rate(body, "unavailableRate", self.unavailable_rate)
        self.unavailable_next = _count(body, "unavailableNext", self.unavailable_next)
        self.retry_after = _count(body, "retryAfter", self.retry_after)
        self.latency_ms = _count(body, "latencyMs", self.latency_ms)
        self.drop_notifications_rate = _rate(body, "dropNotificationsRate", self.drop_notifications_rate)
        self.drop_notifications_next = _count(body, "dropNotificationsNext", self.drop_notifications_next)
        self.mailbox_concurrency = _count(body, "mailboxConcurrency", self.mailbox_concurrency)
        self.page_latency_ms = _duration(body, "pageLatencyMs", self.page_latency_ms)
        self.item_latency_ms = _duration(body, "itemLatencyMs", self.item_latency_ms)
        self.sync_state_expiry_rate = _rate(body, "syncStateExpiryRate", self.sync_state_expiry_rate)
        self.sync_state_expiry_next = _count(body, "syncStateExpiryNext", self.sync_state_expiry_next)
        if "operations" in body:
            operations = body["operations"] or []
            if not isinstance(operations, list) or not all(isinstance(op, str) for op in operations):
                raise bad_request("operations must be a list of operation names.")
            self.operations = frozenset(operations)

    def reset(self) -> None:
        """No injected fault; the profile's latency and sync-state expiry; the random streams from the start."""
        self.throttle_rate = self.unavailable_rate = self.drop_notifications_rate = 0.0
        self.throttle_next = self.unavailable_next = self.drop_notifications_next = 0
        self.retry_after, self.latency_ms = 1, 0
        self.mailbox_concurrency = self.default_concurrency
        self.page_latency_ms = self.profile.page_latency_ms
        self.item_latency_ms = self.profile.item_latency_ms
        self.sync_state_expiry_rate = self.profile.sync_state_expiry_rate
        self.sync_state_expiry_next = 0
        self.operations = frozenset()
        self.randomness.reset()

    def applies_to(self, operation: str) -> bool:
        return not self.operations or operation in self.operations

    def throttle(self) -> bool:
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return True
        return self.randomness.chance("throttle", self.throttle_rate)

    def unavailable(self) -> bool:
        if self.unavailable_next > 0:
            self.unavailable_next -= 1
            return True
        return self.randomness.chance("unavailable", self.unavailable_rate)

    def drop_notification(self) -> bool:
        if self.drop_notifications_next > 0:
            self.drop_notifications_next -= 1
            return True
        return self.randomness.chance("dropNotification", self.drop_notifications_rate)

    def sync_state_expires(self) -> bool:
        """Whether the sync state behind the token used now has been evicted from Outlook's cache."""
        if self.sync_state_expiry_next > 0:
            self.sync_state_expiry_next -= 1
            return True
        return self.randomness.chance("syncState", self.sync_state_expiry_rate)

    def page_seconds(self, items: int) -> float:
        return (self.page_latency_ms + self.item_latency_ms * items) / 1000

    def as_json(self) -> dict[str, Any]:
        return {
            "throttleRate": self.throttle_rate,
            "throttleNext": self.throttle_next,
            "unavailableRate": self.unavailable_rate,
            "unavailableNext": self.unavailable_next,
            "retryAfter": self.retry_after,
            "latencyMs": self.latency_ms,
            "dropNotificationsRate": self.drop_notifications_rate,
            "dropNotificationsNext": self.drop_notifications_next,
            "mailboxConcurrency": self.mailbox_concurrency,
            "pageLatencyMs": self.page_latency_ms,
            "itemLatencyMs": self.item_latency_ms,
            "syncStateExpiryRate": self.sync_state_expiry_rate,
            "syncStateExpiryNext": self.sync_state_expiry_next,
            "operations": sorted(self.operations),
        }


@dataclass
class Stats:
    """Request counts per operation, faults served, and what happened to notifications."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    notifications: Counter[str] = field(default_factory=Counter)
    max_in_flight: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "faults": dict(self.faults),
            "notifications": dict(self.notifications),
            "maxInFlightPerMailbox": dict(self.max_in_flight),
        }

    def reset(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.faults.clear()
        self.notifications.clear()
        self.max_in_flight.clear()
