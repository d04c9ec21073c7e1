"""Faults of the queue service itself, injected through the runner's admin API.

Azure Queue storage delivers at least once: a message whose visibility lease ran out while its
function still ran, or whose delete was lost, is delivered again, and the function must not mind.
`POST /admin/sandbox/faults {"duplicate_next": N, "queue": "capture-tasks"}` makes the next N
messages received from that trigger queue (any, without `queue`) arrive twice: as the first copy
starts, an identical second copy is put on the queue, to be received and run like any message.
`GET` reads the settings and how many were duplicated; `DELETE` clears them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunnerFaults:
    duplicate_next: int = 0
    queue: str | None = None
    duplicated: dict[str, int] = field(default_factory=dict)

    def update(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ValueError("faults are a JSON object")
        count = body.get("duplicate_next", self.duplicate_next)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError("duplicate_next must be a whole number of at least 0")
        queue = body.get("queue", self.queue)
        if queue is not None and not isinstance(queue, str):
            raise ValueError("queue must be a queue name")
        self.duplicate_next, self.queue = count, (queue.lower() if queue else None)

    def take_duplicate(self, queue_name: str) -> bool:
        """Whether this message, received from `queue_name` now, is to be delivered a second time."""
        if self.duplicate_next <= 0 or (self.queue is not None and self.queue != queue_name):
            return False
        self.duplicate_next -= 1
        self.duplicated[queue_name] = self.duplicated.get(queue_name, 0) + 1
        return True

    def clear(self) -> None:
        self.duplicate_next, self.queue = 0, None

    def as_json(self) -> dict[str, Any]:
        return {"duplicate_next": self.duplicate_next, "queue": self.queue, "duplicated": dict(self.duplicated)}
