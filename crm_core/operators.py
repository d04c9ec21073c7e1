"""`crmservice` commands an operator runs against the live service: its state, its checks, its subscriptions.

Each reads the same app settings as the service (`AzureWebJobsStorage`, Graph, NET Genium) and
answers with text, or one JSON document with `--json`, and an exit status: 0 ok, 1 a problem
found, 2 bad usage or it could not check. No secret is ever printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from crm_core.domain.errors import ExternalServiceError
from crm_core.domain.settings import Settings
from crm_core.usecases import operator_queries as queries
from crm_core.usecases import preflight

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_BAD_INPUT = 2


def pretty_json(obj: dict[str, Any]) -> str:
    """JSON with one key a line, short lists kept on theirs, and each reason on a line of its own."""
    lines = []
    for index, (key, value) in enumerate(obj.items()):
        if key == "reasons" and value:
            items = ",\n".join("    " + json.dumps(reason, ensure_ascii=False) for reason in value)
            text = "[\n" + items + "\n  ]"
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        comma = "," if index < len(obj) - 1 else ""
        lines.append(f"  {json.dumps(key)}: {text}{comma}")
    return "{\n" + "\n".join(lines) + "\n}"


def state(args: argparse.Namespace) -> int:
    """Commands that read the live service's state; the connection comes from AzureWebJobsStorage."""
    import asyncio

    connection = os.environ.get("AzureWebJobsStorage", "")  # noqa: SIM112 - the Functions setting's own name
    if not connection:
        print(
            f"crmservice {args.command}: AzureWebJobsStorage must be set (a storage connection string)", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    if getattr(args, "limit", 1) < 1 or getattr(args, "top", 1) < 1 or getattr(args, "conflicts", 1) < 0:
        print(f"crmservice {args.command}: the count must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    if getattr(args, "limit", 1) > 32:  # Queue storage peeks at most 32 messages
        print(f"crmservice {args.command}: --limit is at most 32", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return asyncio.run(_ask_state(args, connection))
    except ExternalServiceError as exc:
        print(f"crmservice {args.command}: could not read the service's state: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


async def _ask_state(args: argparse.Namespace, connection: str) -> int:
    from crm_core.runtime import operator_state

    async with operator_state(connection) as state:
        return await _answer(args, state)


def _emit(args: argparse.Namespace, data: Any, text: Sequence[str]) -> None:
    """`--json`: one JSON document; otherwise the lines an administrator reads."""
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False))
    else:
        for line in text:
            print(line)


def _why_text(entry: dict[str, Any]) -> list[str]:
    lines = [f"{entry['message_id']}: {entry['state']}"]
    for key in ("activity_id", "direction", "contacts", "users", "order_id", "attempts", "claimed_at"):
        value = entry.get(key)
        if value not in (None, [], ""):
            shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            lines.append(f"  {key.replace('_', ' ')}: {shown}")
    lines += ["  reasons:"] + [f"    - {reason}" for reason in entry.get("reasons", [])]
    return lines


async def _answer(args: argparse.Namespace, state: queries.OperatorState) -> int:
    if args.command == "why":
        entry = await queries.ledger_entry(state, args.message_id)
        if entry is None:
            print(f"crmservice why: {args.message_id} was never seen (it is not in the ledger)", file=sys.stderr)
            return EXIT_PROBLEM
        if args.json or args.pretty:
            print(pretty_json(entry) if args.pretty else json.dumps(entry, ensure_ascii=False))
        else:
            _emit(args, entry, _why_text(entry))
        return EXIT_OK
    if args.command == "calendar":
        status = await queries.calendar_status(state, args.conflicts)
        text = [f"calendar users refreshed at {status['refreshed_at'] or 'never'}"]
        text += [f"  synced    {u['email']}  (NET Genium user {u['ng_user_id']})" for u in status["synced"]]
        text += [
            f"  NOT SYNCED {u['email']}  (NET Genium user {u['ng_user_id']}): {u['reason']}"
            for u in status["unmatched"]
        ]
        text += [f"conflicts: {status['conflicts_total']}"]
        text += [
            f"  {c['at']}  {c['mailbox']}: {c['winner']} won over {c['loser']} ({', '.join(c['fields'])})"
            for c in status["conflicts"]
        ]
        _emit(args, status, text)
        return EXIT_PROBLEM if status["unmatched"] or status["refreshed_at"] is None else EXIT_OK
    if args.command == "correspondents":
        rows = await queries.unmatched_correspondents(state, args.top)
        text = [f"{r['count']:>6}  {r['address']}  (last seen {r['last_seen']})" for r in rows]
        _emit(args, rows, text or ["no unmatched correspondents"])
        return EXIT_OK
    if args.poison_command == "replay":
        moved = await queries.replay_poison_items(state, args.queue)
        _emit(args, {"queue": args.queue, "replayed": moved}, [f"{moved} items moved back to {args.queue}"])
        return EXIT_OK
    items = await queries.poison_items(state, args.queue, args.limit)
    text = [f"attempts {i['attempts']}: {i['reason']}\n  item: {i['item']}" for i in items]
    _emit(args, items, text or [f"{args.queue}-poison is empty"])
    return EXIT_PROBLEM if items else EXIT_OK  # an item that failed for good is a problem found


def _load_settings(command: str) -> Settings | None:
    from crm_core.domain.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        print(f"crmservice {command}: the app settings are wrong: {exc}", file=sys.stderr)
        return None


def check(args: argparse.Namespace) -> int:
    """`crmservice check`: the settings, then Graph, NET Genium and storage, one line a check."""
    import asyncio

    from crm_core.domain.settings import SettingsError, load_settings
    from crm_core.usecases import preflight

    try:
        settings = load_settings()
    except SettingsError as exc:
        results = [preflight.settings_result(str(exc))]
    else:
        results = [preflight.settings_result(None), *asyncio.run(_run_checks(settings))]
    if args.json:
        print(json.dumps([result.as_json() for result in results], ensure_ascii=False))
    else:
        width = max(len(result.check) for result in results)
        for result in results:
            print(f"{'OK' if result.ok else 'FAIL':<4} {result.check:<{width}}  {result.detail}")
    return EXIT_OK if all(result.ok for result in results) else EXIT_PROBLEM


async def _run_checks(settings: Settings) -> list[preflight.CheckResult]:
    from crm_core.runtime import preflight_probes, secret_values
    from crm_core.usecases.preflight import run_checks

    async with preflight_probes(settings) as probes:
        return await run_checks(probes, secrets=secret_values(settings))


def subscriptions(args: argparse.Namespace) -> int:
    """`crmservice subscriptions list|ensure|delete`, with the service's own settings."""
    import asyncio

    if args.sub_command == "delete" and bool(args.ids) == bool(args.all):
        print("crmservice subscriptions delete: name subscription ids or --all (not both)", file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = _load_settings(f"subscriptions {args.sub_command}")
    if settings is None:
        return EXIT_BAD_INPUT
    try:
        return asyncio.run(_run_subscriptions(args, settings))
    except ExternalServiceError as exc:
        from crm_core.runtime import secret_values
        from crm_core.usecases.preflight import mask

        problem = mask(str(exc), secret_values(settings))
        print(f"crmservice subscriptions {args.sub_command}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT


async def _run_subscriptions(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core.runtime import Runtime

    runtime = Runtime(settings)
    try:
        if args.sub_command == "ensure":
            report = await runtime.run_upkeep()
            data = {"created": report.created, "renewed": report.renewed, "dropped": report.dropped}
            text = [f"{key}: {', '.join(ids)}" for key, ids in data.items() if ids]
            _emit(args, data, text or ["nothing to do: the mail subscription is live and not past half its life"])
            return EXIT_OK
        if args.sub_command == "delete":
            deleted = await runtime.delete_subscriptions(None if args.all else list(args.ids))
            text = [
                f"{d.id}: {'deleted in Graph' if d.in_graph else 'not in Graph'}, "
                f"{'record deleted' if d.stored else 'no record'}"
                for d in deleted
            ]
            _emit(args, [d.as_json() for d in deleted], text or ["no subscriptions"])
            unknown = [d for d in deleted if not (d.in_graph or d.stored)]
            return EXIT_PROBLEM if unknown else EXIT_OK
        views = await runtime.subscription_overview()
        text = [
            f"{v.id}  {v.resource}  expires {v.expires_at.isoformat() if v.expires_at else '?'}  "
            f"{'OK' if v.agree else 'MISMATCH'}: {v.note}"
            for v in views
        ]
        _emit(args, [v.as_json() for v in views], text or ["no subscriptions: `crmservice subscriptions ensure`"])
        return EXIT_OK if views and all(v.agree for v in views) else EXIT_PROBLEM
    finally:
        await runtime.aclose()


# ---- backfill ----------------------------------------------------------------------------------


def parse_date(text: str) -> datetime:
    """A command-line date: `2024-01-31` (midnight UTC) or an ISO 8601 time (UTC unless it says)."""
    from datetime import UTC

    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (expected YYYY-MM-DD or an ISO 8601 time)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def backfill(args: argparse.Namespace) -> int:
    """`crmservice backfill --since DATE [--until DATE] [--dry-run]`: the mail older than the first
    run's cutoff, through the live capture; resumable, with a progress bar on stderr."""
    import asyncio
    from datetime import UTC, timedelta

    if args.page_size is not None and not 1 <= args.page_size <= 1000:
        print("crmservice backfill: --page-size must be 1..1000", file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = _load_settings("backfill")
    if settings is None:
        return EXIT_BAD_INPUT
    until = args.until or datetime.now(UTC) - timedelta(days=settings.crm_initial_sync_days)
    if args.since >= until:
        what = "--until" if args.until else f"the first run's cutoff ({settings.crm_initial_sync_days} days back)"
        print(
            f"crmservice backfill: --since {args.since.isoformat()} is not before {what}, {until.isoformat()}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        return asyncio.run(_run_backfill(args, settings, args.since, until))
    except KeyboardInterrupt:
        print(
            "crmservice backfill: interrupted; the mails of every finished page are recorded, and the same "
            "command continues where this run stopped",
            file=sys.stderr,
        )
        return 130
    except ExternalServiceError as exc:
        from crm_core.runtime import secret_values
        from crm_core.usecases.preflight import mask

        print(f"crmservice backfill: stopped: {mask(str(exc), secret_values(settings))}", file=sys.stderr)
        print("crmservice backfill: run the same command again to continue", file=sys.stderr)
        return EXIT_PROBLEM


def _backfill_line(item: Any) -> dict[str, Any]:
    """A dry run's line: `explain`'s object with the mail's received time and what would happen."""
    from crm_core.cli import explanation

    out: dict[str, Any] = {"message_id": item.message_id, "received": item.received, "would": item.outcome}
    if item.decision is not None:
        # The ledger's key stays: a mail without an Internet Message-ID is known by its Graph id.
        out.update({k: v for k, v in explanation(item.decision).items() if k != "message_id"})
    if item.ledger_state is not None:
        out["ledger_state"] = item.ledger_state
    return out


async def _run_backfill(args: argparse.Namespace, settings: Settings, since: datetime, until: datetime) -> int:
    import socket

    from crm_core.runtime import Runtime

    # One worker name per host: a run that follows an interrupted one takes over its claims at once.
    runtime = Runtime(settings, worker=f"backfill@{socket.gethostname()}")
    bar: Any = None

    def started(report: Any) -> None:
        nonlocal bar
        if report.resumed_from:
            print(f"resuming from {report.resumed_from} ({report.mails} mails done before)", file=sys.stderr)
        if args.dry_run or args.no_progress:
            return
        from tqdm import tqdm  # type: ignore[import-untyped]  # lazily: only the backfill draws a bar

        bar = tqdm(
            total=report.total, initial=report.mails, unit="mail", desc="backfill", file=sys.stderr, mininterval=0.2
        )

    def done(item: Any) -> None:
        if args.dry_run:
            print(json.dumps(_backfill_line(item), ensure_ascii=False), flush=True)
        elif bar is not None:
            bar.update(1)

    try:
        report = await runtime.backfill(page_size=args.page_size, folder=args.folder).run(
            since, until, dry_run=args.dry_run, restart=args.restart, on_start=started, on_item=done
        )
    finally:
        if bar is not None:
            bar.close()
        await runtime.aclose()
    summary = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "dry_run": bool(args.dry_run),
        "already_done": report.already_done,
        "resumed_from": report.resumed_from,
        "mails": report.mails,
        "outcomes": dict(sorted(report.outcomes.items())),
        "failed": report.failed,
    }
    if report.already_done:
        text = [f"this range was backfilled already ({report.mails} mails); --restart reads it again"]
    else:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(report.outcomes.items())) or "no mail"
        text = [f"backfill {since.date()} .. {until.date()}{' (dry run)' if args.dry_run else ''}: {counts}"]
        text += [f"  failed: {message_id}" for message_id in report.failed]
        if report.failed:
            text.append("  --restart reads the range again: the failed mails are tried again, stored ones skipped")
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        stream = sys.stderr if args.dry_run else sys.stdout  # a dry run's stdout is its JSON lines
        for line in text:
            print(line, file=stream)
    return EXIT_PROBLEM if report.failed else EXIT_OK
