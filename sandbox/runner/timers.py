"""Timer triggers fired on their NCRONTAB schedule (UTC), and once at start when `run_on_startup`.

A timer does not overlap itself: the next occurrence is taken after the previous run ended, as the
host does, so a slow run skips occurrences instead of piling them up.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from azure.functions.timer import TimerRequest

from sandbox.runner.functions import FunctionSpec, Invoke, report_crash


async def _fire(invoke: Invoke, spec: FunctionSpec, *, past_due: bool, last: datetime | None, next_: datetime) -> None:
    now = datetime.now(UTC)
    request = TimerRequest(
        past_due=past_due,
        schedule_status={
            "Last": (last or now).isoformat(),
            "Next": next_.isoformat(),
            "LastUpdated": now.isoformat(),
        },
        schedule={"AdjustForDST": True},
    )
    with contextlib.suppress(Exception):  # logged by invoke; a timer just waits for its next occurrence
        await invoke(spec, request, reason="Timer fired" if last else "Timer fired at startup")


async def run_timer(invoke: Invoke, spec: FunctionSpec) -> None:
    """Runs until cancelled at stop; a failed run only waits for the next occurrence, as in Azure."""
    assert spec.schedule is not None
    last: datetime | None = None
    if spec.run_on_startup:
        await _fire(invoke, spec, past_due=False, last=None, next_=spec.schedule.next_after(datetime.now(UTC)))
        last = datetime.now(UTC)
    while True:
        due = spec.schedule.next_after(datetime.now(UTC))
        # The loop's clock is monotonic, the schedule is wall time: a few ms of margin so that the
        # function never runs before its instant (a `next_after(now)` would then give the same instant).
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.005)
        early = (due - datetime.now(UTC)).total_seconds()
        if early > 0:
            await asyncio.sleep(early + 0.005)
        late = (datetime.now(UTC) - due).total_seconds()
        await _fire(invoke, spec, past_due=late > 1.0, last=last or due, next_=spec.schedule.next_after(due))
        last = due


def start_timers(invoke: Invoke, functions: list[FunctionSpec]) -> list[asyncio.Task[None]]:
    """One task per enabled timer function, named so that a crash report says which timer died."""
    timers: list[asyncio.Task[None]] = []
    for spec in functions:
        if spec.schedule is not None and not spec.disabled:
            timer = asyncio.create_task(run_timer(invoke, spec), name=f"timer:{spec.name}")
            timer.add_done_callback(report_crash)
            timers.append(timer)
    return timers
