"""How Graph behaves: its documented worst case (`real`, the default) or the happy path (`ideal`).

An emulator written by the same hands as the adapter tends to agree with the adapter rather than
with Graph, so by default the emulator does what Graph's documentation allows it to do, each
behaviour citing its page in docs/GRAPH.md. A test that needs the happy path asks for it with
`--ideal`. Everything random draws from streams seeded by `--seed`, one stream per purpose, so a
run is repeatable and one behaviour's draws do not shift another's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """The behaviours that differ between Graph's documented worst case and its happy path."""

    name: str
    # Delta items in no particular order, within and across the pages of a round.
    shuffle_delta: bool
    # An updated item carries its id and the properties that changed; a created one is whole.
    partial_updates: bool
    # `$top` on message delta caps the number of items of the whole round (pages keep their size).
    top_caps_round: bool
    # A page takes page_latency_ms plus item_latency_ms per item it holds.
    page_latency_ms: float
    item_latency_ms: float
    # The share of delta and skip token uses that find the sync state gone (410 SyncStateNotFound).
    sync_state_expiry_rate: float
    # clientState is required on create and never read back (GET, list, PATCH answer null).
    client_state_secret: bool
    # After reauthorizationRequired, change notifications stop until reauthorize or renew.
    pause_until_reauthorized: bool
    # `$batch` answers its requests in any order.
    shuffle_batch: bool

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "shuffleDelta": self.shuffle_delta,
            "partialUpdates": self.partial_updates,
            "topCapsRound": self.top_caps_round,
            "pageLatencyMs": self.page_latency_ms,
            "itemLatencyMs": self.item_latency_ms,
            "syncStateExpiryRate": self.sync_state_expiry_rate,
            "clientStateSecret": self.client_state_secret,
            "pauseUntilReauthorized": self.pause_until_reauthorized,
            "shuffleBatch": self.shuffle_batch,
        }


REAL = Profile(
    name="real",
    shuffle_delta=True,
    partial_updates=True,
    top_caps_round=True,
    page_latency_ms=20.0,
    item_latency_ms=1.5,
    sync_state_expiry_rate=0.02,
    client_state_secret=True,
    pause_until_reauthorized=True,
    shuffle_batch=True,
)

IDEAL = Profile(
    name="ideal",
    shuffle_delta=False,
    partial_updates=False,
    top_caps_round=False,
    page_latency_ms=0.0,
    item_latency_ms=0.0,
    sync_state_expiry_rate=0.0,
    client_state_secret=False,
    pause_until_reauthorized=False,
    shuffle_batch=False,
)

PROFILES = {REAL.name: REAL, IDEAL.name: IDEAL}


class Randomness:
    """Seeded random streams by purpose (`throttle`, `syncState`, `rounds`, ...); `reset` starts them over."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, purpose: str) -> random.Random:
        found = self._streams.get(purpose)
        if found is None:
            found = self._streams[purpose] = random.Random(f"{self.seed}:{purpose}")
        return found

    def chance(self, purpose: str, rate: float) -> bool:
        return rate > 0 and self.stream(purpose).random() < rate

    def derived(self, purpose: str, key: object) -> random.Random:
        """A generator of its own for one thing (a delta round's order), the same for the same key."""
        return random.Random(f"{self.seed}:{purpose}:{key}")

    def reset(self) -> None:
        self._streams.clear()
