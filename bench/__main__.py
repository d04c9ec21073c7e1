"""`python -m bench [--quick] [--json] [--only NAME...]`: every benchmark of bench/, one JSON object.

Each benchmark runs as its own process (`python -m bench.<name> ...` from the repository root), one
after the other, so that none measures while another loads the machine. Each prints one JSON
object; every key of every object is copied into the result under the name the benchmark gave it
(none is renamed; when two benchmarks print the same key, the first one's value is kept and the
other is under `benches`). The result also holds `cores` (os.cpu_count()), `quick`, `benches`
(each benchmark's own object, its seconds, its exit status) and `missing` (the issue's figures that
no benchmark printed, with the reason); the exit status is 1 when a figure is missing.

`--quick` runs each benchmark in its quick mode (smaller counts), everything in under two minutes
on an idle 2-core machine; its figures are indicative only (fewer samples, colder caches).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent

# The figures the issue names (issue 15); each must come from some benchmark.
REQUIRED = (
    "decide_msgs_per_s",
    "directory_100k_mb",
    "cold_import_s",
    "cold_import_ratio",
    "ng_lookup_ms_p50",
    "ng_create_activity_per_s",
    "graph_get_message_ms_p50",
    "delta_messages_per_request",
    "webhook_ack_ms_p99",
    "webhook_ack_batch100_ms_p99",
    "e2e_msgs_per_s",
    "e2e_latency_ms_p95",
    "graph_requests_per_message_steady",
    "graph_requests_per_message_burst",
    "ng_requests_per_message_steady",
    "ng_requests_per_message_burst",
    "calendar_sync_events_per_s",
    "calendar_echo_writes",
    "first_run_mails_per_s",
    "first_run_peak_rss_mb",
    "bridge_lookup_ms_p50",
    "bridge_insert_per_s",
    "capture_cpu_ms_per_message",
    "usd_per_100k_mails",
)


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()  # the required figures it prints
    command: tuple[str, ...] | None = None  # default: python -m bench.<name>

    def argv(self, quick: bool) -> list[str]:
        # As a module from the repository root, so that `bench.<module>` imports resolve.
        base = list(self.command) if self.command else [sys.executable, "-m", f"bench.{self.name}"]
        return [*base, *(self.quick_args if quick else self.args)]


BENCHES: tuple[Bench, ...] = (
    Bench("decide", quick_args=("--messages", "5000"), figures=("decide_msgs_per_s", "directory_100k_mb")),
    Bench("cold_start", quick_args=("--runs", "3"), figures=("cold_import_s", "cold_import_ratio")),
    Bench(
        "netgenium",
        quick_args=("--contacts", "10000", "--calls", "50", "--creates", "300"),
        figures=("ng_lookup_ms_p50", "ng_create_activity_per_s"),
    ),
    Bench(
        "graph",
        quick_args=("--messages", "400", "--gets", "50"),
        figures=("graph_get_message_ms_p50", "delta_messages_per_request"),
    ),
    Bench(
        "capture",
        quick_args=("--quick",),
        figures=(
            "webhook_ack_ms_p99",
            "webhook_ack_batch100_ms_p99",
            "e2e_msgs_per_s",
            "e2e_latency_ms_p95",
            "graph_requests_per_message_steady",
            "graph_requests_per_message_burst",
            "ng_requests_per_message_steady",
            "ng_requests_per_message_burst",
            "capture_cpu_ms_per_message",
            "usd_per_100k_mails",
        ),
    ),
    Bench("first_run", quick_args=("--mails", "1000"), figures=("first_run_mails_per_s", "first_run_peak_rss_mb")),
    Bench("content_bombs"),
    Bench(
        "calendar_sync",
        quick_args=("--users", "4", "--events", "20", "--edits", "40"),
        figures=("calendar_sync_events_per_s", "calendar_echo_writes"),
    ),
    Bench(
        "bridge",
        quick_args=("--contacts", "5000", "--calls", "50", "--inserts", "200"),
        figures=("bridge_lookup_ms_p50", "bridge_insert_per_s"),
    ),
)


@dataclass
class Outcome:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    exit_status: int = 0
    error: str | None = None


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last line of stdout that is a JSON object (a benchmark may print progress before it)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def run_bench(bench: Bench, *, quick: bool, timeout: float) -> Outcome:
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(
            bench.argv(quick), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return Outcome(bench.name, seconds=time.monotonic() - started, exit_status=-1, error=f"over {timeout:g}s")
    outcome = Outcome(bench.name, seconds=round(time.monotonic() - started, 1), exit_status=done.returncode)
    found = last_json_object(done.stdout)
    if found is None or done.returncode != 0:
        outcome.error = (done.stderr.strip() or done.stdout.strip() or "no output")[-1500:]
    outcome.figures = found or {}
    return outcome


def aggregate(outcomes: Sequence[Outcome], benches: Sequence[Bench], *, quick: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for outcome in outcomes:
        for name, value in outcome.figures.items():
            result.setdefault(name, value)
    result["cores"] = os.cpu_count()
    result["quick"] = quick
    by_name = {o.name: o for o in outcomes}
    missing: dict[str, str] = {}
    for figure in REQUIRED:
        if figure in result:
            continue
        source = next((b.name for b in benches if figure in b.figures), None)
        outcome = by_name.get(source or "")
        if source is None:
            missing[figure] = "no benchmark prints it"
        elif outcome is None:
            missing[figure] = f"{source} was not run"
        else:
            missing[figure] = f"{source} did not print it" + (f": {outcome.error[-300:]}" if outcome.error else "")
    result["missing"] = missing
    result["benches"] = {
        o.name: {"seconds": o.seconds, "exit_status": o.exit_status, "error": o.error, "figures": o.figures}
        for o in outcomes
    }
    return result


def main(argv: Sequence[str] | None = None, benches: Sequence[Bench] = BENCHES) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's quick mode (under two minutes)")
    parser.add_argument("--json", action="store_true", help="one JSON object on one line (default: indented)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these benchmarks")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one benchmark may take")
    args = parser.parse_args(argv)
    chosen = [b for b in benches if not args.only or b.name in args.only]
    outcomes = []
    for bench in chosen:
        print(f"bench: {bench.name} ...", file=sys.stderr, flush=True)
        outcomes.append(run_bench(bench, quick=args.quick, timeout=args.timeout))
        print(f"bench: {bench.name} {outcomes[-1].seconds}s exit {outcomes[-1].exit_status}", file=sys.stderr)
    result = aggregate(outcomes, benches, quick=args.quick)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 1 if result["missing"] or any(o.exit_status != 0 for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
