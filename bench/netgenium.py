"""NET Genium figures: a 50-address contact lookup against 100,000 contacts, and activity writes.

Runs the emulator as a real process over loopback (a SQLite file in WAL mode, as the sandbox
does) and prints one JSON object:

- `ng_lookup_ms_p50`: one `find_contacts_by_emails` call with 50 addresses (goal < 10 ms);
- `ng_create_activity_per_s`: e-mail activities created per second by 8 concurrent writers
  (goal >= 200/s).

    .venv/bin/python bench/netgenium.py [--contacts 100000] [--calls 200] [--creates 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime

import httpx

from crm_core.netgenium import EmailActivity, NetGeniumClient
from sandbox.launch import ServerProcess

API_KEY = "bench-key"


def seed_contacts(base_url: str, count: int) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=120) as admin:
        for start in range(1, count + 1, 10_000):
            records = [
                {"id": n, "ng_email": f"contact.{n}@customer{n % 997}.example", "ng_company_id": n % 5000 or None}
                for n in range(start, min(start + 10_000, count + 1))
            ]
            admin.post("/_admin/seed", json={"table": "ng_contacts", "records": records}).raise_for_status()
    return time.perf_counter() - started


async def lookups(client: NetGeniumClient, contacts: int, calls: int, counts: httpx.AsyncClient) -> dict[str, float]:
    rng = random.Random(7)

    def addresses() -> list[str]:
        picked = [rng.randint(1, contacts) for _ in range(40)]
        known = [f"contact.{n}@customer{n % 997}.example" for n in picked]
        unknown = [f"someone.{rng.randint(1, 10**9)}@elsewhere.example" for _ in range(10)]
        return known + unknown

    for _ in range(10):  # warm up the connection pool and SQLite's page cache
        await client.find_contacts_by_emails(addresses())
    before = (await counts.get("/_admin/counts")).json()["counts"].get("query", 0)
    timings = []
    found = 0
    for _ in range(calls):
        batch = addresses()
        started = time.perf_counter()
        result = await client.find_contacts_by_emails(batch)
        timings.append((time.perf_counter() - started) * 1000)
        found += len(result)
    requests = (await counts.get("/_admin/counts")).json()["counts"].get("query", 0) - before
    timings.sort()
    return {
        "ng_lookup_ms_p50": round(statistics.median(timings), 3),
        "ng_lookup_ms_p95": round(timings[int(len(timings) * 0.95) - 1], 3),
        "ng_lookup_requests_per_call": round(requests / calls, 2),
        "ng_lookup_contacts_found_per_call": round(found / calls, 2),
    }


async def creates(client: NetGeniumClient, total: int, writers: int) -> dict[str, float]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)

    async def writer() -> None:
        while True:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await client.create_email_activity(
                EmailActivity(
                    subject=f"Order:{n} question about delivery",
                    body_text="Hello,\nwhen will it arrive?\n" * 20,
                    body_html="<p>Hello,</p><p>when will it arrive?</p>" * 20,
                    direction="incoming",
                    date=datetime.now(UTC),
                    message_id=f"<bench.{n}.{time.time_ns()}@customer.example>",
                    conversation_id=f"AAQkAD{n // 3}",
                    contact_id=n % 1000 + 1,
                    user_id=1,
                )
            )

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    return {"ng_create_activity_per_s": round(total / elapsed, 1), "ng_create_seconds": round(elapsed, 3)}


async def measure(base_url: str, args: argparse.Namespace) -> dict[str, float]:
    async with NetGeniumClient(base_url, API_KEY) as client:
        async with httpx.AsyncClient(base_url=base_url) as admin:
            figures = await lookups(client, args.contacts, args.calls, admin)
        figures.update(await creates(client, args.creates, args.writers))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "netgenium.sqlite3")
        with ServerProcess(
            "sandbox.netgenium", ["--db", db, "--api-key", API_KEY], health_path="/api/v1/health"
        ) as server:
            seconds = seed_contacts(server.base_url, args.contacts)
            figures = asyncio.run(measure(server.base_url, args))
    print(
        json.dumps(
            {
                **figures,
                "contacts": args.contacts,
                "lookup_addresses": 50,
                "lookup_calls": args.calls,
                "writers": args.writers,
                "activities_created": args.creates,
                "seed_seconds": round(seconds, 2),
                "emulator_db": "sqlite file, WAL",
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
