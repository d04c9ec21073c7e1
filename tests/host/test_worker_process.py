"""The runner's worker process killed and started again, and a queue message delivered twice.

`SANDBOX_RUNNER_WORKER_PROCESS=1` runs the host and the app in a child process behind the public
port; `POST /admin/sandbox/worker/kill` kills it as a crash would (no grace) and starts a new one.
`SANDBOX_RUNNER_MESSAGE_LEASE` shortens the lease, so the killed invocation's message comes back in
seconds. `POST /admin/sandbox/faults {"duplicate_next": N}` delivers the next N messages twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.azurite import Azurite
from sandbox.launch import ServerProcess
from tests.host.conftest import start_runner
from tests.host.helpers import SAMPLE_APP, Runner, wait_for


@pytest.fixture
def supervised(azurite: Azurite, tmp_path: Path) -> Iterator[Runner]:
    queue = f"sample-{uuid.uuid4().hex[:12]}"
    server = ServerProcess(
        "sandbox.runner",
        ["--app-dir", str(SAMPLE_APP), "--shutdown-grace", "3"],
        health_path="/admin/host/status",
        env={
            "AzureWebJobsStorage": azurite.connection_string,
            "SAMPLE_QUEUE": queue,
            "SAMPLE_RECORD_DIR": str(tmp_path),
            "SANDBOX_RUNNER_WORKER_PROCESS": "1",
            "SANDBOX_RUNNER_MESSAGE_LEASE": "3",
        },
    )
    server.start()
    try:
        yield Runner(server=server, record_dir=tmp_path, queue=queue, connection_string=azurite.connection_string)
    finally:
        server.stop()


def test_a_killed_worker_restarts_and_its_running_message_comes_back_after_the_lease(supervised: Runner) -> None:
    runner = supervised
    before = runner.get("/admin/sandbox/worker").json()
    assert before["state"] == "Running" and before["kills"] == 0
    assert runner.get("/admin/host/status").json()["processId"] == before["pid"] != before["supervisor_pid"]
    body = f"slow-{uuid.uuid4().hex}"
    assert runner.post_json("/api/enqueue", [body]).status == 202
    wait_for(lambda: any(r["body"] == body for r in runner.records("queue")), what="the slow invocation to start")

    killed = runner.post_json("/admin/sandbox/worker/kill", {"restart_after": 1}).json()
    assert killed["killed_pid"] == before["pid"]
    # No worker: the HTTP triggers answer 503 and the sandbox status is not idle.
    assert runner.get("/api/echo/x").status == 503
    assert runner.get("/admin/sandbox/status").json()["idle"] is False

    after = wait_for(
        lambda: (w := runner.get("/admin/sandbox/worker").json())["state"] == "Running" and w,
        what="a new worker process",
    )
    assert after["pid"] != before["pid"] and after["kills"] == 1 and after["restarts"] == 1
    assert runner.get("/api/echo/x").status == 201
    # The killed invocation never finished; its message reappears after the 3 s lease and runs again.
    done = wait_for(lambda: [r for r in runner.records("queue-done") if r["body"] == body], timeout=30, what="rerun")
    assert len(done) == 1
    runs = [r for r in runner.records("queue") if r["body"] == body]
    assert [r["dequeue_count"] for r in runs] == [1, 2]
    wait_for(lambda: runner.get("/admin/sandbox/status").json()["idle"], what="idle")


def test_a_queue_message_can_be_delivered_twice(supervised: Runner) -> None:
    runner = supervised
    assert runner.post_json("/admin/sandbox/faults", {"duplicate_next": 1}).status == 200
    body = f"dup-{uuid.uuid4().hex}"
    assert runner.post_json("/api/enqueue", [body]).status == 202
    runs = wait_for(
        lambda: len(r := [x for x in runner.records("queue") if x["body"] == body]) == 2 and r,
        what="the second delivery",
    )
    assert runs[0]["id"] != runs[1]["id"]
    faults = runner.get("/admin/sandbox/faults").json()
    assert faults["duplicate_next"] == 0 and sum(faults["duplicated"].values()) == 1
    assert runner.post_json("/api/enqueue", [body + "-other"]).status == 202
    wait_for(lambda: [x for x in runner.records("queue") if x["body"] == body + "-other"], what="the other message")
    wait_for(lambda: runner.get("/admin/sandbox/status").json()["idle"], what="idle")
    assert len([x for x in runner.records("queue") if x["body"] == body]) == 2
    assert len([x for x in runner.records("queue") if x["body"] == body + "-other"]) == 1


def test_without_the_setting_the_app_runs_in_the_runners_process_and_busy_time_counts(
    azurite: Azurite, tmp_path: Path
) -> None:
    runner = start_runner(azurite, tmp_path)
    try:
        assert runner.get("/admin/host/status").json()["processId"] == runner.server.process.pid  # type: ignore[union-attr]
        assert runner.get("/admin/sandbox/worker").status == 404
        assert runner.get("/admin/sandbox/faults").json()["duplicate_next"] == 0
        # busy_seconds: the time at least one invocation ran (a slow message sleeps a second).
        before = runner.get("/admin/sandbox/status").json()["busy_seconds"]
        body = f"slow-{uuid.uuid4().hex}"
        assert runner.post_json("/api/enqueue", [body]).status == 202
        wait_for(lambda: [r for r in runner.records("queue-done") if r["body"] == body], what="the slow message")
        wait_for(lambda: runner.get("/admin/sandbox/status").json()["idle"], what="idle")
        busy = runner.get("/admin/sandbox/status").json()["busy_seconds"] - before
        assert 1.0 <= busy < 30
    finally:
        runner.server.stop()
