"""`FunctionsHost` used as a class inside the test's event loop: concurrency, `$return` outputs, admin calls."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from sandbox.azurite import Azurite
from sandbox.runner.host import FunctionsHost

APP = """
import asyncio
from datetime import UTC, datetime

import azure.functions as func

app = func.FunctionApp()
state = {"running": 0, "peak": 0, "bodies": [], "ticks": []}
together = asyncio.Event()


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
async def every_second(timer: func.TimerRequest) -> None:
    state["ticks"].append((datetime.now(UTC), timer.past_due, timer.schedule_status["Next"]))


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
@app.queue_output(arg_name="$return", queue_name="%PAR_QUEUE%", connection="AzureWebJobsStorage")
def fan_out(timer: func.TimerRequest) -> list[str]:
    return ["one", "two", "three"]


@app.queue_trigger(arg_name="msg", queue_name="%PAR_QUEUE%", connection="AzureWebJobsStorage")
async def gather(msg: func.QueueMessage) -> None:
    # Completes only once all three messages run at the same time: serial processing would time out.
    state["running"] += 1
    state["peak"] = max(state["peak"], state["running"])
    state["bodies"].append(msg.get_body().decode())
    if state["running"] >= 3:
        together.set()
    try:
        await asyncio.wait_for(together.wait(), timeout=10)
    finally:
        state["running"] -= 1
"""

HOST_JSON = {
    "version": "2.0",
    "extensions": {"queues": {"batchSize": 4, "newBatchThreshold": 2, "maxPollingInterval": "00:00:00.200"}},
}


@pytest.fixture
async def host(azurite: Azurite, tmp_path: Path) -> AsyncIterator[FunctionsHost]:
    (tmp_path / "function_app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "host.json").write_text(json.dumps(HOST_JSON))
    environ = {"AzureWebJobsStorage": azurite.connection_string, "PAR_QUEUE": f"par-{uuid.uuid4().hex[:12]}"}
    try:
        async with FunctionsHost(tmp_path, environ=environ) as running:
            yield running
    finally:
        # The app was imported into this process as `function_app`; leave no trace for other tests.
        sys.modules.pop("function_app", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


async def test_admin_call_fans_out_through_return_binding_and_runs_concurrently(host: FunctionsHost) -> None:
    async with aiohttp.ClientSession(base_url=host.base_url) as http:
        async with http.post("/admin/functions/fan_out", json={"input": ""}) as answer:
            assert answer.status == 202
        deadline_polls = 400
        status: dict = {}
        for _ in range(deadline_polls):
            async with http.get("/admin/sandbox/status") as answer:
                status = await answer.json()
            if status["invocations"]["gather"]["succeeded"] == 3 and status["idle"]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"three concurrent invocations did not complete: {status}")
    state = sys.modules["function_app"].state
    assert state["peak"] == 3
    assert sorted(state["bodies"]) == ["one", "three", "two"]
    assert status["invocations"]["fan_out"] == {"running": 0, "succeeded": 1, "failed": 0}
    queue = next(iter(status["queues"].values()))
    assert (queue["succeeded"], queue["failed"], queue["poisoned"]) == (3, 0, 0)


async def test_timer_fires_on_its_schedule(host: FunctionsHost) -> None:
    state = sys.modules["function_app"].state
    for _ in range(100):
        if len(state["ticks"]) >= 2:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the every-second timer did not fire twice within 5 s")
    (first, first_late, first_next), (second, _late, _next) = state["ticks"][:2]
    assert first_late is False
    assert first.replace(microsecond=0) < second.replace(microsecond=0)  # one firing per scheduled second
    assert datetime.fromisoformat(first_next) > first


async def test_host_reports_state_and_stops(host: FunctionsHost) -> None:
    async with aiohttp.ClientSession(base_url=host.base_url) as http, http.get("/admin/host/status") as answer:
        assert answer.status == 200
        assert (await answer.json())["state"] == "Running"
    await host.stop()
    assert host.state == "Stopped"
