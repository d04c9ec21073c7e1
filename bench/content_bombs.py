"""The worst bodies under the 1 MB cap, through the whole local service (issue 10, item 5).

Starts the local stack (Azurite, both emulators, the runner with the real function_app.py), then
delivers one body of each kind built to exhaust the worker (deep `<div>`, deep `<blockquote>`,
`<br>` by the hundred thousand, entities, inline styles, table cells), one at a time, while a
thread keeps posting change notifications to the webhook. Measures:

- `content_bomb_stored_s_max` (goal < 2): delivery until the activity is stored, the worst kind;
- `content_bomb_stored_s` per kind;
- `webhook_ack_ms_p99_during_bombs` (goal < 50): the webhook's answers while the bombs are processed.

    python bench/content_bombs.py

Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capture import DIRECTORY, customer_mail, p, wait_written
from sandbox.stack import SandboxStack

CAP = 1_000_000


def bombs() -> dict[str, str]:
    """Bodies of at most 1 MB, each built against one part of the content pipeline."""
    deep = CAP // 11
    quotes = CAP // 25
    return {
        "nested_div": ("<div>" * deep + "Order:4" + "</div>" * deep)[:CAP],
        "nested_blockquote": ("<blockquote>" * quotes + "x" + "</blockquote>" * quotes)[:CAP],
        "line_breaks": ("<br>" * (CAP // 4))[:CAP],
        "entities": ("&amp;&lt;&#x10FFFF;" * (CAP // 19))[:CAP],
        "inline_styles": ('<p style="color:red;background:url(x);width:expression(1)">a</p>' * (CAP // 64))[:CAP],
        "table_cells": ("<table><tr>" + "<td>x</td>" * (CAP // 10))[:CAP],
        "unclosed_tags": ("<b><i><u><span>" * (CAP // 16))[:CAP],
    }


def main() -> None:
    with SandboxStack(DIRECTORY) as stack:
        warm = [customer_mail(n, "warm") for n in range(3)]
        graph_ids = [stack.deliver(data)["id"] for data in warm]
        wait_written(stack, {m["internetMessageId"] for m in warm}, timeout=60)
        stack.settle(timeout=60)

        url = f"{stack.runners[0].base_url}/api/notifications"
        subscription = stack.mail_subscription()
        acks: list[float] = []
        stop = threading.Event()

        def post_notifications() -> None:
            with httpx.Client(timeout=10) as client:
                n = 0
                while not stop.is_set():
                    note = stack.change_notification(graph_ids[n % 3], subscription=subscription)
                    body = json.dumps({"value": [note]})
                    started = time.perf_counter()
                    answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
                    acks.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 202, answer.text
                    n += 1
                    time.sleep(0.02)

        poster = threading.Thread(target=post_notifications, daemon=True)
        poster.start()
        stored_s: dict[str, float] = {}
        try:
            for n, (kind, body) in enumerate(bombs().items()):
                data = customer_mail(n, f"bomb-{kind}")
                data["body"] = {"contentType": "html", "content": body}
                delivered = datetime.now(UTC)
                stack.deliver(data)
                done = wait_written(stack, {data["internetMessageId"]}, timeout=120)
                stored_s[kind] = round((done[data["internetMessageId"]] - delivered).total_seconds(), 3)
        finally:
            stop.set()
            poster.join(timeout=10)
        stack.wait_quiet(timeout=120)

    print(
        json.dumps(
            {
                "content_bomb_stored_s_max": max(stored_s.values()),
                "content_bomb_stored_s": stored_s,
                "webhook_ack_ms_p99_during_bombs": round(p(acks, 99), 1),
                "webhook_posts_during_bombs": len(acks),
                "body_cap_chars": CAP,
            }
        )
    )


if __name__ == "__main__":
    main()
