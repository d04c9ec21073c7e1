"""Two-way calendar sync against the emulators at 20 ms: an initial sync, then echo writes.

Starts Azurite and both emulators without the Functions runner (`SandboxStack(runners=0)`, the
Graph emulator in its real profile plus 20 ms on every request, NET Genium 20 ms on every request),
puts `--users` × `--events` items in the users' Outlook calendars through the Graph emulator's
admin API (spread over the next 300 days: timed events, every tenth one all-day, two weekly series
of five occurrences per user), then drives the product's own composition (`crm_core.runtime` and
its `calendar_runtime`) in this process, the users `--concurrency` at a time as the Functions host
runs that many queue items at once (host.json `batchSize` 16). Measures:

- `calendar_sync_events_per_s` (goal ≥ 100): items written to NET Genium by the initial sync of
  every user, per wall second of that sync;
- `calendar_echo_writes` (goal 0): after `--edits` one-sided edits, writes that went back to the
  side an edit came from. Half the edits are made in Outlook (admin API PATCH), then every user is
  synced twice and the Graph writes of that phase are counted (createEvent, updateEvent,
  deleteEvent; none is due); the other half in NET Genium (record API PATCH, as a user's save
  without the OnAfterSave call: the next sync's watermark finds it), every user synced twice, and
  NET Genium's writes of that phase (insert, update, delete) counted less the edits themselves;
- `calendar_edits_propagated`: how many edits arrived on the other side (all of them, or a 0 echo
  count proves nothing).

    python bench/calendar_sync.py [--quick] [--users 50] [--events 200] [--edits 1000] [--concurrency 16]

`--quick`: 10 users × 50 events and 100 edits. Prints one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Named like the standard library's `calendar`: run as a script, this file's directory would come
# first on sys.path and shadow it (for httpx, email, ...). The repository root takes its place.
if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from crm_core.domain.calendar_users import SyncedUser
from crm_core.domain.directory import DirectoryFile, User
from crm_core.domain.settings import load_settings
from crm_core.graph.outlook_calendar import GraphCalendar
from crm_core.netgenium.schema_map import load_schema_map
from crm_core.runtime import Runtime
from crm_core.storage.tables import CALENDAR_CONFLICTS_TABLE, CALENDAR_PAIRS_TABLE, CURSORS_TABLE, LEASES_TABLE
from crm_core.usecases.calendar_ports import CalendarReport
from crm_core.usecases.calendar_users import refresh_users
from sandbox.stack import NETGENIUM_KEY, SandboxStack

CRM = "crm@firma.example"
LATENCY_MS = 20
SERIES_PER_USER = 2
OCCURRENCES = 5
GRAPH_WRITES = ("createEvent", "updateEvent", "deleteEvent")
NG_WRITES = ("insert", "update", "delete")
ENTITY = load_schema_map(None).calendar_activities
COLUMN = {name: ENTITY.column(name).name for name in ("subject", "start", "end", "all_day", "event_id", "user")}


def directory(users: int) -> DirectoryFile:
    people = [User(id=n, email=f"cal{n}@firma.example", name=f"Calendar User {n}") for n in range(1, users + 1)]
    return DirectoryFile(crm_address=CRM, users=people)


def _slot(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def calendar_items(user: int, count: int, today: datetime) -> list[dict[str, Any]]:
    """`count` items inside the sync window: singles over the next 300 days, two weekly series."""
    singles = count - SERIES_PER_USER * OCCURRENCES
    out: list[dict[str, Any]] = []
    for k in range(singles):
        day = today + timedelta(days=1 + k * 299 // max(1, singles - 1))
        body: dict[str, Any] = {
            "subject": f"Meeting {user}-{k}",
            "location": {"displayName": f"Room {k % 12}"},
            "body": {"contentType": "text", "content": f"Agenda for meeting {k} of user {user}."},
        }
        if k % 10 == 9:
            body |= {"isAllDay": True, "start": _slot(day), "end": _slot(day + timedelta(days=1 + k % 2))}
        else:
            start = day + timedelta(hours=7 + k % 9, minutes=30 * (k % 2))
            body |= {"start": _slot(start), "end": _slot(start + timedelta(minutes=30 + 30 * (k % 3)))}
        out.append(body)
    for j in range(SERIES_PER_USER):
        start = today + timedelta(days=3 + 100 * j + user % 7, hours=9)
        out.append(
            {
                "subject": f"Weekly {user}-{j}",
                "start": _slot(start),
                "end": _slot(start + timedelta(hours=1)),
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [start.strftime("%A").lower()]},
                    "range": {
                        "type": "numbered",
                        "startDate": start.date().isoformat(),
                        "numberOfOccurrences": OCCURRENCES,
                    },
                },
            }
        )
    return out


async def bounded(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))


async def put_in_outlook(graph_url: str, emails: list[str], events: int) -> dict[str, list[dict[str, Any]]]:
    """Every user's items through the admin API; the created single events by user (to edit later)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    created: dict[str, list[dict[str, Any]]] = {email: [] for email in emails}
    async with httpx.AsyncClient(base_url=f"{graph_url}/_admin", timeout=60) as client:

        async def create(email: str, body: dict[str, Any]) -> None:
            answer = await client.post(f"/users/{email}/events", json=body)
            answer.raise_for_status()
            if "recurrence" not in body:
                created[email].append(answer.json())

        jobs = [create(email, body) for n, email in enumerate(emails, 1) for body in calendar_items(n, events, today)]
        await bounded(32, jobs)
    return created


async def sync_all(runtime: Runtime, users: list[SyncedUser], concurrency: int) -> CalendarReport:
    """One sync of every user (with the sweep, as the poll timer's tasks run it), `concurrency` at a time."""
    total = CalendarReport()
    reports = await bounded(concurrency, [runtime.calendar.sync.sync(user, sweep=True) for user in users])
    for report in reports:
        total.add(report)
    return total


def count_calls(target: object, names: tuple[str, ...]) -> Counter[str]:
    """Count calls of some async methods of one object (the pair store: Table storage requests)."""
    calls: Counter[str] = Counter()
    for name in names:
        method = getattr(target, name)

        async def counted(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
            calls[_name] += 1
            return await _method(*args, **kwargs)

        setattr(target, name, counted)
    return calls


def graph_stats(stack: SandboxStack) -> dict[str, int]:
    return dict(stack.graph_admin("GET", "stats").json()["requests"])


def ng_counts(stack: SandboxStack) -> dict[str, int]:
    return dict(stack.netgenium_admin("GET", "counts").json()["counts"])


def calendar_records(stack: SandboxStack) -> list[dict[str, Any]]:
    fixed = ENTITY.fixed_values()
    return [r for r in stack.netgenium_records(ENTITY.table) if all(r.get(k) == v for k, v in fixed.items())]


async def edit_netgenium(base_url: str, edits: list[tuple[int, dict[str, Any]]]) -> None:
    """What a user's save in NET Genium does to the record (the record API's PATCH)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60, headers={"X-Api-Key": NETGENIUM_KEY}) as client:

        async def patch(activity_id: int, values: dict[str, Any]) -> None:
            answer = await client.patch(f"/api/v1/tables/{ENTITY.table}/records/{activity_id}", json=values)
            answer.raise_for_status()

        await bounded(16, [patch(activity_id, values) for activity_id, values in edits])


def writes(report: CalendarReport) -> int:
    return report.to_netgenium + report.to_outlook + report.deleted_in_netgenium + report.deleted_in_outlook


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def measure(stack: SandboxStack, args: argparse.Namespace) -> dict[str, Any]:
    assert stack.graph and stack.netgenium
    for name, value in stack.app_settings(port=9).items():
        os.environ[name] = value
    runtime = Runtime(load_settings())
    emails = [u.email for u in stack.directory.users]

    created = await put_in_outlook(stack.graph.base_url, emails, args.events)
    match = await refresh_users(runtime.netgenium, GraphCalendar(runtime.graph), runtime.calendar.users)
    users = sorted(match.synced, key=lambda u: u.ng_user_id)
    assert len(users) == len(emails), match.unmatched

    # ---- the initial sync ------------------------------------------------------------------------
    # A worker that has run before has its tables: create them now, not 16 times at once inside the
    # measurement (TableStorage.table has no guard against concurrent first use).
    for table in (LEASES_TABLE, CURSORS_TABLE, CALENDAR_PAIRS_TABLE, CALENDAR_CONFLICTS_TABLE):
        await runtime.storage.table(table)
    pair_ops = count_calls(runtime.calendar.pairs, ("by_event", "by_activity", "save", "delete", "all"))
    stack.reset_counts()
    load = os.getloadavg()[0]
    cpu, started = time.process_time(), time.perf_counter()
    initial = await sync_all(runtime, users, args.concurrency)
    initial_seconds = time.perf_counter() - started
    initial_cpu = time.process_time() - cpu
    initial_pairs = dict(pair_ops)
    initial_graph, initial_ng = graph_stats(stack), ng_counts(stack)
    records = calendar_records(stack)
    expected = len(users) * args.events
    assert len(records) == expected and initial.to_netgenium == expected, (len(records), initial, expected)
    # A second sync with nothing changed: what an idle poll of every user costs.
    stack.reset_counts()
    started = time.perf_counter()
    idle = await sync_all(runtime, users, args.concurrency)
    idle_seconds = time.perf_counter() - started
    idle_graph, idle_ng = graph_stats(stack), ng_counts(stack)

    by_event = {str(r[COLUMN["event_id"]]): r for r in records}
    per_user = max(1, args.edits // 2 // len(users))
    outlook_side = per_user * len(users)
    netgenium_side = args.edits - outlook_side

    # ---- edits in Outlook ------------------------------------------------------------------------
    stack.reset_counts()
    outlook_edits: dict[str, str] = {}  # event id -> new subject
    async with httpx.AsyncClient(base_url=f"{stack.graph.base_url}/_admin", timeout=60) as client:

        async def edit_event(email: str, n: int, event: dict[str, Any]) -> None:
            subject = f"{event['subject']} (moved in Outlook)"
            body: dict[str, Any] = {"subject": subject}
            if not event.get("isAllDay") and n % 2 == 0:
                start, end = _utc(event["start"]["dateTime"]), _utc(event["end"]["dateTime"])
                body |= {"start": _slot(start + timedelta(hours=1)), "end": _slot(end + timedelta(hours=1))}
            answer = await client.patch(f"/users/{email}/events/{event['id']}", json=body)
            answer.raise_for_status()
            outlook_edits[str(event["id"])] = subject

        jobs = [edit_event(email, n, event) for email in emails for n, event in enumerate(created[email][:per_user])]
        await bounded(16, jobs)
    outlook_phase = CalendarReport()
    for _ in range(2):
        outlook_phase.add(await sync_all(runtime, users, args.concurrency))
    outlook_graph, outlook_ng = graph_stats(stack), ng_counts(stack)
    after = {str(r[COLUMN["event_id"]]): r for r in calendar_records(stack)}
    outlook_arrived = sum(
        1 for event_id, subject in outlook_edits.items() if after[event_id][COLUMN["subject"]] == subject
    )

    # ---- edits in NET Genium ---------------------------------------------------------------------
    edited_events = set(outlook_edits)
    candidates = [r for event_id, r in by_event.items() if event_id not in edited_events]
    candidates.sort(key=lambda r: (int(r[COLUMN["user"]]), int(r["id"])))
    by_user: dict[int, list[dict[str, Any]]] = {}
    for record in candidates:
        by_user.setdefault(int(record[COLUMN["user"]]), []).append(record)
    each = -(-netgenium_side // len(by_user))
    chosen = [r for records_of in by_user.values() for r in records_of[::3][:each]][:netgenium_side]
    assert len(chosen) == netgenium_side, (len(chosen), netgenium_side)
    ng_edits: list[tuple[int, dict[str, Any]]] = []
    ng_subjects: dict[str, str] = {}  # event id -> new subject
    for n, record in enumerate(chosen):
        subject = f"{record[COLUMN['subject']]} (moved in NET Genium)"
        values: dict[str, Any] = {COLUMN["subject"]: subject}
        if not record.get(COLUMN["all_day"]) and n % 2 == 0:
            values[COLUMN["start"]] = _z(_utc(record[COLUMN["start"]]) + timedelta(hours=2))
            values[COLUMN["end"]] = _z(_utc(record[COLUMN["end"]]) + timedelta(hours=2))
        ng_edits.append((int(record["id"]), values))
        ng_subjects[str(record[COLUMN["event_id"]])] = subject
    stack.reset_counts()
    await edit_netgenium(stack.netgenium.base_url, ng_edits)
    netgenium_phase = CalendarReport()
    for _ in range(2):
        netgenium_phase.add(await sync_all(runtime, users, args.concurrency))
    netgenium_graph, netgenium_ng = graph_stats(stack), ng_counts(stack)
    today = datetime.now(UTC)
    shown: dict[str, str] = {}
    for email in emails:
        answer = stack.graph_admin(
            "GET",
            f"users/{email}/calendar",
            params={"start": _z(today - timedelta(days=31)), "end": _z(today + timedelta(days=366))},
        )
        answer.raise_for_status()
        shown |= {str(item["id"]): str(item.get("subject") or "") for item in answer.json()["value"]}
    netgenium_arrived = sum(1 for event_id, subject in ng_subjects.items() if shown.get(event_id) == subject)
    await runtime.aclose()

    graph_echoes = sum(outlook_graph.get(op, 0) for op in GRAPH_WRITES)
    ng_echoes = sum(netgenium_ng.get(op, 0) for op in NG_WRITES) - len(ng_edits)
    return {
        "calendar_sync_events_per_s": round(initial.to_netgenium / initial_seconds, 1),
        "calendar_initial_items": initial.to_netgenium,
        "calendar_initial_seconds": round(initial_seconds, 2),
        "calendar_initial_graph_requests": sum(initial_graph.values()),
        "calendar_initial_ng_requests": sum(initial_ng.values()),
        "calendar_initial_graph_by_operation": initial_graph,
        "calendar_initial_ng_by_operation": initial_ng,
        "calendar_initial_pair_table_ops": initial_pairs,
        # CPU of this process (crm_core's side: the adapters, the SDKs, the sync) per item synced.
        "calendar_initial_client_cpu_ms_per_item": round(initial_cpu * 1000 / max(1, initial.to_netgenium), 2),
        "loadavg_1m_before_initial": round(load, 2),
        "calendar_idle_sync_seconds": round(idle_seconds, 2),
        "calendar_idle_graph_requests": sum(idle_graph.values()),
        "calendar_idle_ng_requests": sum(idle_ng.values()),
        "calendar_idle_writes": writes(idle),
        "calendar_echo_writes": graph_echoes + ng_echoes,
        "calendar_echo_writes_to_outlook": graph_echoes,
        "calendar_echo_writes_to_netgenium": ng_echoes,
        "calendar_edits": len(outlook_edits) + len(ng_edits),
        "calendar_edits_propagated": outlook_arrived + netgenium_arrived,
        "calendar_outlook_edits_propagated": f"{outlook_arrived}/{len(outlook_edits)}",
        "calendar_netgenium_edits_propagated": f"{netgenium_arrived}/{len(ng_edits)}",
        "calendar_outlook_phase_graph_by_operation": outlook_graph,
        "calendar_outlook_phase_ng_by_operation": outlook_ng,
        "calendar_netgenium_phase_graph_by_operation": netgenium_graph,
        "calendar_netgenium_phase_ng_by_operation": netgenium_ng,
        "calendar_conflicts": outlook_phase.conflicts + netgenium_phase.conflicts,
        "calendar_failed_items": len(initial.failed + idle.failed + outlook_phase.failed + netgenium_phase.failed),
        "users": len(users),
        "events_per_user": args.events,
        "concurrency": args.concurrency,
        "emulator_latency": (
            f"Graph real profile (page {LATENCY_MS} ms + 1.5 ms/item, 2% expiring tokens) plus latencyMs "
            f"{LATENCY_MS} on every request; NET Genium latency_ms {LATENCY_MS}"
        ),
        "seed": args.seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 users × 50 events, 100 edits")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.users, args.events, args.edits = 10, 50, 100
    if args.events <= SERIES_PER_USER * OCCURRENCES:
        parser.error(f"--events must be more than {SERIES_PER_USER * OCCURRENCES} (the series' occurrences)")

    with SandboxStack(
        directory(args.users), runners=0, graph_latency_ms=LATENCY_MS, netgenium_latency_ms=LATENCY_MS, seed=args.seed
    ) as stack:
        result = asyncio.run(measure(stack, args))
    out = {**result, "cores": os.cpu_count()}
    if args.quick:
        out["quick"] = True
    print(json.dumps(out))


if __name__ == "__main__":
    main()
