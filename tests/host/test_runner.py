"""The local runner serving tests/host/apps/sample over real HTTP, with Azurite behind its queues."""

from __future__ import annotations

import base64
import uuid

from tests.host.helpers import Runner, call, wait_for


def test_http_trigger_gets_route_query_headers_and_body(sample_runner: Runner) -> None:
    answer = call(
        "POST",
        sample_runner.url("/api/echo/bob/3?x=1&y=two"),
        b"hello",
        {"X-Sample": "v", "Content-Type": "text/plain"},
    )
    assert answer.status == 201
    assert answer.headers["X-Echo"] == "yes"
    assert answer.headers["Content-Type"] == "application/json"
    seen = answer.json()
    assert seen["method"] == "POST"
    assert seen["route_params"] == {"name": "bob", "count": "3"}
    assert seen["params"] == {"x": "1", "y": "two"}
    assert seen["header"] == "v"
    assert seen["body"] == "hello"
    assert seen["url"] == sample_runner.url("/api/echo/bob/3?x=1&y=two")


def test_optional_parameter_and_literal_route_precedence(sample_runner: Runner) -> None:
    assert sample_runner.get("/api/echo/bob").json()["route_params"] == {"name": "bob"}
    assert sample_runner.get("/api/echo/a%20b").json()["route_params"] == {"name": "a b"}
    # `echo/special` is registered after `echo/{name}` and still wins: literal segments are more specific.
    special = sample_runner.get("/api/ECHO/special")
    assert special.status == 200
    assert special.body == b"special"
    assert special.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_unmatched_method_route_or_constraint_is_404(sample_runner: Runner) -> None:
    assert call("DELETE", sample_runner.url("/api/echo/bob")).status == 404
    assert sample_runner.get("/api/echo/bob/not-a-number").status == 404
    assert sample_runner.get("/api/nothing-here").status == 404
    assert sample_runner.get("/echo/bob").status == 404  # outside the route prefix


def test_unhandled_exception_is_500_without_details(sample_runner: Runner) -> None:
    answer = sample_runner.get("/api/boom")
    assert answer.status == 500
    assert b"must become" not in answer.body


def test_output_binding_feeds_the_queue_trigger(sample_runner: Runner) -> None:
    bodies = [f"ok-{uuid.uuid4().hex}" for _ in range(3)]
    assert sample_runner.post_json("/api/enqueue", bodies).status == 202

    def received() -> list[dict] | None:
        found = [r for r in sample_runner.records("queue") if r["body"] in bodies]
        return found if len(found) == len(bodies) else None

    records = wait_for(received, what="three queue invocations")
    assert {r["body"] for r in records} == set(bodies)
    assert all(r["dequeue_count"] == 1 and r["has_pop_receipt"] and r["inserted"] for r in records)
    assert all(r["function_name"] == "record" for r in records)
    assert len({r["invocation_id"] for r in records}) == 3
    # Succeeded messages are deleted: the queue drains and the runner says it is idle.
    status = wait_for(lambda: (s := sample_runner.status())["idle"] and s, what="idle runner")
    assert status["queues"][sample_runner.queue]["approximate_message_count"] == 0
    assert status["queues"][sample_runner.queue]["in_flight"] == 0


def test_failing_message_is_retried_then_poisoned_with_its_original_body(sample_runner: Runner) -> None:
    body = f"fail-{uuid.uuid4().hex}"
    assert sample_runner.post_json("/api/enqueue", [body]).status == 202

    wait_for(lambda: body in sample_runner.poison_bodies(), what="the message in the poison queue")
    attempts = [r for r in sample_runner.records("queue") if r["body"] == body]
    # host.json of the sample app: maxDequeueCount 3, so three attempts and no fourth.
    assert [r["dequeue_count"] for r in attempts] == [1, 2, 3]
    assert len({r["id"] for r in attempts}) == 1
    status = wait_for(lambda: (s := sample_runner.status())["idle"] and s, what="idle runner")
    assert status["queues"][sample_runner.queue]["poisoned"] >= 1


def test_message_that_is_not_base64_goes_to_poison_without_running(sample_runner: Runner) -> None:
    raw = f"not base64 {uuid.uuid4().hex}!"
    client = sample_runner.queue_client()
    try:
        client.send_message(raw)
    finally:
        client.close()

    def in_poison() -> bool:
        poison = sample_runner.queue_client(f"{sample_runner.queue}-poison")
        try:
            return raw in [m.content for m in poison.peek_messages(max_messages=32)]
        finally:
            poison.close()

    wait_for(in_poison, what="undecodable message in the poison queue")
    assert all(r["body"] != raw for r in sample_runner.records("queue"))


def test_message_put_by_another_client_is_base64_decoded(sample_runner: Runner) -> None:
    body = f"ok-direct-{uuid.uuid4().hex}"
    client = sample_runner.queue_client()
    try:
        client.send_message(base64.b64encode(body.encode()).decode())
    finally:
        client.close()
    wait_for(lambda: any(r["body"] == body for r in sample_runner.records("queue")), what="direct message")


def test_timer_runs_on_startup_and_on_demand(sample_runner: Runner) -> None:
    first = wait_for(lambda: sample_runner.records("timer"), what="the run_on_startup invocation")
    assert first[0] == {"past_due": False}
    assert call("POST", sample_runner.url("/admin/functions/at_startup"), b'{"input": ""}').status == 202
    wait_for(lambda: len(sample_runner.records("timer")) > len(first), what="the admin-triggered invocation")


def test_admin_endpoints_describe_the_app(sample_runner: Runner) -> None:
    status = sample_runner.get("/admin/host/status")
    assert status.status == 200
    assert status.json()["state"] == "Running"
    functions = {f["name"]: f for f in sample_runner.get("/admin/functions").json()}
    assert functions["echo"]["route"] == "echo/{name}/{count:int?}"
    assert functions["echo"]["methods"] == ["GET", "POST"]
    assert functions["record"]["queue"] == sample_runner.queue
    assert functions["enqueue"]["queue_outputs"] == [sample_runner.queue]
    assert functions["at_startup"]["schedule"] == "0 0 0 1 1 *"
    assert functions["at_startup"]["run_on_startup"] is True
    assert call("POST", sample_runner.url("/admin/functions/echo"), b"{}").status == 404


def test_runner_logs_never_hold_message_bodies(sample_runner: Runner) -> None:
    secret = f"ok-secret-{uuid.uuid4().hex}"
    failing = f"fail-secret-{uuid.uuid4().hex}"
    assert sample_runner.post_json("/api/enqueue", [secret, failing]).status == 202
    wait_for(lambda: failing in sample_runner.poison_bodies(), what="the failing message in the poison queue")
    log = sample_runner.server.log_tail(limit=1_000_000)
    assert "Executed 'Functions.record'" in log
    assert secret not in log
    assert failing not in log
