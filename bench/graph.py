"""The Graph adapter against the Graph emulator over loopback HTTP: latency of "get one message"
through msgraph-sdk, and how many messages one delta request brings for a folder of new mail.

Starts `python -m sandbox.graph`, delivers N messages (default 1,000) into the inbox, runs one full
delta round with the adapter's default `Prefer: odata.maxpagesize`, then times M sequential
`get_message` calls (default 300). Prints one JSON object.

    python bench/graph.py [--messages 1000] [--gets 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from crm_core.domain.settings import Settings
from crm_core.graph.factory import create_graph_adapter
from crm_core.graph.options import GraphOptions
from sandbox.launch import ServerProcess

TOKEN = "bench-token"
MAILBOX = "crm@company.example"


def _settings(base_url: str) -> Settings:
    return Settings(
        crm_mailbox=MAILBOX,
        crm_notification_url="http://127.0.0.1:9/api/notifications",
        crm_lifecycle_url="http://127.0.0.1:9/api/lifecycle",
        netgenium_base_url="http://127.0.0.1:9",
        netgenium_api_key="bench",
        AzureWebJobsStorage="UseDevelopmentStorage=true",
        graph_auth="static_token",
        graph_static_token=TOKEN,
        graph_base_url=base_url + "/v1.0",
    )


def _message(index: int) -> dict[str, object]:
    return {
        "subject": f"Inquiry {index} Order:{index % 50}",
        "from": {"emailAddress": {"name": "Customer", "address": f"customer{index % 97}@zakaznik.example"}},
        "toRecipients": [{"emailAddress": {"address": "jana@company.example"}}],
        "ccRecipients": [{"emailAddress": {"address": MAILBOX}}],
        "body": {"contentType": "html", "content": f"<p>Hello,</p><p>about order {index}.</p>" * 20},
        "internetMessageHeaders": [{"name": "X-Mailer", "value": "bench"}],
    }


async def run(messages: int, gets: int) -> dict[str, object]:
    with ServerProcess("sandbox.graph", ["--token", TOKEN], health_path="/_admin/health") as server:
        async with httpx.AsyncClient(base_url=server.base_url + "/_admin", timeout=60) as admin:
            (await admin.post("/users", json={"userPrincipalName": MAILBOX})).raise_for_status()
            for start in range(0, messages, 200):
                chunk = [_message(i) for i in range(start, min(messages, start + 200))]
                (await admin.post(f"/users/{MAILBOX}/messages", json={"messages": chunk})).raise_for_status()
        options = GraphOptions()
        async with create_graph_adapter(_settings(server.base_url), options) as graph:
            ids: list[str] = []
            link: str | None = None
            requests = 0
            while True:  # one round, page by page, as MailboxSync reads it
                page = await graph.message_delta_page(MAILBOX, "inbox", link)
                requests += 1
                ids += [m.id for m in page.messages if m.id]
                if page.delta_link:
                    break
                link = page.next_link
            assert len(ids) == messages, (len(ids), messages)
            await graph.get_message(MAILBOX, ids[0])  # warm the connection and the SDK's imports
            samples = []
            for index in range(gets):
                started = time.perf_counter()
                await graph.get_message(MAILBOX, ids[index % len(ids)])
                samples.append((time.perf_counter() - started) * 1000)
    return {
        "graph_get_message_ms_p50": round(statistics.median(samples), 3),
        "graph_get_message_ms_p95": round(statistics.quantiles(samples, n=20)[18], 3),
        "delta_messages_per_request": round(messages / requests, 1),
        "delta_requests": requests,
        "delta_page_size": options.delta_page_size,
        "messages": messages,
        "gets": gets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--gets", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.messages, args.gets))))


if __name__ == "__main__":
    main()
