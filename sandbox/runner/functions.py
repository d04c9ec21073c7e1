"""The functions an app registers, as the runner's triggers see them.

Indexing fills these in once at start; the queue listeners, the timers, the HTTP triggers and the
admin endpoints all read the same `FunctionSpec`, and all call a function through one `Invoke`, so
that bindings, counters and logging are the same whichever trigger fired.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NotRequired, Protocol, TypedDict

import azure.functions as func

from sandbox.runner.ncrontab import Schedule
from sandbox.runner.routes import RouteTemplate

log = logging.getLogger(__name__)


class FunctionLoadError(RuntimeError):
    """The app cannot be run as the Functions host would run it; the message names the function."""


@dataclass(frozen=True)
class QueueBinding:
    """A queue trigger or queue output: the queue name after `%SETTING%` expansion and its connection."""

    name: str
    queue_name: str
    connection: str


class FunctionInfo(TypedDict):
    """One entry of `/admin/functions`: names and settings only, never the code."""

    name: str
    trigger: str
    disabled: bool
    route: NotRequired[str]
    methods: NotRequired[list[str] | None]
    queue: NotRequired[str]
    schedule: NotRequired[str]
    run_on_startup: NotRequired[bool]
    queue_outputs: NotRequired[list[str]]


@dataclass
class FunctionSpec:
    """One registered function with only the bindings the runner acts on; the rest was refused at indexing."""

    name: str
    user_function: Callable[..., Any]
    is_async: bool
    trigger_type: str
    trigger_name: str
    route: RouteTemplate | None = None
    methods: frozenset[str] | None = None
    queue_trigger: QueueBinding | None = None
    schedule: Schedule | None = None
    schedule_text: str = ""
    run_on_startup: bool = False
    queue_outputs: list[QueueBinding] = field(default_factory=list)
    wants_context: bool = False
    disabled: bool = False

    def describe(self) -> FunctionInfo:
        """Only the keys that apply to this trigger, so a test can tell an HTTP function from a timer."""
        info: FunctionInfo = {"name": self.name, "trigger": self.trigger_type, "disabled": self.disabled}
        if self.route is not None:
            info["route"] = self.route.template
            info["methods"] = sorted(self.methods) if self.methods else None
        if self.queue_trigger is not None:
            info["queue"] = self.queue_trigger.queue_name
        if self.schedule is not None:
            info["schedule"] = self.schedule_text
            info["run_on_startup"] = self.run_on_startup
        if self.queue_outputs:
            info["queue_outputs"] = [output.queue_name for output in self.queue_outputs]
        return info


# What the runner passes as a function's trigger parameter: the three trigger types it serves.
TriggerValue = func.HttpRequest | func.QueueMessage | func.TimerRequest


class Invoke(Protocol):
    """The one way a trigger runs a function, so every trigger gets the same bindings, counters and logs.

    Raises what the function raised; the trigger decides what a failure means (retry, 500, wait).
    """

    async def __call__(self, spec: FunctionSpec, trigger_value: TriggerValue, *, reason: str) -> object: ...


def report_crash(task: asyncio.Task[Any]) -> None:
    """A poller or timer that dies stops its trigger for good; say so loudly instead of at garbage collection."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception(), exc_info=task.exception())
