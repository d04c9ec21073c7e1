"""The status page in a real browser: Debian's headless Chromium (through playwright's DevTools
driver; playwright's own browser is never downloaded) against the sandbox, its figures checked
against the ledger and the queues, and a screenshot saved."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from playwright.sync_api import sync_playwright

from crm_core.domain.status import skip_category
from crm_core.storage.ledger import CaptureLedger, LedgerState
from crm_core.storage.tables import LEDGER_TABLE, TableStorage
from sandbox.stack import SandboxStack
from tests.e2e.conftest import CONTACTS, CRM, USERS
from tests.unit.messages import mail

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def ledger_rows(stack: SandboxStack) -> tuple[list[Any], dict[str, datetime]]:
    """The ledger's entries, and each completed row's CompletedAt, read through the storage adapter."""
    assert stack.azurite is not None
    connection = stack.azurite.connection_string

    async def read() -> tuple[list[Any], dict[str, datetime]]:
        async with TableStorage.from_connection_string(connection) as storage:
            entries = await CaptureLedger(storage).entries()
            table = await storage.table(LEDGER_TABLE)
            completed = {e["MessageId"]: e["CompletedAt"] async for e in table.list_entities() if "CompletedAt" in e}
        return entries, completed

    return asyncio.run(read())


def poison_one_item(stack: SandboxStack) -> None:
    """A capture task that failed for good, as the host leaves it in the poison queue."""
    assert stack.azurite is not None
    with QueueClient.from_connection_string(stack.azurite.connection_string, "capture-tasks-poison") as queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(json.dumps({"poisoned": uuid.uuid4().hex}))


def test_the_status_page_shows_the_ledgers_figures_in_chromium(stack: SandboxStack, tmp_path: Path) -> None:
    canaries = {f"SUBJECT-CANARY-{uuid.uuid4().hex[:8]}": f"BODY-CANARY-{uuid.uuid4().hex[:8]}" for _ in range(7)}
    pairs = iter(canaries.items())

    def content() -> dict[str, Any]:
        subject, body = next(pairs)
        return {"subject": subject, "body": body, "message_id": f"<status-{uuid.uuid4().hex}@e2e.example>"}

    for n in range(3):  # customer mail: captured
        stack.deliver(mail(sender=CONTACTS[n].email, to=[USERS[n].email], cc=[CRM], **content()))
    for n in range(2):  # unknown senders: skipped
        stack.deliver(mail(sender=f"stranger{n}@unknown.example", to=[USERS[0].email], cc=[CRM], **content()))
    stack.deliver(mail(sender="offers@newsletter.example", to=[CRM], cc=[], **content()))  # excluded sender
    auto = mail(sender=CONTACTS[5].email, to=[USERS[1].email], cc=[CRM], **content())
    auto["internetMessageHeaders"] = [{"name": "Auto-Submitted", "value": "auto-replied"}]
    stack.deliver(auto)  # automated
    stack.settle()
    poison_one_item(stack)

    entries, completed = ledger_rows(stack)
    written = [e for e in entries if e.state is LedgerState.WRITTEN]
    skipped = [e for e in entries if e.state is LedgerState.SKIPPED]
    assert (len(written), len(skipped)) == (3, 4)
    reasons = Counter(skip_category(e.reasons[0]) for e in skipped)
    assert reasons == {"sender not in address book": 2, "excluded sender": 1, "automated": 1}
    newest = max(written, key=lambda e: completed[e.message_id])
    poison_depth = stack.runner_status()["queues"]["capture-tasks"]["poison_message_count"]
    assert poison_depth == 1

    url = f"{stack.runners[0].base_url}/api/status"
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 200
    policy = answer.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'") and "img-src data:" in policy
    as_json = httpx.get(url, params={"format": "json"}, timeout=30).json()
    assert (as_json["captured"], as_json["skipped"], as_json["poison_total"]) == (3, 4, 1)

    requested: list[str] = []
    console: list[str] = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 900},
        )
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            response = page.goto(url)
            assert response is not None and response.status == 200

            def figure(name: str) -> str:
                return page.locator(f'[data-figure="{name}"]').inner_text().strip()

            assert figure("captured") == str(len(written))
            assert figure("skipped") == str(len(skipped))
            assert figure("poison-total") == str(poison_depth)
            assert page.locator('[data-figure="poison-depth"][data-queue="capture-tasks"]').inner_text() == "1"
            assert figure("last-captured-id") == newest.message_id
            shown_at = datetime.fromisoformat(
                str(page.locator('[data-figure="last-captured-at"]').get_attribute("data-value"))
            )
            assert figure("last-captured-at") == shown_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            assert shown_at == completed[newest.message_id].astimezone(UTC)
            assert figure("since-last-capture").endswith("ago")
            shown_reasons = {
                cell.get_attribute("data-reason"): int(cell.inner_text())
                for cell in page.locator('[data-figure="skip-count"]').all()
            }
            assert shown_reasons == dict(reasons)
            strangers = {
                cell.get_attribute("data-address"): int(cell.inner_text())
                for cell in page.locator('[data-figure="correspondent-count"]').all()
            }
            assert strangers == {"stranger0@unknown.example": 1, "stranger1@unknown.example": 1}
            assert page.locator('[data-table="subscriptions"] tr').count() >= 2  # a header and the mail subscription

            # The chart: inline SVG, 24 hours of two bars, drawn (bars have a size), summing to the ledger.
            chart = page.locator('svg[data-chart="hourly"]')
            assert chart.count() == 1 and chart.bounding_box() is not None
            bars = page.locator('svg[data-chart="hourly"] rect[data-bar]')
            assert bars.count() == 48
            counts = Counter[str]()
            for bar in bars.all():
                counts[str(bar.get_attribute("data-bar"))] += int(bar.get_attribute("data-count") or 0)
            assert counts == {"captured": 3, "skipped": 4}
            # Really drawn: the tallest bar spans the plot (162 px), an empty hour's bars have no height.
            heights = {int(bar.get_attribute("data-count") or 0): (bar.bounding_box() or {}).get("height", 0.0)
                       for bar in bars.all()}  # fmt: skip
            assert heights[max(heights)] > 150 and heights[0] == 0

            # The inline style ran under the page's policy (its hash matched): the page is styled.
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(246, 247, 249)"
            html = page.content()
            for subject, body in canaries.items():
                assert subject not in html and body not in html
            page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
        finally:
            browser.close()

    shot = (tmp_path / "status-page.png").read_bytes()
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    assert [u for u in requested if not u.startswith(stack.runners[0].base_url)] == []
    assert not [line for line in console if "Content Security Policy" in line or line.startswith("error")], console
