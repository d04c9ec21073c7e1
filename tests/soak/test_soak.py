"""The short soak (issue 15): a few hundred mails and calendar edits on two seeds, under every fault
of the schedule at once, end with every relevant mail stored exactly once with the right links,
both calendars equal, and no poison.

Each seed runs `python -m bench.soak` as its own process, the two at the same time (much of a run
is waiting: a worker killed mid-batch leaves its mailbox or calendar lease to run out, up to 60 s,
crm_core/usecases/leasing.py). A failure prints the seed's JSON: rerun it with the same seed to see
it again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.soak_plan import FAULT_KINDS, make_plan

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (11, 12)
MESSAGES = 150
MINUTES = 0.5


def test_the_plan_is_the_seeds_alone() -> None:
    assert make_plan(11, MESSAGES, MINUTES).digest() == make_plan(11, MESSAGES, MINUTES).digest()
    assert make_plan(11, MESSAGES, MINUTES).digest() != make_plan(12, MESSAGES, MINUTES).digest()
    plan = make_plan(11, MESSAGES, MINUTES)
    started = {s.data["fault"] for s in plan.steps if s.kind == "fault_start"}
    assert started == set(FAULT_KINDS)
    assert 0 < len(plan.relevant()) < len(plan.expected) < MESSAGES  # irrelevant mail and duplicates too


def test_short_soak_on_two_seeds_loses_and_doubles_nothing() -> None:
    command = [sys.executable, "-m", "bench.soak", "--messages", str(MESSAGES), "--minutes", str(MINUTES)]
    command += ["--run-budget", "10", "--settle-timeout", "400", "--reconcile-every", "30", "--json"]
    runs = {
        seed: subprocess.Popen(
            [*command, "--seed", str(seed)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for seed in SEEDS
    }
    results = {}
    for seed, process in runs.items():
        out, err = process.communicate(timeout=900)
        assert out.strip(), f"seed {seed} printed nothing (exit {process.returncode}): {err[-3000:]}"
        results[seed] = json.loads(out.strip().splitlines()[-1])
        results[seed]["exit"] = process.returncode
    for seed, result in results.items():
        shown = json.dumps(result, indent=1)[:6000]
        assert result["passed"] is True and result["exit"] == 0, f"seed {seed}: {shown}"
        assert result["duplicates"] == 0 and result["lost"] == 0 and result["wrong_links"] == 0, shown
        assert result["calendar_mismatches"] == 0 and result["poison"] == [], shown
        assert all(result["faults_injected"][kind] >= 1 for kind in FAULT_KINDS), shown
        assert result["activities"] == result["relevant"] > 0, shown
        assert result["worker"]["kills"] == 1 and result["worker"]["restarts"] == 1, shown
