"""The work items that travel on storage queues between the webhook and the workers.

The webhook answers Graph within milliseconds by only checking and enqueueing; everything that
talks to Graph or NET Genium happens in a queue-triggered worker, which the host retries and
finally parks in `<queue>-poison` with the item as it was, so nothing is lost.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm_core.domain.errors import ExternalServiceError

# Queue names: the same strings in function_app.py's bindings, the runner and the docs.
CAPTURE_QUEUE = "capture-tasks"
LIFECYCLE_QUEUE = "lifecycle-tasks"
CALENDAR_QUEUE = "calendar-tasks"
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
    item_ids: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, max_length=MAX_ITEMS_PER_TASK)
    change_type: Literal["created", "updated", "deleted"]
    # True for a mail that a delta run could not capture: it is retried alone, by id.
    single: bool = False
    # How often a throttled service already sent this task to wait (see `deferral`).
    deferrals: int = Field(default=0, ge=0)
    # True for the rest of a delta round that a run left at its time budget: no ids of its own.
    continuation: bool = False

    @model_validator(mode="after")
    def _names_work(self) -> Self:
        if not self.item_ids and not self.continuation:
            raise ValueError("item_ids: a capture task names at least one Graph id, unless it continues a round")
        return self


def continuation_task(mailbox: str, subscription_id: str = "") -> CaptureTask:
    """The queue item that goes on with a delta round a run left at its time budget."""
    return CaptureTask(
        subscription_id=subscription_id, kind="mail", mailbox=mailbox, change_type="created", continuation=True
    )


# A throttled task waits at least what the server asked, and longer each time (up to 5 minutes),
# at most this often: about four hours of throttling before it counts as a failed attempt again.
MAX_DEFERRALS = 50
_LONGEST_DEFERRAL_SECONDS = 300.0
_LONGEST_RETRY_AFTER_SECONDS = 3600.0


_Deferrable = TypeVar("_Deferrable", "CaptureTask", "CalendarTask")


def deferral(task: _Deferrable, error: BaseException) -> tuple[_Deferrable, float] | None:
    """The task to queue again, and after how many seconds, when a server asked us to wait.

    A throttled service (429 with `Retry-After`; or the mailbox busy in another process) is not a
    failure of the task: burning the queue's few attempts on it would poison whole bursts of mail
    during a throttling storm. So such a task goes back to the queue, invisible until the wait is
    over, and keeps its attempts. An outage (503, timeouts) is an ordinary failure, retried and
    finally poisoned by the host, so that an administrator hears of it.
    """
    if not isinstance(error, ExternalServiceError) or not error.throttled or error.retry_after is None:
        return None
    if task.deferrals >= MAX_DEFERRALS:
        return None
    backoff = min(2.0**task.deferrals, _LONGEST_DEFERRAL_SECONDS)
    delay = min(max(error.retry_after, backoff, 1.0), _LONGEST_RETRY_AFTER_SECONDS)
    return task.model_copy(update={"deferrals": task.deferrals + 1}), delay


class CalendarTask(BaseModel):
    """Sync one user's calendar (the poll timer, a notification's catch-up), or one activity that
    NET Genium's OnAfterSave named."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    mailbox: str | None = Field(default=None, min_length=1, max_length=200)
    activity_id: int | None = Field(default=None, ge=1, lt=2**63)
    # Also look for activities deleted in NET Genium (the poll timer's runs).
    sweep: bool = False
    deferrals: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _names_work(self) -> Self:
        if (self.mailbox is None) == (self.activity_id is None):
            raise ValueError("a calendar task names either a mailbox or an activity_id")
        return self


class ActivitySaved(BaseModel):
    """The body NET Genium's OnAfterSave script posts: `{"activity_id": 123}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    activity_id: int = Field(ge=1, lt=2**63, strict=True)


class LifecycleTask(BaseModel):
    """One lifecycle notification that passed the clientState check."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    subscription_id: str
    event: Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]
