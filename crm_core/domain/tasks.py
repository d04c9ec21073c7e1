"""The work items that travel on storage queues between the webhook and the workers.

The webhook answers Graph within milliseconds by only checking and enqueueing; everything that
talks to Graph or NET Genium happens in a queue-triggered worker, which the host retries and
finally parks in `<queue>-poison` with the item as it was, so nothing is lost.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Queue names: the same strings in function_app.py's bindings, the runner and the docs.
CAPTURE_QUEUE = "capture-tasks"
LIFECYCLE_QUEUE = "lifecycle-tasks"
POISON_SUFFIX = "-poison"


# Ids per queue item: 100 Graph ids of ~150 characters stay far below a queue message's 64 KB.
MAX_ITEMS_PER_TASK = 100


class CaptureTask(BaseModel):
    """The changes of one POST to the webhook, for one subscription and change type.

    One queue item per POST, not one per notification: the webhook answers Graph after a single
    queue write, and the worker, which runs one delta round per mailbox anyway, gets the burst
    as one piece of work.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    subscription_id: str
    kind: Literal["mail", "events"]
    mailbox: str = Field(min_length=1)
    item_ids: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=MAX_ITEMS_PER_TASK)
    change_type: Literal["created", "updated", "deleted"]
    # True for a mail that a delta run could not capture: it is retried alone, by id.
    single: bool = False


class LifecycleTask(BaseModel):
    """One lifecycle notification that passed the clientState check."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    subscription_id: str
    event: Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]
