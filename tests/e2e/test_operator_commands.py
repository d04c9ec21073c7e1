"""The operator's commands against the live service's state: why, correspondents."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

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
