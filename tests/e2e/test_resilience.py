"""Nothing that happens to the cloud around the service loses or doubles a mail."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crm_core.netgenium.mapping import message_key
from crm_core.storage.ledger import CaptureLedger, LedgerState, ledger_key
from crm_core.storage.subscriptions import SubscriptionStore
from crm_core.storage.tables import LEDGER_TABLE, TableStorage
from sandbox.stack import SandboxStack
from tests.e2e.conftest import CONTACTS, DIRECTORY, USERS, crmservice
from tests.unit.messages import mail

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults a test sets end with it, whether it passed or not."""
    yield
    for name in ("stack", "fast_retry_stack"):
        if name in request.fixturenames:
            running: SandboxStack = request.getfixturevalue(name)
            running.graph_admin("DELETE", "faults").raise_for_status()
            running.netgenium_admin("POST", "faults", json={}).raise_for_status()


def unique_id(tag: str) -> str:
    return f"<{tag}-{uuid.uuid4().hex}@e2e.example>"


def customer_mail(n: int, tag: str) -> dict[str, Any]:
    contact, user = CONTACTS[n % len(CONTACTS)], USERS[n % len(USERS)]
    return mail(sender=contact.email, to=[user.email], subject=f"{tag} {n}", message_id=unique_id(tag))


def stored(stack: SandboxStack, message_ids: set[str]) -> list[dict[str, Any]]:
    return [r for r in stack.netgenium_records() if r.get("ng_message_id") in message_ids]


def wait_until(condition: Any, timeout: float = 60.0, message: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time" + (f": {message()}" if message else ""))


def storage_call(stack: SandboxStack, work: Any) -> Any:
    assert stack.azurite is not None
    connection = stack.azurite.connection_string

    async def run() -> Any:
        async with TableStorage.from_connection_string(connection) as storage:
            return await work(storage)

    return asyncio.run(run())


def active_subscription_ids(stack: SandboxStack) -> set[str]:
    """The CRM mailbox's live subscriptions (the users' calendar subscriptions are not these tests')."""
    return {s["id"] for s in stack.graph_subscriptions() if s.get("active") and "/messages" in str(s.get("resource"))}


def test_netgenium_down_for_30_seconds_then_everything_is_stored(stack: SandboxStack) -> None:
    stack.netgenium_faults(outage_seconds=30, retry_after="2")
    mails = [customer_mail(n, "outage") for n in range(10)]
    for data in mails:
        stack.deliver(data)
    ids = {m["internetMessageId"] for m in mails}
    time.sleep(3)
    written = {e.message_id for e in stack.ledger_entries() if e.state is LedgerState.WRITTEN}
    assert not ids & written  # nothing could be written yet
    stack.settle(timeout=150)
    records = stored(stack, ids)
    assert sorted(r["ng_message_id"] for r in records) == sorted(ids)
    assert stack.runner_status()["queues"]["capture-tasks"]["poison_message_count"] == 0


def test_dropped_notifications_are_caught_by_the_reconciliation_timer(stack: SandboxStack) -> None:
    stack.graph_faults(dropNotificationsRate=1.0)
    mails = [customer_mail(n, "dropped") for n in range(5)]
    for data in mails:
        stack.deliver(data)
    stack.settle(timeout=20, allow_missing=True)
    ids = {m["internetMessageId"] for m in mails}
    assert stored(stack, ids) == []
    stack.graph_admin("DELETE", "faults").raise_for_status()
    stack.run_function("reconcile")
    stack.settle()
    assert len(stored(stack, ids)) == 5


@pytest.mark.parametrize("event", ["subscriptionRemoved", "missed", "reauthorizationRequired"])
def test_lifecycle_events_recover_mail(stack: SandboxStack, event: str) -> None:
    before = active_subscription_ids(stack)
    [old] = before
    stack.graph_faults(dropNotificationsNext=1)
    lost = customer_mail(1, f"lost-{event}")
    stack.deliver(lost)
    stack.settle(timeout=10, allow_missing=True)
    assert stored(stack, {lost["internetMessageId"]}) == []
    answer = stack.graph_admin("POST", f"subscriptions/{old}/lifecycle", json={"lifecycleEvent": event})
    assert answer.status_code < 300, answer.text
    if event == "subscriptionRemoved":
        wait_until(lambda: bool(active_subscription_ids(stack)) and old not in active_subscription_ids(stack))
    wait_until(lambda: len(stored(stack, {lost["internetMessageId"]})) == 1)
    later = customer_mail(2, f"after-{event}")
    stack.deliver(later)
    stack.settle()
    assert len(stored(stack, {later["internetMessageId"]})) == 1


def graph_expiry(stack: SandboxStack, subscription_id: str) -> datetime:
    [graph_side] = [s for s in stack.graph_subscriptions() if s["id"] == subscription_id]
    return datetime.fromisoformat(graph_side["expirationDateTime"].replace("Z", "+00:00"))


def upkeep_idle(stack: SandboxStack) -> bool:
    return bool(stack.runner_status()["invocations"]["subscription_upkeep"]["running"] == 0)


def test_subscription_near_expiry_is_renewed(stack: SandboxStack) -> None:
    [subscription_id] = active_subscription_ids(stack)
    before = graph_expiry(stack, subscription_id)

    async def near_expiry(storage: TableStorage) -> None:
        store = SubscriptionStore(storage)
        record = await store.get(subscription_id)
        assert record is not None
        from dataclasses import replace

        await store.save(replace(record, expires_at=datetime.now(UTC) + timedelta(minutes=10)))

    storage_call(stack, near_expiry)
    stack.run_function("subscription_upkeep")

    wait_until(lambda: graph_expiry(stack, subscription_id) > before)
    wait_until(lambda: upkeep_idle(stack))
    assert active_subscription_ids(stack) == {subscription_id}


def test_subscription_gone_in_graph_is_recreated_by_upkeep(stack: SandboxStack) -> None:
    [old] = active_subscription_ids(stack)
    stack.graph_admin("POST", f"subscriptions/{old}/expire").raise_for_status()
    assert active_subscription_ids(stack) == set()
    stack.run_function("subscription_upkeep")
    wait_until(lambda: len(active_subscription_ids(stack)) == 1 and upkeep_idle(stack))
    assert old not in active_subscription_ids(stack)
    later = customer_mail(5, "after-expiry")
    stack.deliver(later)
    stack.settle()
    assert len(stored(stack, {later["internetMessageId"]})) == 1


def test_worker_died_between_write_and_ledger_is_not_a_second_activity(stack: SandboxStack) -> None:
    data = customer_mail(3, "died")
    message_id = data["internetMessageId"]
    # What a worker leaves behind when it dies right after the NET Genium write: the activity, and
    # a claim in the ledger that nobody completes.
    seeded = stack.netgenium_admin(
        "POST",
        "seed",
        json={
            "table": "ng_activities",
            "records": [
                {
                    "id": 900_001,
                    "ng_kind": "email",
                    "ng_message_id": message_id,
                    "ng_message_key": message_key(message_id),
                }
            ],
        },
    )
    assert seeded.status_code == 200, seeded.text

    async def dead_claim(storage: TableStorage) -> None:
        table = await storage.table(LEDGER_TABLE)
        partition, row = ledger_key(message_id)
        await table.create_entity(
            {
                "PartitionKey": partition,
                "RowKey": row,
                "MessageId": message_id,
                "State": "claimed",
                "ClaimedBy": "dead-worker",
                "ClaimedAt": datetime.now(UTC) - timedelta(minutes=10),
                "Attempts": 1,
            }
        )

    storage_call(stack, dead_claim)
    stack.deliver(data)
    stack.settle()
    assert [r["id"] for r in stored(stack, {message_id})] == [900_001]
    entry = storage_call(stack, lambda storage: CaptureLedger(storage).get(message_id))
    assert entry.state is LedgerState.WRITTEN
    assert entry.activity_id == 900_001


@pytest.fixture(scope="module")
def fast_retry_stack() -> Iterator[SandboxStack]:
    # host.json's values overridden by app settings, as the Functions host allows, so that a
    # poison run takes seconds instead of minutes.
    settings = {
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "2",
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
    }
    with SandboxStack(DIRECTORY, app_settings=settings) as running:
        yield running


def test_always_failing_mail_ends_in_poison_with_its_reason_and_replays(fast_retry_stack: SandboxStack) -> None:
    stack = fast_retry_stack
    stack.netgenium_faults(error_rate=1.0, operations=["insert"], retry_after="0")
    data = customer_mail(4, "poison")
    stack.deliver(data)
    wait_until(
        lambda: stack.runner_status()["queues"]["capture-tasks"]["poison_message_count"] >= 1,
        timeout=240,
        message=lambda: f"{stack.runner_status()} {stack.runners[0].log_tail(3000)}",
    )
    listed = crmservice(stack, "poison", "list", "--json")
    assert listed.returncode == 1, listed.stderr  # an item that failed for good: a problem found
    [item] = json.loads(listed.stdout)
    assert json.loads(item["item"])["kind"] == "mail"
    assert item["reason"].startswith("NetGenium")
    assert "503" in item["reason"] or "unavailable" in item["reason"].lower()
    assert data["body"]["content"] not in item["reason"]
    assert stored(stack, {data["internetMessageId"]}) == []

    stack.netgenium_admin("POST", "faults", json={}).raise_for_status()
    replayed = crmservice(stack, "poison", "replay", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["replayed"] == 1
    stack.settle()
    assert len(stored(stack, {data["internetMessageId"]})) == 1
    assert stack.runner_status()["queues"]["capture-tasks"]["poison_message_count"] == 0


def test_two_runners_on_one_queue_store_each_mail_once_within_graphs_mailbox_limit() -> None:
    """Graph allows 4 concurrent requests per mailbox for the whole app (the emulator refuses the
    fifth with 429 MailboxConcurrency): two runner processes with attachments to fetch stay under it."""
    with SandboxStack(DIRECTORY, runners=2) as stack:
        mails = [customer_mail(n, "pair") for n in range(60)]
        for data in mails:
            data["attachments"] = [{"name": "offer.txt", "contentType": "text/plain", "contentBytes": "b2ZmZXI="}]
        # Every Graph call takes a while, so that the two processes would overlap; the emulator admits
        # up to 100 at once here and records the most it saw, which must be Graph's 4.
        stack.graph_faults(latencyMs=100, mailboxConcurrency=100)
        stack.graph_admin("DELETE", "stats").raise_for_status()
        for start in range(0, len(mails), 20):  # bursts, as Exchange delivers a busy morning
            stack.graph_admin("POST", f"users/{stack.mailbox}/messages", json={"messages": mails[start : start + 20]})
        stack.delivered.extend(m["internetMessageId"] for m in mails)
        stack.settle(timeout=180)
        graph = stack.graph_admin("GET", "stats").json()
        assert max(graph["maxInFlightPerMailbox"].values()) <= 4, graph
        ids = {m["internetMessageId"] for m in mails}
        records = stored(stack, ids)
        assert len(records) == 60
        assert len({r["ng_message_id"] for r in records}) == 60
        total = sum(stack.runner_status(i)["invocations"]["capture"]["succeeded"] for i in range(2))
        assert total >= 1
