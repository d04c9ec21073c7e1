"""A seeded fault-injection soak of the whole local service, checked against the emulators' stores.

    python -m bench.soak --seed N --messages M --minutes T [--json]

Starts the local stack (Azurite, the Graph emulator in its real profile, the NET Genium emulator,
the local Functions runner with its worker in a separate process and a 10-second message lease),
then for T minutes delivers M mails of mixed relevance (duplicates, replies in order threads,
attachments) and edits calendars on both sides (sandbox/calendar_scenario.py steps), while a
schedule drawn from the seed injects faults through the emulators' and the runner's admin APIs:
Graph 429 with Retry-After, 503, the mailbox concurrency limit, dropped notifications, a `missed`
lifecycle event, a removed subscription, NET Genium slow, failing and down, the worker process
killed mid-batch and restarted, a queue message delivered twice, every delta token expired.

Then it clears the faults and waits for quiet: it fires the reconcile timer (every 15 minutes on
Azure; the soak fires it every `--reconcile-every` seconds while it waits, compressing time) and
the calendar poll, until every mail has its outcome. It checks, against NET Genium's and Graph's
stores:

- every relevant mail is exactly one e-mail activity, with the direction, contact, company, user
  and order `crmservice explain` decides for it (a reply: its thread's order); no irrelevant mail
  is an activity;
- both calendars hold the same items (subject, start, end, all-day, location), each soak item at
  most once per side, each item as its last edit left it unless the conflict log names it;
- the poison queues are empty (this schedule makes nothing impossible to store; any poison item is
  printed with its reason).

It prints one JSON object (`--json`) or a summary, and exits 1 when an invariant breaks. The plan
(mails, edits, faults and their times) comes from `random.Random(seed)` only: the same seed gives
the same `plan_digest`, so a failing seed is rerun as it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.soak_plan import DIRECTORY, FAULT_KINDS, Expected, Plan, Step, make_plan
from crm_core.storage.calendar import CalendarConflicts, CalendarPairs
from crm_core.storage.ledger import LedgerState
from crm_core.storage.tables import LEASES_TABLE, TableStorage
from sandbox.calendar_scenario import Scenario, ScenarioError, wait_for_calendar_users
from sandbox.stack import SandboxError, SandboxStack

ROOT = Path(__file__).resolve().parent.parent
GRAPH_WINDOWS = {
    "graph_429": lambda on, p: {"throttleRate": 0.3 if on else 0.0, "retryAfter": p.get("retryAfter", 1)},
    "graph_503": lambda on, p: {"unavailableRate": 0.3 if on else 0.0},
    # Another client of the same app holds two of the mailbox's four slots meanwhile.
    "graph_mailbox_concurrency": lambda on, p: {"mailboxConcurrency": 2 if on else 4},
    "notifications_dropped": lambda on, p: {"dropNotificationsRate": 0.5 if on else 0.0},
}


class Soak:
    def __init__(self, plan: Plan, stack: SandboxStack, *, netgenium_latency_ms: int, log: Any) -> None:
        self.plan = plan
        self.stack = stack
        self.scenario = Scenario(stack)
        self.base_latency = netgenium_latency_ms
        self.log = log
        self.injected: Counter[str] = Counter()
        self.ng_active: dict[str, Step] = {}
        self.ng_down_until = 0.0
        self.today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.calendar_done: list[dict[str, Any]] = []  # the edits carried out, in order
        self.calendar_skipped: Counter[str] = Counter()
        self.calendar_skipped_refs: dict[str, list[str]] = {}  # for the diagnosis of a mismatch
        self.uncertain: set[str] = set()
        self.dead_lease_wait_s = 0.0
        self.mails_settled_s: float | None = None
        self.started_at = time.time()

    # ---- running the plan ----------------------------------------------------------------------

    def run(self) -> None:
        start = time.monotonic()
        self.started_at = time.time()
        for step in self.plan.steps:
            wait = start + step.at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if step.kind == "mail":
                    self.stack.deliver(step.data["mail"])
                elif step.kind == "calendar":
                    self.calendar(step.data)
                elif step.kind == "fault_start":
                    self.fault(step, on=True)
                else:
                    self.fault(step, on=False)
            except (SandboxError, OSError, httpx.HTTPError) as error:  # one failed call must not stop the soak
                self.log(f"step at {step.at}s ({step.kind}) failed: {error}")
        self.log(f"plan done in {time.monotonic() - start:.1f}s")

    def fault(self, step: Step, *, on: bool) -> None:
        kind = step.data["fault"]
        if on:
            self.injected[kind] += 1
            self.log(f"{step.at:7.1f}s fault {kind} {step.data}")
        stack = self.stack
        if kind in GRAPH_WINDOWS:
            stack.graph_faults(**GRAPH_WINDOWS[kind](on, step.data))
        elif kind.startswith("netgenium_"):
            if on:
                self.ng_active[kind] = step
                if kind == "netgenium_down":
                    self.ng_down_until = time.monotonic() + float(step.data["seconds"])
            else:
                self.ng_active.pop(kind, None)
            self.netgenium_faults()
        elif kind in ("lifecycle_missed", "subscription_removed"):
            event = "missed" if kind == "lifecycle_missed" else "subscriptionRemoved"
            for subscription in self.mail_subscriptions():
                stack.graph_admin("POST", f"subscriptions/{subscription}/lifecycle", json={"lifecycleEvent": event})
        elif kind == "worker_killed":
            answer = stack._http.post(
                f"{stack.runners[0].base_url}/admin/sandbox/worker/kill",
                json={"restart_after": step.data["restart_after"]},
            )
            answer.raise_for_status()
        elif kind == "queue_message_twice":
            answer = stack._http.post(
                f"{stack.runners[0].base_url}/admin/sandbox/faults", json={"duplicate_next": step.data["count"]}
            )
            if answer.status_code == 503:  # the worker is restarting: once it runs
                self.wait_worker()
                answer = stack._http.post(
                    f"{stack.runners[0].base_url}/admin/sandbox/faults", json={"duplicate_next": step.data["count"]}
                )
            answer.raise_for_status()
        elif kind == "delta_tokens_expired":
            stack.graph_admin("POST", "sync-states/expire").raise_for_status()

    def netgenium_faults(self) -> None:
        """NET Genium's fault API sets all faults at once: the union of the windows open now."""
        body: dict[str, Any] = {"latency_ms": self.base_latency, "retry_after": "2"}
        if "netgenium_slow" in self.ng_active:
            body["latency_ms"] = self.base_latency + 400
        if "netgenium_failing" in self.ng_active:
            body["error_rate"] = 0.3
        remaining = self.ng_down_until - time.monotonic()
        if "netgenium_down" in self.ng_active and remaining > 0:
            body["outage_seconds"] = round(remaining, 1)
        self.stack.netgenium_faults(**body)

    def mail_subscriptions(self) -> list[str]:
        return [
            s["id"]
            for s in self.stack.graph_subscriptions()
            if s.get("active") and "/messages" in str(s.get("resource"))
        ]

    def worker(self) -> dict[str, Any]:
        answer = self.stack._http.get(f"{self.stack.runners[0].base_url}/admin/sandbox/worker")
        document: dict[str, Any] = answer.json()
        return document

    def wait_worker(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker().get("state") == "Running":
                return
            time.sleep(0.2)
        raise SandboxError("the worker process did not start again")

    # ---- calendar ------------------------------------------------------------------------------

    def calendar(self, step: dict[str, Any]) -> None:
        ref, side = step["ref"], step["side"]
        if step["op"] != "create" and not any(e["ref"] == ref and e["op"] == "create" for e in self.calendar_done):
            self.calendar_skipped["never created"] += 1
            self.skipped(ref, "never created")
            return
        if any(e["ref"] == ref and e["op"] == "delete" for e in self.calendar_done):
            self.calendar_skipped["deleted"] += 1
            self.skipped(ref, "deleted")
            return
        concrete: dict[str, Any] = {k: v for k, v in step.items() if k != "conflict"}
        if "fields" in step:
            concrete["fields"] = self.fields(step["fields"])
        if step["op"] == "create":
            concrete["user"] = step["user"]
        else:
            concrete["user"] = next(e["user"] for e in self.calendar_done if e["ref"] == ref)
        created_on = (
            step["side"]
            if step["op"] == "create"
            else next(e["side"] for e in self.calendar_done if e["ref"] == ref and e["op"] == "create")
        )
        failing = {"netgenium_failing", "netgenium_down"} & self.ng_active.keys()
        if failing and (side == "netgenium" or created_on == "netgenium"):
            # A user cannot save in NET Genium while it fails, nor find there the item to edit.
            self.calendar_skipped["netgenium failing"] += 1
            self.skipped(ref, "netgenium failing")
            return
        if side == "netgenium" and self.worker().get("state") != "Running":
            concrete["notify"] = False  # OnAfterSave cannot reach a dead worker: the poll finds it
        try:
            self.scenario.run([concrete])
        except ScenarioError:
            self.calendar_skipped["not synced yet"] += 1
            self.skipped(ref, "not synced yet")  # the other side has no counterpart yet
            return
        except SandboxError as error:
            self.uncertain.add(ref)  # the edit may or may not have been saved
            self.log(f"calendar edit of {ref} uncertain: {error}")
        self.calendar_done.append({**concrete, "done_at": time.time()})

    def skipped(self, ref: str, reason: str) -> None:
        self.calendar_skipped_refs.setdefault(ref, []).append(f"{reason} at {time.time() - self.started_at:.1f}s")

    def fields(self, planned: dict[str, Any]) -> dict[str, Any]:
        start = self.today + timedelta(days=planned["day"], hours=planned["hour"])
        end = start + timedelta(hours=planned["hours"])
        return {
            "subject": planned["subject"],
            "start": start.isoformat(),
            "end": end.isoformat(),
            "location": planned["location"],
        }

    # ---- the end -------------------------------------------------------------------------------

    def clear_faults(self) -> None:
        self.stack.graph_admin("DELETE", "faults").raise_for_status()
        self.ng_active.clear()
        self.ng_down_until = 0.0
        self.netgenium_faults()
        self.wait_worker()
        self.stack._http.delete(f"{self.stack.runners[0].base_url}/admin/sandbox/faults").raise_for_status()

    def settle(self, timeout: float, reconcile_every: float, *, drain: bool) -> float:
        """Until every mail has its outcome in the ledger and nothing is to be done now (no visible
        queue message, nothing running, no notification pending in Graph); with `drain`, also until
        every trigger queue is empty, deferred tasks included. Then the calendars: once the leases
        a killed worker left have run out, the poll until nothing is to be done. Seconds taken."""
        started = time.monotonic()
        deadline = started + timeout
        ids = set(self.plan.expected)
        next_reconcile = started
        quiet_since: float | None = None
        next_report = started
        self.mails_settled_s: float | None = None
        while time.monotonic() < deadline:
            if time.monotonic() >= next_reconcile:
                self.fire("reconcile")
                next_reconcile = time.monotonic() + reconcile_every
            states = {e.message_id: e.state for e in self.stack.ledger_entries()}
            open_ids = [m for m in ids if states.get(m, LedgerState.CLAIMED) is LedgerState.CLAIMED]
            done = not open_ids
            if done and self.mails_settled_s is None:
                self.mails_settled_s = time.monotonic() - started
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + 15
                self.log(f"settling {time.monotonic() - started:.0f}s: {len(open_ids)} mails open, {self.busy()}")
            if done and self.nothing_to_do(drain=drain):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 2.0:
                    break
            else:
                quiet_since = None
            time.sleep(1.0)
        else:
            self.log(f"not settled within {timeout}s")
        self.wait_dead_leases(deadline)
        # The calendar: the poll (every 2 minutes on Azure), twice, so that echoes settle too.
        for _ in range(2):
            self.fire("calendar_poll")
            time.sleep(1.0)
            quiet_since = None
            while time.monotonic() < deadline + 120:
                if self.nothing_to_do(drain=drain):
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since >= 2.0:
                        break
                else:
                    quiet_since = None
                time.sleep(0.5)
        return time.monotonic() - started

    def busy(self) -> dict[str, Any]:
        status = self.stack.runner_status()
        return {
            q: (c.get("approximate_message_count"), c.get("in_flight"))
            for q, c in status.get("queues", {}).items()
            if c.get("approximate_message_count") or c.get("in_flight")
        }

    def nothing_to_do(self, *, drain: bool) -> bool:
        """Nothing running, no notification pending, and no queue message visible (deferred ones,
        invisible until their wait is over, are left unless `drain`)."""
        if drain:
            return self.stack.quiet()
        status = self.stack.runner_status()
        if status.get("state") != "Running":
            return False
        if any(c.get("in_flight") for c in status.get("queues", {}).values()):
            return False
        if any(c.get("running") for c in status.get("invocations", {}).values()):
            return False
        if self.stack.graph_admin("GET", "stats").json().get("pendingNotifications", 0):
            return False
        return not self.visible_messages(list(status.get("queues", {})))

    def visible_messages(self, queues: list[str]) -> int:
        assert self.stack.azurite
        from azure.storage.queue import QueueClient

        count = 0
        for name in queues:
            with QueueClient.from_connection_string(self.stack.azurite.connection_string, name) as client:
                count += len(client.peek_messages(max_messages=32))
        return count

    def deferred_tasks(self) -> int:
        return sum(int(c.get("approximate_message_count") or 0) for c in self.stack.runner_status()["queues"].values())

    def wait_dead_leases(self, deadline: float) -> None:
        """A killed worker's leases (mailbox, calendar users) stay until they run out: wait for that,
        as the service has to (they are `hostname:pid` of the dead process)."""
        killed = self.worker().get("last_killed_pid")
        if not killed:
            return
        assert self.stack.azurite
        connection = self.stack.azurite.connection_string

        async def latest_end() -> datetime | None:
            async with TableStorage.from_connection_string(connection) as storage:
                table = await storage.table(LEASES_TABLE)
                ends = [
                    e["Until"]
                    async for e in table.list_entities()
                    if str(e.get("Holder", "")).endswith(f":{killed}") and e.get("Until")
                ]
            return max(ends) if ends else None

        end = asyncio.run(latest_end())
        now = datetime.now(UTC)
        if end is not None and end > now:
            wait = min((end - now).total_seconds() + 1, max(0.0, deadline - time.monotonic()))
            self.log(f"the killed worker's leases run out in {wait:.0f}s; waiting")
            self.dead_lease_wait_s = round(wait, 1)
            time.sleep(wait)

    def fire(self, function: str) -> None:
        try:
            self.stack.run_function(function)
        except (SandboxError, OSError, httpx.HTTPError) as error:
            self.log(f"running {function} failed: {error}")

    # ---- the invariants --------------------------------------------------------------------------

    def check_mail(self) -> dict[str, Any]:
        records = [r for r in self.stack.netgenium_records() if r.get("ng_kind") == "email"]
        by_id: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_id.setdefault(str(record.get("ng_message_id")), []).append(record)
        expected = self.plan.expected
        duplicates = sorted(m for m, rs in by_id.items() if len(rs) > 1)
        lost = sorted(m for m in self.plan.relevant() if m not in by_id)
        irrelevant = sorted(m for m in by_id if m not in expected or expected[m].direction is None)
        wrong: list[dict[str, Any]] = []
        for message_id, found in sorted(by_id.items()):
            want = expected.get(message_id)
            if want is None or want.direction is None:
                continue
            got = _links(found[0])
            if got != _wanted(want):
                wrong.append({"message_id": message_id, "expected": _wanted(want), "stored": got})
        return {
            "activities": len(records),
            "duplicates": duplicates,
            "lost": lost,
            "irrelevant_stored": irrelevant,
            "wrong_links": wrong,
        }

    def check_calendar(self) -> dict[str, Any]:
        sides = self.scenario.sides()

        def key(item: dict[str, Any]) -> tuple[Any, ...]:
            return (item["user"], item["subject"], item["start"], item["end"], item["all_day"], item["location"])

        outlook, netgenium = Counter(map(key, sides["outlook"])), Counter(map(key, sides["netgenium"]))
        unequal_keys = list(((outlook - netgenium) + (netgenium - outlook)).elements())
        unequal = sorted(str(k) for k in unequal_keys)
        twice: list[str] = []
        final: dict[str, dict[str, Any]] = {}
        for side in ("outlook", "netgenium"):
            seen = Counter(_ref_of(i["subject"]) for i in sides[side] if _ref_of(i["subject"]))
            twice += [f"{side}: {ref} x{n}" for ref, n in seen.items() if n > 1]
            if side == "outlook":
                final = {_ref_of(i["subject"]): i for i in sides[side] if _ref_of(i["subject"])}
        conflicts = self.conflicts()
        lost_edits: list[str] = []
        explained = 0
        for ref in sorted({e["ref"] for e in self.calendar_done}):
            if ref in self.uncertain:
                continue
            edits = [e for e in self.calendar_done if e["ref"] == ref]
            deleted = any(e["op"] == "delete" for e in edits)
            item = final.get(ref)
            if deleted:
                if item is not None:
                    lost_edits.append(f"{ref}: deleted, still there as {item['subject']!r}")
                continue
            last = [e for e in edits if e.get("fields")][-1]["fields"]
            if item is None:
                lost_edits.append(f"{ref}: missing")
                continue
            want = (last["subject"], _z(last["start"]), _z(last["end"]), last["location"])
            have = (item["subject"], item["start"], item["end"], item["location"])
            if want != have:
                if self.in_conflict_log(ref, conflicts):
                    explained += 1
                else:
                    lost_edits.append(f"{ref}: last edit {want}, both sides show {have}, no conflict logged")
        return {
            "calendar_items": {"outlook": len(sides["outlook"]), "netgenium": len(sides["netgenium"])},
            "calendar_unequal": unequal,
            "calendar_unequal_detail": self.mismatch_detail(sorted({_ref_of(k[1]) for k in unequal_keys}), sides),
            "calendar_twice": twice,
            "calendar_lost_edits": lost_edits,
            "calendar_edits": len(self.calendar_done),
            "calendar_edits_skipped": dict(self.calendar_skipped),
            "calendar_conflicts_logged": len(conflicts),
            "calendar_lost_edits_explained": explained,
            "calendar_uncertain": sorted(self.uncertain),
        }

    def mismatch_detail(self, refs: list[str], sides: dict[str, Any]) -> dict[str, Any]:
        """For each item one side lacks: what the soak did to it (edits done and skipped, with
        when), what each side holds under its ref, and its NET Genium record's ids, so that a
        failing seed can be diagnosed from its output alone."""
        detail: dict[str, Any] = {}
        column = self.scenario.entity.column
        records = self.stack.netgenium_records(self.scenario.table) if refs else []
        for ref in filter(None, refs):
            detail[ref] = {
                "done": [
                    {k: e.get(k) for k in ("side", "op", "user", "notify")}
                    | {"at_s": round(float(e["done_at"]) - self.started_at, 1)}
                    for e in self.calendar_done
                    if e["ref"] == ref
                ],
                "skipped": self.calendar_skipped_refs.get(ref, []),
                "outlook": [i for i in sides["outlook"] if _ref_of(i["subject"]) == ref],
                "netgenium": [i for i in sides["netgenium"] if _ref_of(i["subject"]) == ref],
                "netgenium_records": [
                    {
                        "id": r.get("id"),
                        "event_id": r.get(column("event_id").name),
                        "modified": r.get(column("modified").name),
                    }
                    for r in records
                    if _ref_of(str(r.get(column("subject").name) or "")) == ref
                ],
            }
            ids = {str(r["id"]) for r in detail[ref]["netgenium_records"]}
            ids |= {str(r["event_id"]) for r in detail[ref]["netgenium_records"] if r["event_id"]}
            users = {str(e["user"]) for e in detail[ref]["done"] if e.get("user")}
            detail[ref]["pairs"] = [
                {"event_id": p.event_id, "activity_id": p.activity_id}
                for user in sorted(users)
                for p in self.pairs(user)
                if {p.event_id, str(p.activity_id)} & ids
            ]
            detail[ref]["conflicts"] = [
                {"winner": c.winner, "event_id": c.event_id, "activity_id": c.activity_id}
                for c in self.conflicts()
                if {str(c.event_id), str(c.activity_id)} & ids
            ]
        return detail

    def pairs(self, mailbox: str) -> list[Any]:
        assert self.stack.azurite
        connection = self.stack.azurite.connection_string

        async def read() -> list[Any]:
            async with TableStorage.from_connection_string(connection) as storage:
                return list(await CalendarPairs(storage).all(mailbox))

        return asyncio.run(read())

    def conflicts(self) -> list[Any]:
        assert self.stack.azurite
        connection = self.stack.azurite.connection_string

        async def read() -> list[Any]:
            async with TableStorage.from_connection_string(connection) as storage:
                return list(await CalendarConflicts(storage).recent(1000))

        return asyncio.run(read())

    def in_conflict_log(self, ref: str, conflicts: list[Any]) -> bool:
        """The pair of `ref` (its event id and activity id, read from NET Genium) is in the log."""
        column = self.scenario.entity.column
        for record in self.stack.netgenium_records(self.scenario.table):
            if _ref_of(str(record.get(column("subject").name) or "")) == ref:
                ids = {str(record.get("id")), str(record.get(column("event_id").name))}
                if any({str(c.activity_id), str(c.event_id)} & ids for c in conflicts):
                    return True
        return False

    def check_poison(self) -> list[dict[str, Any]]:
        assert self.stack.azurite
        items: list[dict[str, Any]] = []
        status = self.stack.runner_status()
        for queue, counts in status.get("queues", {}).items():
            if counts.get("poison_message_count", 0) == 0:
                continue
            script = Path(sys.executable).parent / "crmservice"
            command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
            env = {**os.environ, "AzureWebJobsStorage": self.stack.azurite.connection_string}
            listed = subprocess.run(
                [*command, "poison", "list", "--queue", queue, "--json"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            try:
                found = json.loads(listed.stdout)
            except ValueError:
                found = [{"item": None, "reason": listed.stderr.strip()[:500]}]
            items += [{"queue": queue, **item} for item in found]
        return items


def _links(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "direction": record.get("ng_direction"),
        "contact": record.get("ng_contact_id"),
        "company": record.get("ng_company_id"),
        "user": record.get("ng_user_id"),
        "order": record.get("ng_order_id"),
    }


def _wanted(want: Expected) -> dict[str, Any]:
    return {
        "direction": want.direction,
        "contact": want.contact_id,
        "company": want.company_id,
        "user": want.user_id,
        "order": want.order_id,
    }


def _ref_of(subject: str) -> str:
    parts = subject.split()
    return parts[1] if len(parts) == 3 and parts[0] == "Soak" else ""


def _z(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soak_settings(run_budget: int | None) -> dict[str, str]:
    settings = {"SANDBOX_RUNNER_WORKER_PROCESS": "1", "SANDBOX_RUNNER_MESSAGE_LEASE": "10"}
    if run_budget is not None:
        settings["CRM_RUN_BUDGET_SECONDS"] = str(run_budget)
    return settings


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    plan = make_plan(args.seed, args.messages, args.minutes, args.calendar_edits)
    quiet = args.json

    def log(text: str) -> None:
        if not quiet or args.verbose:
            print(f"soak seed {args.seed}: {text}", file=sys.stderr, flush=True)

    started = time.monotonic()
    with SandboxStack(
        DIRECTORY,
        seed=args.seed,
        graph_latency_ms=0,
        netgenium_latency_ms=args.latency_ms,
        app_settings=soak_settings(args.run_budget),
    ) as stack:
        wait_for_calendar_users(stack, len(DIRECTORY.users), timeout=120)
        soak = Soak(plan, stack, netgenium_latency_ms=args.latency_ms, log=log)
        soak.netgenium_faults()
        soak.run()
        soak.clear_faults()
        settle_seconds = soak.settle(args.settle_timeout, args.reconcile_every, drain=args.drain)
        deferred = soak.deferred_tasks()
        mail = soak.check_mail()
        calendar = soak.check_calendar()
        poison = soak.check_poison()
        worker = soak.worker()
        graph_stats = stack.graph_admin("GET", "stats").json()
        if args.verbose and (mail["lost"] or mail["duplicates"]):
            log(stack.runners[0].log_tail(20000))
    mismatches = (
        len(calendar["calendar_unequal"]) + len(calendar["calendar_twice"]) + len(calendar["calendar_lost_edits"])
    )
    passed = not (
        mail["duplicates"] or mail["lost"] or mail["irrelevant_stored"] or mail["wrong_links"] or mismatches or poison
    )
    return {
        "seed": args.seed,
        "messages": args.messages,
        "activities": mail["activities"],
        "duplicates": len(mail["duplicates"]),
        "lost": len(mail["lost"]),
        "wrong_links": len(mail["wrong_links"]) + len(mail["irrelevant_stored"]),
        "calendar_mismatches": mismatches,
        "faults_injected": {kind: soak.injected.get(kind, 0) for kind in FAULT_KINDS},
        "passed": passed,
        "minutes": args.minutes,
        "relevant": len(plan.relevant()),
        "unique_mails": len(plan.expected),
        "plan_digest": plan.digest(),
        "settle_seconds": round(settle_seconds, 1),
        "mails_settled_seconds": None if soak.mails_settled_s is None else round(soak.mails_settled_s, 1),
        "dead_lease_wait_seconds": soak.dead_lease_wait_s,
        "deferred_tasks_left": deferred,
        "wall_seconds": round(time.monotonic() - started, 1),
        "poison": poison,
        "detail": {
            "duplicates": mail["duplicates"][:20],
            "lost": mail["lost"][:20],
            "irrelevant_stored": mail["irrelevant_stored"][:20],
            "wrong_links": mail["wrong_links"][:20],
            **{k: v for k, v in calendar.items()},
        },
        "worker": {"kills": worker.get("kills"), "restarts": worker.get("restarts")},
        "graph_faults_served": graph_stats.get("faults", {}),
        "graph_notifications": graph_stats.get("notifications", {}),
        "cores": os.cpu_count(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--calendar-edits", type=int, default=None, help="default: a tenth of the mails, at least 10")
    parser.add_argument("--latency-ms", type=int, default=20, help="NET Genium's latency outside its faults")
    parser.add_argument(
        "--run-budget", type=int, default=None, help="CRM_RUN_BUDGET_SECONDS (default: the product's, 180)"
    )
    parser.add_argument("--settle-timeout", type=float, default=600.0, help="seconds to wait for quiet at the end")
    parser.add_argument("--reconcile-every", type=float, default=60.0, help="seconds between reconcile runs at the end")
    parser.add_argument(
        "--no-drain",
        dest="drain",
        action="store_false",
        help="stop waiting once nothing is to be done now, leaving tasks deferred for later on their queue",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verbose", action="store_true", help="progress on stderr also with --json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_soak(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
