"""Capture through the whole local service, with both emulators answering after 20 ms.

Starts Azurite, the Graph and NET Genium emulators and the local Functions runner (the real
function_app.py), then measures:

- `webhook_ack_ms_p99`, `webhook_ack_batch100_ms_p99`: Graph's POST to the webhook until its 202,
  for one notification and for 100 in one POST (valid clientState);
- `e2e_msgs_per_s`: 1,000 relevant mails delivered in a burst, until the last is an activity;
- `e2e_latency_ms_p95`: delivery to stored activity, at a steady 5 mails per second;
- `graph_requests_per_message` (steady and burst) and `ng_requests_per_message`;
- `capture_cpu_ms_per_message`: CPU time (user + system, from /proc) of the runner process, which
  runs the app as the Functions worker does, per mail of the steady phase (each mail its own
  webhook call and delta round), less what the process spends idle in the same time (its queue
  polling and timers, the Functions host's work on Azure: `worker_idle_cpu_ms_per_s`); `_raw`
  without that, `_burst` for the burst (raw); and from the runner's busy time
  (`busy_seconds`: at least one invocation running), its executions and the process's peak RSS,
  `usd_per_100k_mails` on Flex Consumption (bench/cost.py; `_burst` beside it).

    python bench/capture.py [--burst 1000] [--steady 100] [--latency-ms 20] [--quick]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cost import flex_cost, process_cpu_seconds, process_peak_rss_mb
from crm_core.domain.directory import Contact, DirectoryFile, Order, User
from crm_core.storage.ledger import LedgerState
from crm_core.storage.tables import LEDGER_TABLE, TableStorage
from sandbox.stack import SandboxStack

CRM = "crm@firma.example"
USERS = [User(id=n, email=f"user{n}@firma.example", name=f"User {n}") for n in range(1, 21)]
CONTACTS = [Contact(id=1000 + n, email=f"buyer{n}@customer{n % 50}.example", company_id=n % 50) for n in range(500)]
DIRECTORY = DirectoryFile(
    crm_address=CRM, users=USERS, contacts=CONTACTS, orders=[Order(id=9000 + n, number=n) for n in range(1, 101)]
)


def p(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percentile / 100 * (len(ordered) - 1)))]


def customer_mail(n: int, tag: str) -> dict[str, Any]:
    contact, user = CONTACTS[n % len(CONTACTS)], USERS[n % len(USERS)]
    return {
        "internetMessageId": f"<{tag}-{n}-{uuid.uuid4().hex[:8]}@bench.example>",
        "conversationId": f"{tag}-conv-{n}",
        "subject": f"Delivery schedule {n}" + (f" Order:{n % 100 + 1}" if n % 10 == 0 else ""),
        "from": {"emailAddress": {"address": contact.email}},
        "toRecipients": [{"emailAddress": {"address": user.email}}],
        "ccRecipients": [{"emailAddress": {"address": CRM}}],
        "body": {"contentType": "html", "content": "<p>Hello,</p><p>when will it arrive?</p>" * 5},
        "internetMessageHeaders": [{"name": "Received", "value": "from mx.customer.example"}],
    }


def completed_at(stack: SandboxStack) -> dict[str, datetime]:
    assert stack.azurite is not None
    connection = stack.azurite.connection_string

    async def read() -> dict[str, datetime]:
        async with TableStorage.from_connection_string(connection) as storage:
            table = await storage.table(LEDGER_TABLE)
            return {
                e["MessageId"]: e["CompletedAt"]
                async for e in table.list_entities()
                if e.get("State") == LedgerState.WRITTEN.value and e.get("CompletedAt")
            }

    return asyncio.run(read())


def wait_written(stack: SandboxStack, ids: set[str], timeout: float) -> dict[str, datetime]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = completed_at(stack)
        if ids <= done.keys():
            return done
        time.sleep(0.25)
    missing = len(ids - completed_at(stack).keys())
    raise SystemExit(f"bench: {missing} of {len(ids)} mails not stored within {timeout}s")


def counts(stack: SandboxStack) -> dict[str, int]:
    return stack.request_counts()


def worker_usage(stack: SandboxStack) -> dict[str, float]:
    """The runner process's CPU seconds, busy seconds and executions so far."""
    process = stack.runners[0].process
    assert process is not None
    status = stack.runner_status()
    executions = sum(c["succeeded"] + c["failed"] for c in status["invocations"].values())
    return {"cpu": process_cpu_seconds(process.pid), "busy": status.get("busy_seconds", 0.0), "executions": executions}


def usage_per_mail(before: dict[str, float], after: dict[str, float], mails: int) -> dict[str, float]:
    return {key: (after[key] - before[key]) / mails for key in before}


def webhook_acks(stack: SandboxStack, graph_ids: list[str]) -> tuple[list[float], list[float]]:
    """Acks for single notifications and for POSTs of 100, against mails already stored."""
    url = f"{stack.runners[0].base_url}/api/notifications"
    note = functools.partial(stack.change_notification, subscription=stack.mail_subscription())

    single, batch = [], []
    with httpx.Client(timeout=10) as client:
        for i in range(200):
            body = json.dumps({"value": [note(graph_ids[i % len(graph_ids)])]})
            start = time.perf_counter()
            answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
            single.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 202, answer.text
        for i in range(40):
            body = json.dumps({"value": [note(graph_ids[(i * 100 + k) % len(graph_ids)]) for k in range(100)]})
            start = time.perf_counter()
            answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
            batch.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 202, answer.text
    return single, batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--steady", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="200 mails in the burst, 30 steady")
    args = parser.parse_args()
    if args.quick:
        args.burst, args.steady = min(args.burst, 200), min(args.steady, 30)

    with SandboxStack(DIRECTORY, graph_latency_ms=args.latency_ms, netgenium_latency_ms=args.latency_ms) as stack:
        # Warm up (the first capture creates tables and reads the user list), then measure.
        warm = [customer_mail(n, "warm") for n in range(5)]
        for data in warm:
            stack.deliver(data)
        wait_written(stack, {m["internetMessageId"] for m in warm}, timeout=60)
        stack.settle(timeout=60)

        # Steady: one mail every 1/rate seconds; latency from delivery to the ledger's completion.
        # The runner's CPU while nothing arrives (its queue polling and timers: on Azure the host's
        # part, not the Python worker's), to tell it apart from what the mails cost.
        idle_before, idle_started = worker_usage(stack), time.monotonic()
        time.sleep(5)
        idle_cpu_per_s = (worker_usage(stack)["cpu"] - idle_before["cpu"]) / (time.monotonic() - idle_started)
        stack.reset_counts()
        steady_before = worker_usage(stack)
        steady_started = time.monotonic()
        delivered: dict[str, datetime] = {}
        graph_ids: list[str] = []
        for n in range(args.steady):
            data = customer_mail(n, "steady")
            delivered[data["internetMessageId"]] = datetime.now(UTC)
            graph_ids.append(stack.deliver(data)["id"])
            time.sleep(1 / args.rate)
        done = wait_written(stack, set(delivered), timeout=120)
        stack.settle(timeout=60)
        steady_counts = counts(stack)
        steady_usage = usage_per_mail(steady_before, worker_usage(stack), args.steady)
        steady_idle_cpu = idle_cpu_per_s * (time.monotonic() - steady_started) / args.steady
        latencies = [(done[m] - at).total_seconds() * 1000 for m, at in delivered.items()]

        # Burst: every mail at once (in POSTs of 100, as fast as the emulator takes them).
        stack.reset_counts()
        burst_before = worker_usage(stack)
        burst = [customer_mail(n, "burst") for n in range(args.burst)]
        start = time.perf_counter()
        for offset in range(0, len(burst), 100):
            stack.graph_admin("POST", f"users/{CRM}/messages", json={"messages": burst[offset : offset + 100]})
        stack.delivered.extend(m["internetMessageId"] for m in burst)
        wait_written(stack, {m["internetMessageId"] for m in burst}, timeout=600)
        burst_seconds = time.perf_counter() - start
        stack.settle(timeout=120)
        burst_counts = counts(stack)
        burst_usage = usage_per_mail(burst_before, worker_usage(stack), args.burst)
        assert stack.runners[0].process is not None
        peak_rss_mb = process_peak_rss_mb(stack.runners[0].process.pid)

        single, batch = webhook_acks(stack, graph_ids)
        stack.wait_quiet(timeout=120)

    cost = flex_cost(steady_usage["busy"], steady_usage["executions"], peak_rss_mb)
    cost_burst = flex_cost(burst_usage["busy"], burst_usage["executions"], peak_rss_mb)
    print(
        json.dumps(
            {
                "capture_cpu_ms_per_message": round((steady_usage["cpu"] - steady_idle_cpu) * 1000, 2),
                "capture_cpu_ms_per_message_raw": round(steady_usage["cpu"] * 1000, 2),
                "worker_idle_cpu_ms_per_s": round(idle_cpu_per_s * 1000, 2),
                "capture_cpu_ms_per_message_burst": round(burst_usage["cpu"] * 1000, 2),
                "usd_per_100k_mails": cost["usd_per_100k_mails"],
                "usd_per_100k_mails_burst": cost_burst["usd_per_100k_mails"],
                "worker_busy_ms_per_message": round(steady_usage["busy"] * 1000, 2),
                "worker_busy_ms_per_message_burst": round(burst_usage["busy"] * 1000, 2),
                "worker_executions_per_message": round(steady_usage["executions"], 3),
                "worker_executions_per_message_burst": round(burst_usage["executions"], 3),
                "worker_peak_rss_mb": round(peak_rss_mb, 1),
                **{k: v for k, v in cost.items() if k != "usd_per_100k_mails"},
                "webhook_ack_ms_p99": round(p(single, 99), 1),
                "webhook_ack_batch100_ms_p99": round(p(batch, 99), 1),
                "e2e_msgs_per_s": round(args.burst / burst_seconds, 1),
                "e2e_latency_ms_p95": round(p(latencies, 95), 1),
                "e2e_latency_ms_p50": round(statistics.median(latencies), 1),
                "e2e_latency_ms_max": round(max(latencies), 1),
                "graph_requests_per_message_steady": round(steady_counts["graph"] / args.steady, 3),
                "graph_requests_per_message_burst": round(burst_counts["graph"] / args.burst, 3),
                "ng_requests_per_message_steady": round(steady_counts["netgenium"] / args.steady, 3),
                "ng_requests_per_message_burst": round(burst_counts["netgenium"] / args.burst, 3),
                "burst": args.burst,
                "steady": args.steady,
                "steady_rate_per_s": args.rate,
                "emulator_latency_ms": args.latency_ms,
                "cpu_count": os.cpu_count(),
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
