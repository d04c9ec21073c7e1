"""The JSON shapes of the runner's admin answers, for the runner that writes them and the tests that read them.

Kept apart from the endpoints so that a reader (`sandbox.stack`, the tests) can name the shape
without importing aiohttp, azure-functions and the storage SDK.
"""

from __future__ import annotations

from typing import TypedDict


class HostStatus(TypedDict):
    """`/admin/host/status` as the real host answers it, as far as health checks read it."""

    id: str
    state: str
    version: str
    processId: int


class InvocationStatus(TypedDict):
    """One function's counters in `/admin/sandbox/status`."""

    running: int
    succeeded: int
    failed: int


class QueueStatus(TypedDict):
    """One trigger queue in `/admin/sandbox/status`; counts are -1 when storage did not answer."""

    function: str
    approximate_message_count: int
    poison_message_count: int
    in_flight: int
    succeeded: int
    failed: int
    poisoned: int


class SandboxStatus(TypedDict, total=False):
    """`/admin/sandbox/status`: `idle` is what a test waits for; the rest says why it is not idle yet.
    `busy_seconds`: wall-clock seconds since start during which at least one invocation ran (what a
    consumption plan bills an instance for); absent while a supervised worker restarts."""

    state: str
    idle: bool
    queues: dict[str, QueueStatus]
    invocations: dict[str, InvocationStatus]
    busy_seconds: float
