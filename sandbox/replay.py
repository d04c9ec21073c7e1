"""`crmservice sandbox replay` (or `python -m sandbox.replay replay`): mails through the local service.

Starts Azurite, both emulators and the local Functions runner on free loopback ports, seeds NET
Genium from an `explain` directory file, delivers each mail (Graph JSON or `.eml`) into the CRM
mailbox so that it travels webhook → queue → capture, waits until every mail has its outcome,
prints the result, and stops everything it started.

The Graph emulator runs Graph's documented worst case (delta in any order, partial updates,
expiring tokens, slow pages), seeded with `--seed` (`--ideal` for the happy path). The output is
the same for every seed: what is captured, skipped and linked must not depend on the order Graph
returns mail in. The activity ids NET Genium gives and the request counts are facts of the run,
not decisions, and differ between seeds: `--run-facts` adds them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crm_core.domain.directory import DirectoryFile
from sandbox.calendar_scenario import add_calendar_arguments, run_calendar_command
from sandbox.stack import GraphProfile, NetGeniumBackend, SandboxError, SandboxStack

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def mail_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the files of the folders named, in a stable order."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


def load_mail_file(path: Path) -> list[Mapping[str, Any] | bytes]:
    """Mails in one file: `.eml` (RFC 822), or Graph JSON (one message, a list, or a `value` page)."""
    if path.suffix.lower() == ".eml":
        return [path.read_bytes()]
    data = json.loads(path.read_bytes())
    items = data["value"] if isinstance(data, dict) and isinstance(data.get("value"), list) else data
    items = items if isinstance(items, list) else [items]
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("not a Graph message (expected a JSON object)")
    return list(items)


def _warn(text: str) -> None:
    print(f"crmservice sandbox replay: {text}", file=sys.stderr)


def read_mails(paths: Sequence[Path]) -> tuple[list[tuple[Path, Mapping[str, Any] | bytes]], bool]:
    """Every readable mail, and whether some file had to be skipped (each is named on stderr)."""
    mails: list[tuple[Path, Mapping[str, Any] | bytes]] = []
    skipped = False
    for path in mail_files(paths):
        if path.suffix.lower() not in (".json", ".eml"):
            _warn(f"{path}: skipped (not .json or .eml)")
            skipped = True
            continue
        try:
            mails.extend((path, mail) for mail in load_mail_file(path))
        except (OSError, ValueError) as exc:
            _warn(f"{path}: skipped ({exc})")
            skipped = True
    return mails, skipped


def replay(
    directory_path: Path,
    message_paths: Sequence[Path],
    *,
    as_json: bool,
    timeout: float,
    seed: int = 0,
    graph_profile: GraphProfile = "real",
    run_facts: bool = False,
    netgenium: NetGeniumBackend = "sqlite",
) -> int:
    try:
        directory = DirectoryFile.model_validate_json(directory_path.read_bytes())
    except (OSError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        _warn(f"{directory_path}: not a directory file ({detail})")
        return EXIT_BAD_INPUT
    mails, skipped = read_mails(message_paths)
    try:
        with SandboxStack(directory, seed=seed, graph_profile=graph_profile, netgenium=netgenium) as stack:
            for path, mail in mails:
                try:
                    stack.deliver(mail)
                except SandboxError as exc:
                    _warn(f"{path}: skipped ({exc})")
                    skipped = True
            stack.settle(timeout=timeout)
            report = stack.report(run_facts=run_facts)
    except SandboxError as exc:
        _warn(str(exc))
        return EXIT_FAILED
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        for activity in report["activities"]:
            line = f"stored   {activity['message_id']}  {activity['direction']}"
            if run_facts:
                line += f"  activity {report['run']['activity_ids'][activity['message_id']]}"
            print(line)
        for item in report["skipped"]:
            print(f"skipped  {item['message_id']}  {'; '.join(item['reasons'])}")
        if run_facts:
            requests = report["run"]["requests"]
            print(f"requests: Graph {requests['graph']}, NET Genium {requests['netgenium']}")
    return EXIT_BAD_INPUT if skipped else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crmservice sandbox", description="the whole service on this machine")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "replay",
        help="put mails through the local service (Azurite, both emulators, the Functions runner)",
        description=__doc__.splitlines()[2] if __doc__ else None,
    )
    run.add_argument("--directory", type=Path, required=True, metavar="DIRECTORY.json")
    run.add_argument("--messages", type=Path, nargs="+", required=True, metavar="FILE_OR_DIR")
    run.add_argument("--json", action="store_true", help="print one JSON document")
    run.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the mails to settle")
    run.add_argument("--seed", type=int, default=0, help="seed for everything random in the Graph emulator")
    run.add_argument("--ideal", action="store_true", help="run Graph's happy path instead of its documented worst case")
    run.add_argument(
        "--run-facts",
        action="store_true",
        help="also print this run's activity ids and request counts (they differ between seeds)",
    )
    calendar = commands.add_parser(
        "calendar",
        help="run a calendar scenario (steps on both sides) on the local service and print both sides",
        description="Steps: {side: outlook|netgenium, user, op: create|update|delete, ref, fields}, "
        "{op: sync}, {op: wipe_mapping}, {op: fault, target: graph|netgenium, ...}; see README.md.",
    )
    add_calendar_arguments(calendar)
    run.add_argument(
        "--netgenium",
        choices=["sqlite", "firebird"],
        default="sqlite",
        help="the NET Genium bridge's database: SQLite (default) or a Firebird 3 server it starts (firebird3.0-server)",
    )
    args = parser.parse_args(argv)
    if args.command == "calendar":
        return run_calendar_command(args)
    return replay(
        args.directory,
        args.messages,
        as_json=args.json,
        timeout=args.timeout,
        seed=args.seed,
        graph_profile="ideal" if args.ideal else "real",
        run_facts=args.run_facts,
        netgenium=args.netgenium,
    )


if __name__ == "__main__":
    sys.exit(main())
