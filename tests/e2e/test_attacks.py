"""Issue 10, end to end: the attacks that showed on the running stack, each now harmless.

Runner, Azurite and both emulators over real HTTP: Message-IDs that differ only in case stay two
mails with their own files; a body built to exhaust the worker is stored, bounded, with a note;
a throttling storm longer than the queue's attempts poisons nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crm_core.domain.email_content import FLAT_NOTE
from sandbox.stack import NETGENIUM_KEY, SandboxStack
from tests.e2e.conftest import CONTACTS, CRM, DIRECTORY, USERS, crmservice
from tests.e2e.test_resilience import customer_mail, stored, unique_id, wait_until
from tests.unit.messages import mail


@pytest.fixture(scope="module")
def two_attempts_stack() -> Iterator[SandboxStack]:
    """A stack whose queue gives up after two failed attempts (host.json overridden by app settings)."""
    settings = {
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "2",
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
    }
    with SandboxStack(DIRECTORY, app_settings=settings) as running:
        yield running


def _files(stack: SandboxStack, record: dict[str, Any]) -> dict[str, bytes]:
    assert stack.netgenium is not None
    out = {}
    for item in record.get("ng_attachments") or []:
        answer = httpx.get(
            f"{stack.netgenium.base_url}/api/v1/tables/ng_activities/records/{record['id']}/files/{item['file_id']}",
            headers={"X-Api-Key": NETGENIUM_KEY},
            timeout=30,
        )
        answer.raise_for_status()
        out[item["filename"]] = answer.content
    return out


def test_message_ids_that_differ_only_in_case_are_two_activities_with_their_own_files(stack: SandboxStack) -> None:
    tag = unique_id("quote").strip("<>").split("@")[0]
    first_id, second_id = f"<Quote-{tag}-ABC@x.example>", f"<quote-{tag}-abc@x.example>"
    for message_id, contact, content in ((first_id, CONTACTS[0], b"offer A"), (second_id, CONTACTS[1], b"offer B")):
        data = mail(sender=contact.email, to=[USERS[0].email], cc=[CRM], subject="Quote", message_id=message_id)
        data["attachments"] = [
            {"name": "quote.pdf", "contentType": "application/pdf", "contentBytes": base64.b64encode(content).decode()}
        ]
        stack.deliver(data)
    stack.settle()

    records = {r["ng_message_id"]: r for r in stored(stack, {first_id, second_id})}
    assert set(records) == {first_id, second_id}
    assert records[first_id]["id"] != records[second_id]["id"]
    assert records[first_id]["ng_contact_id"] == CONTACTS[0].id
    assert records[second_id]["ng_contact_id"] == CONTACTS[1].id
    assert _files(stack, records[first_id]) == {"quote.pdf": b"offer A"}
    assert _files(stack, records[second_id]) == {"quote.pdf": b"offer B"}


def test_a_body_of_deep_nesting_is_stored_bounded_with_a_note_and_the_service_keeps_answering(
    stack: SandboxStack,
) -> None:
    depth = 90_000  # about 1 MB of markup: the sanitizer alone took 45 s at this depth before
    bomb = customer_mail(1, "bomb")
    bomb["body"] = {"contentType": "html", "content": "<div>" * depth + "Order:4" + "</div>" * depth}
    quotes = customer_mail(2, "quotes")
    quotes["body"] = {"contentType": "html", "content": "<blockquote>" * 6000 + "hello" + "</blockquote>" * 6000}
    after = customer_mail(3, "after-bomb")
    for data in (bomb, quotes, after):
        stack.deliver(data)
    stack.settle(timeout=180)

    records = {r["ng_message_id"]: r for r in stored(stack, {m["internetMessageId"] for m in (bomb, quotes, after)})}
    assert len(records) == 3  # stored, not poisoned
    bombed = records[bomb["internetMessageId"]]
    assert FLAT_NOTE in bombed["ng_body"] and "Order:4" in bombed["ng_body"]
    assert bombed["ng_body_html"].count("<div>") <= 64
    assert len(records[quotes["internetMessageId"]]["ng_body"]) < 300_000  # not 108 million characters
    assert stack.runner_status()["queues"]["capture-tasks"]["poison_message_count"] == 0


def test_a_throttling_storm_longer_than_the_queues_attempts_poisons_nothing(two_attempts_stack: SandboxStack) -> None:
    """maxDequeueCount is 2 here: before, two throttled runs put the mail in the poison queue."""
    stack = two_attempts_stack
    stack.graph_faults(throttleRate=1.0, retryAfter=1)
    data = customer_mail(7, "storm")
    stack.deliver(data)

    def poisoned() -> int:
        listed = crmservice(stack, "poison", "list", "--json")
        assert listed.returncode in (0, 1), listed.stderr  # 1: there are poison items (counted below)
        return len(json.loads(listed.stdout))

    wait_until(
        lambda: sum(
            stack.runner_status()["invocations"]["capture"][k] for k in ("succeeded", "failed")
        ) >= 4,
        timeout=120,
        message=lambda: json.dumps(stack.runner_status()),
    )
    assert poisoned() == 0  # throttled four times and more, nothing in the poison queue
    stack.graph_admin("DELETE", "faults").raise_for_status()
    stack.settle(timeout=120)
    assert len(stored(stack, {data["internetMessageId"]})) == 1
    assert stack.runner_status()["queues"]["capture-tasks"]["poison_message_count"] == 0
