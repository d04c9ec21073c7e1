"""The operator's commands against the live service's state: why, correspondents, poison; exit statuses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from crm_core.domain.tasks import CaptureTask
from sandbox.stack import SandboxStack
from tests.e2e.conftest import CONTACTS, CRM, USERS, crmservice
from tests.unit.messages import mail

ROOT = Path(__file__).resolve().parents[2]


def test_why_answers_from_the_ledger_and_correspondents_count_strangers(stack: SandboxStack) -> None:
    stored_id = f"<stored-{uuid.uuid4().hex}@e2e.example>"
    stack.deliver(mail(sender=CONTACTS[0].email, to=[USERS[0].email], subject="Order:3", message_id=stored_id))
    stranger_ids = []
    for n in range(3):
        stranger_ids.append(f"<stranger-{n}-{uuid.uuid4().hex}@e2e.example>")
        stack.deliver(mail(sender="Buyer@Prospect.example", to=[USERS[1].email], cc=[CRM], message_id=stranger_ids[-1]))
    stack.settle()

    stored = crmservice(stack, "why", stored_id, "--json")
    assert stored.returncode == 0, stored.stderr
    entry = json.loads(stored.stdout)
    assert (entry["state"], entry["direction"], entry["order_id"]) == ("written", "incoming", 1003)
    assert entry["contacts"] == [CONTACTS[0].id] and entry["users"] == [USERS[0].id]
    assert entry["reasons"][-1] == "order 3 named in the subject"

    skipped = json.loads(crmservice(stack, "why", stranger_ids[0], "--json").stdout)
    assert (skipped["state"], skipped["reasons"]) == ("skipped", ["sender not in address book"])

    unknown = crmservice(stack, "why", "<never@seen.example>")
    assert unknown.returncode == 1
    assert "never seen" in unknown.stderr

    rows = json.loads(crmservice(stack, "correspondents", "--json").stdout)
    [buyer] = [r for r in rows if r["address"] == "buyer@prospect.example"]
    assert buyer["count"] == 3
    assert CRM not in {r["address"] for r in rows}


def test_poison_list_finds_a_problem_and_replay_moves_it_back(stack: SandboxStack) -> None:
    """A capture task that failed for good: `poison list` exits 1 with it, `replay` puts it back and
    the service captures its mail; then the poison queue is empty (exit 0)."""
    assert stack.azurite is not None
    message_id = f"<poisoned-{uuid.uuid4().hex}@e2e.example>"
    stack.graph_faults(dropNotificationsNext=1)
    created = stack.deliver(mail(sender=CONTACTS[2].email, to=[USERS[2].email], cc=[CRM], message_id=message_id))
    stack.settle(timeout=10, allow_missing=True)
    assert crmservice(stack, "why", message_id).returncode == 1  # the notification was lost: never seen
    task = CaptureTask(
        subscription_id="", kind="mail", mailbox=CRM, item_ids=[created["id"]], change_type="created", single=True
    ).model_dump_json()

    connection = stack.azurite.connection_string

    async def poison() -> None:
        async with QueueClient.from_connection_string(connection, "capture-tasks-poison") as q:
            with contextlib.suppress(ResourceExistsError):
                await q.create_queue()
            await q.send_message(task)

    asyncio.run(poison())

    listed = crmservice(stack, "poison", "list", "--json")
    assert listed.returncode == 1, listed.stderr
    [item] = json.loads(listed.stdout)
    assert set(item) == {"item", "attempts", "reason"} and json.loads(item["item"])["item_ids"] == [created["id"]]
    assert crmservice(stack, "poison", "list", "--limit", "33").returncode == 2

    replayed = crmservice(stack, "poison", "replay", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout) == {"queue": "capture-tasks", "replayed": 1}
    stack.settle()
    why = crmservice(stack, "why", message_id, "--json")
    assert why.returncode == 0 and json.loads(why.stdout)["state"] == "written"
    empty = crmservice(stack, "poison", "list")
    assert empty.returncode == 0 and "is empty" in empty.stdout


def test_usage_errors_exit_2_and_help_exits_0(stack: SandboxStack) -> None:
    for args in (["why"], ["correspondents", "--top", "0"], ["poison", "list", "--limit", "0"], ["calendar"]):
        assert crmservice(stack, *args).returncode == 2, args
    for args in (["--help"], ["why", "--help"], ["calendar", "status", "--help"], ["backfill", "--help"]):
        shown = crmservice(stack, *args)
        assert shown.returncode == 0 and shown.stdout.startswith("usage: crmservice"), args
