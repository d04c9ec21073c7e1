"""A first run over a large mailbox, against the real-profile Graph emulator (issue 9).

Starts Azurite and both emulators (Graph with its default, real profile: shuffled pages, latency in
proportion to page size, expiring tokens), puts `--mails` mails in the CRM mailbox (half of them
older than `CRM_INITIAL_SYNC_DAYS`), then runs the product's own composition (`crm_core.runtime`)
in this process as the capture worker would: the first round, then each continuation a run
queues, until the round is through. Measures:

- `first_run_mails_per_s`: mails inside the cutoff decided per second of the whole first run;
- `first_run_peak_rss_mb` (goal: under 300 MB for 20,000 mails): this process's peak resident set;
- `first_run_longest_run_s` (goal: under the run budget): the longest single run;
- `first_run_runs`, `first_run_pages`, `first_run_budget_s`.

    python bench/first_run.py [--mails 20000] [--budget 180] [--seed 1]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capture import CONTACTS, CRM, DIRECTORY, USERS
from crm_core.domain.settings import load_settings
from crm_core.domain.tasks import continuation_task
from crm_core.runtime import Runtime
from sandbox.stack import SandboxStack


def mails(count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        contact, user = CONTACTS[n % len(CONTACTS)], USERS[n % len(USERS)]
        age = timedelta(days=2, seconds=n) if n % 2 == 0 else timedelta(days=90, seconds=n)
        out.append(
            {
                "internetMessageId": f"<first-{n}@bench.example>",
                "conversationId": f"first-conv-{n}",
                "subject": f"Delivery {n}" + (f" Order:{n % 100 + 1}" if n % 10 == 0 else ""),
                "from": {"emailAddress": {"address": contact.email}},
                "toRecipients": [{"emailAddress": {"address": user.email}}],
                "ccRecipients": [{"emailAddress": {"address": CRM}}],
                "body": {"contentType": "html", "content": "<p>Hello,</p><p>when will it arrive?</p>" * 5},
                "receivedDateTime": (now - age).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return out


async def first_run(settings: dict[str, str]) -> dict[str, Any]:
    for name, value in settings.items():
        os.environ[name] = value
    runtime = Runtime(load_settings())
    runs: list[float] = []
    pages = 0
    started = time.perf_counter()
    run_started = time.perf_counter()
    report = await runtime.reconcile()
    while True:
        runs.append(time.perf_counter() - run_started)
        pages += report.pages
        if not report.unfinished:
            break
        run_started = time.perf_counter()
        report = await runtime.mailbox_sync.handle(continuation_task(runtime.settings.crm_mailbox))
    elapsed = time.perf_counter() - started
    decided = len(await runtime.ledger.entries())
    await runtime.aclose()
    return {"elapsed": elapsed, "runs": runs, "pages": pages, "decided": decided}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mails", type=int, default=20_000)
    parser.add_argument("--budget", type=int, default=180)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with SandboxStack(DIRECTORY, runners=0, seed=args.seed) as stack:
        batch = mails(args.mails)
        for start in range(0, len(batch), 200):
            stack.graph_admin("POST", f"users/{CRM}/messages", json={"messages": batch[start : start + 200]})
        settings = stack.app_settings(port=9) | {"CRM_RUN_BUDGET_SECONDS": str(args.budget)}
        result = asyncio.run(first_run(settings))

    inside = (args.mails + 1) // 2
    assert result["decided"] == inside, (result["decided"], inside)
    print(
        json.dumps(
            {
                "first_run_mails_per_s": round(inside / result["elapsed"], 1),
                "first_run_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "first_run_longest_run_s": round(max(result["runs"]), 2),
                "first_run_runs": len(result["runs"]),
                "first_run_pages": result["pages"],
                "first_run_budget_s": args.budget,
                "mails": args.mails,
                "mails_inside_cutoff": inside,
                "seed": args.seed,
            }
        )
    )


if __name__ == "__main__":
    main()
