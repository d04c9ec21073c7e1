"""`python -m bench`: every figure the issue names is printed by some benchmark, and the aggregator
puts every benchmark's figures in one object, naming what is missing and why (no timing here: the
benchmarks themselves are not run, fake ones are)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHES, REQUIRED, Bench, last_json_object, main

ROOT = Path(__file__).resolve().parents[2]
ISSUE_NAMES = [
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
]


def test_every_figure_of_the_issue_is_required_and_claimed_by_a_benchmark_that_exists() -> None:
    assert set(ISSUE_NAMES) <= set(REQUIRED)
    claimed = {figure: b.name for b in BENCHES for figure in b.figures}
    assert set(REQUIRED) <= claimed.keys()
    for bench in BENCHES:
        assert (ROOT / "bench" / f"{bench.name}.py").exists(), bench.name
    assert {p.stem for p in (ROOT / "bench").glob("*.py")} - {b.name for b in BENCHES} <= {
        "__main__",
        "cost",
        "soak",
        "soak_plan",
        "__init__",
    }


@pytest.mark.parametrize("bench", BENCHES, ids=lambda b: b.name)
def test_each_claimed_figure_appears_in_its_benchmarks_source(bench: Bench) -> None:
    """A benchmark that stopped printing a figure (renamed it, say) is caught before anyone runs it:
    each name is in the source, or built there from a prefix (bridge.py adds `bridge_`)."""
    source = (ROOT / "bench" / f"{bench.name}.py").read_text(encoding="utf-8")
    for figure in bench.figures:
        bare = re.sub(r"^bridge_", "", figure)
        assert f'"{figure}"' in source or f'"{bare}"' in source, (bench.name, figure)


def _fake(tmp_path: Path, name: str, body: str) -> Bench:
    script = tmp_path / f"{name}.py"
    script.write_text(body, encoding="utf-8")
    return Bench(name, quick_args=("--quick",), figures=(), command=(sys.executable, str(script)))


def test_the_aggregator_merges_every_benchmarks_object_and_names_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = {name: n for n, name in enumerate(REQUIRED) if name != "bridge_insert_per_s"}
    first = _fake(
        tmp_path,
        "first",
        "import json, sys\nprint('warming up')\n"
        f"print(json.dumps({{**{figures!r}, 'quick_seen': '--quick' in sys.argv, 'seed': 1}}))\n",
    )
    second = _fake(tmp_path, "second", "import json\nprint(json.dumps({'seed': 2, 'extra_ms': 1.5}))\n")
    broken = _fake(tmp_path, "broken", "raise SystemExit('no database here')\n")
    broken = Bench("broken", figures=("bridge_insert_per_s",), command=broken.command)

    status = main(["--quick", "--json"], benches=[first, second, broken])

    result = json.loads(capsys.readouterr().out)
    assert status == 1
    for name, value in figures.items():
        assert result[name] == value
    assert result["quick_seen"] is True and result["quick"] is True
    assert result["extra_ms"] == 1.5
    assert result["seed"] == 1  # the first benchmark's, the second's kept under benches
    assert result["benches"]["second"]["figures"]["seed"] == 2
    assert result["missing"] == {"bridge_insert_per_s": "broken did not print it: no database here"}
    assert result["benches"]["broken"]["exit_status"] == 1
    assert isinstance(result["cores"], int)


def test_a_complete_set_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    every = {name: 1 for name in REQUIRED}
    bench = _fake(tmp_path, "all", f"import json\nprint(json.dumps({every!r}))\n")
    assert main(["--json"], benches=[bench]) == 0
    assert json.loads(capsys.readouterr().out)["missing"] == {}


def test_last_json_object_skips_progress_lines() -> None:
    assert last_json_object('starting\n{"a": 1}\n{"b": 2}\ndone\n') == {"b": 2}
    assert last_json_object("no json here") is None
