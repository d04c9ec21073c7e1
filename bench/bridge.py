"""Bridge figures: `python -m bridge serve` on a private Firebird 3 server and on a SQLite file.

For each backend: a fresh database of NET Genium-like tables with 100,000 contacts (written
straight into the database, as an installation already holds them), the bridge started as an
administrator runs it (a config file, a hashed key, Europe/Prague), and the service's client over
loopback HTTP. Prints one JSON object:

- `bridge_lookup_ms_p50`: one `find_contacts_by_emails` call with 50 addresses (goal < 10 ms);
- `bridge_insert_per_s`: activity records inserted per second by 8 concurrent writers (goal >= 200/s);
- the same with the suffix `_sqlite`;
- each of them again with the suffix `_direct`: direct mode (NETGENIUM_DATABASE_URL), the same
  client over the bridge's store in the measuring process, without HTTP.

    .venv/bin/python bench/bridge.py [--contacts 100000] [--calls 200] [--inserts 2000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is bench/bridge.py, and Python puts bench/ first on the path: there `import bridge`
# would find this file instead of the package. The repository root is where the package is.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial

import httpx
import sqlalchemy as sa

from bridge.keys import hash_key
from crm_core.netgenium import NetGeniumClient, default_schema_map
from crm_core.netgenium.direct import StoreTransport, open_store
from sandbox.launch import REPO_ROOT, free_port
from sandbox.netgenium.ddl import create_tables
from sandbox.netgenium.firebird import FirebirdServer

KEY = "bench-bridge-key-0123456789"


def seed_contacts(database_url: str, count: int) -> float:
    started = time.perf_counter()
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    contacts = sa.table("ng_contacts", sa.column("id"), sa.column("ng_email"), sa.column("ng_company_id"))
    with engine.begin() as connection:
        for start in range(1, count + 1, 10_000):
            rows = [
                {"id": n, "ng_email": f"contact.{n}@customer{n % 997}.example", "ng_company_id": n % 5000 or None}
                for n in range(start, min(start + 10_000, count + 1))
            ]
            connection.execute(sa.insert(contacts), rows)
    engine.dispose()
    return time.perf_counter() - started


@contextmanager
def bridge_process(database_url: str, folder: Path) -> Iterator[str]:
    port = free_port()
    config = folder / "bridge.toml"
    config.write_text(
        f'database_url = "{database_url}"\napi_key_hashes = ["{hash_key(KEY)}"]\n'
        f'time_zone = "Europe/Prague"\nlisten = "127.0.0.1:{port}"\n',
        "utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--config", str(config)],
        cwd=REPO_ROOT,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bridge did not start")
            try:
                if httpx.get(base_url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def lookups(client: NetGeniumClient, contacts: int, calls: int) -> dict[str, float]:
    rng = random.Random(7)

    def addresses() -> list[str]:
        known = [f"contact.{n}@customer{n % 997}.example" for n in (rng.randint(1, contacts) for _ in range(40))]
        return known + [f"someone.{rng.randint(1, 10**9)}@elsewhere.example" for _ in range(10)]

    for _ in range(10):  # warm up the pools and the database's cache
        await client.find_contacts_by_emails(addresses())
    timings = []
    found = 0
    for _ in range(calls):
        batch = addresses()
        started = time.perf_counter()
        found += len(await client.find_contacts_by_emails(batch))
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "lookup_ms_p50": round(statistics.median(timings), 3),
        "lookup_ms_p95": round(timings[int(len(timings) * 0.95) - 1], 3),
        "lookup_found_per_call": round(found / calls, 2),
    }


async def inserts(client: NetGeniumClient, total: int, writers: int) -> dict[str, float]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)

    async def writer() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            message_id = f"<bench.{n}.{time.time_ns()}@customer.example>"
            await client.insert(
                "ng_activities",
                {
                    "ng_kind": "email",
                    "ng_subject": f"Order:{n} question about delivery",
                    "ng_body": "Hello,\nwhen will it arrive?\n" * 20,
                    "ng_direction": "incoming",
                    "ng_date": datetime.now(UTC).isoformat(),
                    "ng_message_id": message_id,
                    "ng_message_key": hashlib.sha256(message_id.encode()).hexdigest(),
                    "ng_contact_id": n % 1000 + 1,
                    "ng_user_id": 1,
                },
            )

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return {"insert_per_s": round(total / (time.perf_counter() - started), 1)}


def measure(database_url: str, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    seeded = seed_contacts(database_url, args.contacts)

    async def run(base_url: str) -> dict[str, float]:
        async with NetGeniumClient(base_url, KEY) as client:
            figures = await lookups(client, args.contacts, args.calls)
            figures.update(await inserts(client, args.inserts, args.writers))
        return figures

    async def run_direct() -> dict[str, float]:
        # Direct mode: the same client over the bridge's store in this process, no HTTP in between.
        opener = partial(open_store, database_url, default_schema_map(), time_zone="Europe/Prague", files_folder="")
        async with NetGeniumClient.over(StoreTransport(opener, name="direct:bench")) as client:
            figures = await lookups(client, args.contacts, args.calls)
            figures.update(await inserts(client, args.inserts, args.writers))
        return {f"{name}_direct": value for name, value in figures.items()}

    with bridge_process(database_url, folder) as base_url:
        figures = asyncio.run(run(base_url))
    figures.update(asyncio.run(run_direct()))
    return {**figures, "seed_seconds": round(seeded, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--inserts", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder, FirebirdServer() as firebird:
        for suffix, url in (
            ("", firebird.create_database("bench")),
            ("_sqlite", f"sqlite:///{Path(folder) / 'netgenium.sqlite3'}"),
        ):
            if suffix:
                engine = sa.create_engine(url)
                create_tables(engine, default_schema_map())
                engine.dispose()
            figures = measure(url, Path(folder), args)
            out.update({f"bridge_{name}{suffix}": value for name, value in figures.items()})
    out.update(
        contacts=args.contacts,
        lookup_addresses=50,
        lookup_calls=args.calls,
        writers=args.writers,
        inserts=args.inserts,
        firebird="3.0 SuperServer, loopback, a fresh database",
        python=platform.python_version(),
        cpus=os.cpu_count(),
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
