"""`crmservice backfill` as an administrator runs it against the sandbox: mail older than the first
run's cutoff, which the live path never read, is captured through the same ledger; a dry run writes
nothing; Ctrl+C stops it and the same command continues."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crm_core.storage.cursors import SyncCursors
from crm_core.storage.tables import TableStorage
from crm_core.usecases.backfill import backfill_cursor
from sandbox.stack import SandboxStack
from tests.e2e.conftest import CONTACTS, CRM, USERS
from tests.unit.messages import mail

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
SINCE = DAY - timedelta(days=120)
UNTIL = DAY - timedelta(days=60)  # given explicitly: the default (30 days back) covers the same mails


def command(stack: SandboxStack) -> tuple[list[str], dict[str, str]]:
    script = Path(sys.executable).parent / "crmservice"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    return base, {**os.environ, **stack.app_settings(stack.runners[0].port)}


def run(stack: SandboxStack, *args: str) -> subprocess.CompletedProcess[str]:
    base, env = command(stack)
    return subprocess.run([*base, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)


def range_args(*extra: str) -> list[str]:
    return ["backfill", "--since", SINCE.date().isoformat(), "--until", UNTIL.date().isoformat(), *extra]


def deliver_history(stack: SandboxStack, tag: str, n: int) -> list[str]:
    """n customer mails received 61.. days ago, delivered with their notifications lost (they were in
    the mailbox before the service's first run), plus a stranger's; returns the customer mails' ids."""
    stack.graph_faults(dropNotificationsRate=1.0)
    ids = []
    for i in range(n):
        ids.append(f"<history-{tag}-{i}-{uuid.uuid4().hex[:8]}@e2e.example>")
        received = (UNTIL - timedelta(days=1, hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        subject = "Order:5 history" if i == 0 else f"History {i}"
        stack.deliver(
            mail(
                sender=CONTACTS[i % len(CONTACTS)].email,
                to=[USERS[i % len(USERS)].email],
                cc=[CRM],
                subject=subject,
                message_id=ids[-1],
                receivedDateTime=received,
            )
        )
    stack.deliver(
        mail(
            sender=f"prospect-{tag}@stranger.example",
            to=[USERS[0].email],
            cc=[CRM],
            message_id=f"<history-{tag}-stranger@e2e.example>",
            receivedDateTime=(UNTIL - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    )
    stack.settle(timeout=20, allow_missing=True)
    stack.graph_admin("DELETE", "faults").raise_for_status()
    return ids


def activities_by_message(stack: SandboxStack) -> Counter[str]:
    return Counter(str(r.get("ng_message_id")) for r in stack.netgenium_records("ng_activities"))


def ledger_ids(stack: SandboxStack) -> set[str]:
    return {e.message_id for e in stack.ledger_entries()}


def saved_cursor(stack: SandboxStack) -> dict[str, Any] | None:
    assert stack.azurite is not None
    connection = stack.azurite.connection_string
    since = datetime.fromisoformat(SINCE.date().isoformat()).replace(tzinfo=UTC)
    until = datetime.fromisoformat(UNTIL.date().isoformat()).replace(tzinfo=UTC)

    async def read() -> str | None:
        async with TableStorage.from_connection_string(connection) as storage:
            return await SyncCursors(storage).get(backfill_cursor(CRM, "inbox", since, until))

    value = asyncio.run(read())
    return json.loads(value) if value else None


def test_backfill_dry_run_then_interrupted_run_then_resumed(stack: SandboxStack) -> None:
    ids = deliver_history(stack, "a", 24)
    stack.run_function("reconcile")  # the live path's round: its cutoff is 30 days back
    stack.wait_quiet()
    assert not ledger_ids(stack) & set(ids)

    dry = run(stack, *range_args("--dry-run"))
    assert dry.returncode == 0, dry.stderr
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    by_id = {line["message_id"]: line for line in lines}
    assert set(ids) <= set(by_id) and len(lines) == 25
    first = by_id[ids[0]]
    assert (first["would"], first["capture"], first["direction"], first["order_id"]) == (
        "would store",
        True,
        "incoming",
        1005,
    )
    assert by_id["<history-a-stranger@e2e.example>"]["reasons"] == ["sender not in address book"]
    assert not ledger_ids(stack) & set(by_id) and saved_cursor(stack) is None  # nothing written

    # Slow Graph pages, so that Ctrl+C comes in the middle of the run.
    stack.graph_faults(latencyMs=600, operations=["listMessages"])
    base, env = command(stack)
    process = subprocess.Popen(
        [*base, *range_args("--page-size", "4")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        cursor = saved_cursor(stack)
        if cursor and cursor["mails"] >= 8:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "interrupted" in err
    stopped = saved_cursor(stack)
    assert stopped is not None and not stopped.get("done") and 8 <= stopped["mails"] < 25

    stack.graph_admin("DELETE", "faults").raise_for_status()
    resumed = run(stack, *range_args("--json"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert "mail/s" in resumed.stderr and "25/25" in resumed.stderr  # the progress bar: rate, count of total
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert summary["mails"] == 25 and summary["failed"] == []
    assert summary["resumed_from"] is not None
    outcomes = summary["outcomes"]
    assert outcomes["skipped"] == 1 and outcomes["written"] + outcomes.get("duplicate", 0) == 24

    activities = activities_by_message(stack)
    assert all(activities[i] == 1 for i in ids), {i: activities[i] for i in ids}  # once each, none lost
    assert saved_cursor(stack) == {**(saved_cursor(stack) or {}), "done": True}

    again = run(stack, *range_args())
    assert again.returncode == 0 and "backfilled already" in again.stdout
    assert all(activities_by_message(stack)[i] == 1 for i in ids)


def test_backfill_bad_usage_exits_2(stack: SandboxStack) -> None:
    inverted = run(stack, "backfill", "--since", "2024-03-01", "--until", "2024-01-01")
    assert inverted.returncode == 2 and "is not before" in inverted.stderr
    future = run(stack, "backfill", "--since", (DAY + timedelta(days=1)).date().isoformat())
    assert future.returncode == 2 and "cutoff" in future.stderr
    assert run(stack, "backfill", "--since", "yesterday").returncode == 2
    assert run(stack, "backfill").returncode == 2
