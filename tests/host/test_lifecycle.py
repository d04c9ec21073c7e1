"""Starting and stopping the runner: the deployed app, refusals at start, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sandbox.azurite import Azurite
from sandbox.launch import REPO_ROOT, ServerProcess
from tests.host.conftest import start_runner
from tests.host.helpers import call, wait_for
from tests.unit.test_function_app import ENV as FUNCTION_APP_SETTINGS  # kept in step with Settings there


def test_runs_the_repository_function_app_unchanged(azurite: Azurite) -> None:
    # Only the health function: the others would reach for Graph and NET Genium, which this test does not start.
    server = ServerProcess(
        "sandbox.runner",
        ["--app-dir", str(REPO_ROOT), "--functions", "health"],
        health_path="/admin/host/status",
        env={**FUNCTION_APP_SETTINGS, "AzureWebJobsStorage": azurite.connection_string},
    )
    with server:
        answer = call("GET", server.base_url + "/api/health")
        assert answer.status == 200, server.log_tail()
        assert answer.json()["status"] == "ok"
        functions = {f["name"]: f for f in call("GET", server.base_url + "/admin/functions").json()}
        assert functions["health"]["disabled"] is False
        assert all(f["disabled"] for name, f in functions.items() if name != "health")


def test_sigterm_lets_running_invocations_finish_then_exits_0(azurite: Azurite, tmp_path: Path) -> None:
    runner = start_runner(azurite, tmp_path)
    process = runner.server.process
    assert process is not None
    try:
        body = f"slow-{uuid.uuid4().hex}"
        assert runner.post_json("/api/enqueue", [body]).status == 202
        wait_for(lambda: any(r["body"] == body for r in runner.records("queue")), what="the slow invocation to start")
    finally:
        runner.server.stop()  # SIGTERM, waits up to 5 s
    assert process.returncode == 0
    assert any(r["body"] == body for r in runner.records("queue-done"))
    with runner.queue_client() as queue:
        assert queue.get_queue_properties().approximate_message_count == 0  # completed, so deleted
    assert "Host stopped" in runner.server.log_tail()


def test_disabled_function_does_not_run(azurite: Azurite, tmp_path: Path) -> None:
    runner = start_runner(azurite, tmp_path, extra_env={"AzureWebJobs.at_startup.Disabled": "true"})
    try:
        functions = {f["name"]: f for f in runner.get("/admin/functions").json()}
        assert functions["at_startup"]["disabled"] is True
        assert runner.get("/admin/sandbox/status").json()["invocations"]["at_startup"]["succeeded"] == 0
        assert runner.records("timer") == []
    finally:
        runner.server.stop()


def test_app_with_an_unsupported_binding_is_refused_at_start(azurite: Azurite, tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.blob_trigger(arg_name='blob', path='in/{name}', connection='AzureWebJobsStorage')\n"
        "def on_blob(blob: func.InputStream) -> None:\n"
        "    pass\n"
    )
    server = ServerProcess(
        "sandbox.runner",
        ["--app-dir", str(tmp_path)],
        health_path="/admin/host/status",
        env={"AzureWebJobsStorage": azurite.connection_string},
    )
    with pytest.raises(RuntimeError, match="exited with 1") as refused:
        server.start()
    assert "blobTrigger" in str(refused.value)


def test_missing_connection_setting_is_named(tmp_path: Path) -> None:
    env = {"SAMPLE_QUEUE": "sample-x", "SAMPLE_RECORD_DIR": str(tmp_path), "AzureWebJobsStorage": ""}
    server = ServerProcess(
        "sandbox.runner",
        ["--app-dir", str(Path(__file__).parent / "apps" / "sample")],
        health_path="/admin/host/status",
        env=env,
    )
    with pytest.raises(RuntimeError, match="AzureWebJobsStorage"):
        server.start()
    assert os.environ.get("SAMPLE_QUEUE") is None
