"""The `crmservice` command: the administrator's tools around the service.

`crmservice explain` answers "why was this mail (not) stored?" with the very decision the service
makes, from a directory file and Graph message JSON files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crm_core.domain.capture_decision import CaptureRules, Decision, decide
from crm_core.domain.directory import Directory, DirectoryFile
from crm_core.domain.mail import GraphMessage
from crm_core.domain.tasks import CAPTURE_QUEUE
from crm_core.usecases import operator_queries as queries

EXIT_OK = 0
EXIT_BAD_INPUT = 2

# A JSON object must have at least one of these to be taken for a Graph message.
_MESSAGE_FIELDS = frozenset(
    (
        "internetMessageId",
        "from",
        "sender",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "subject",
        "body",
        "@odata.type",
    )
)


class InputError(ValueError):
    """A file that cannot be read as what it should be; the message names the file."""


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def load_directory(path: Path) -> tuple[Directory, CaptureRules]:
    """The directory and the capture rules of an `explain` directory file."""
    data = _read_json(path)
    try:
        parsed = DirectoryFile.model_validate(data)
        rules = CaptureRules.build(parsed.crm_address, parsed.excluded, parsed.order_keywords)
    except ValidationError as exc:
        raise InputError(f"{path}: not a directory file ({_first_error(exc)})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a directory file ({exc})") from None
    return Directory(parsed.users, parsed.contacts, parsed.orders), rules


def load_messages(path: Path) -> list[GraphMessage]:
    """The messages of one file: a Graph message, a JSON list of them, or a Graph `value` page."""
    data = _read_json(path)
    items = data["value"] if isinstance(data, dict) and isinstance(data.get("value"), list) else data
    items = items if isinstance(items, list) else [items]
    messages = []
    for index, item in enumerate(items):
        where = f"{path}" if len(items) == 1 else f"{path}[{index}]"
        if not isinstance(item, dict) or not _MESSAGE_FIELDS & item.keys():
            raise InputError(
                f"{where}: not a message (expected a Graph message object with from, toRecipients, subject, ...)"
            )
        try:
            messages.append(GraphMessage.model_validate(item))
        except ValidationError as exc:
            raise InputError(f"{where}: not a message ({_first_error(exc)})") from None
    return messages


def explanation(decision: Decision) -> dict[str, Any]:
    """The `explain` output of one decision, keys in their documented order."""
    return {
        "message_id": decision.message_id,
        "capture": decision.capture,
        "direction": decision.direction,
        "contacts": decision.contact_ids,
        "users": decision.user_ids,
        "order_number": decision.order_number,
        "order_id": decision.order_id,
        "reasons": decision.reasons,
    }


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


def _explain(args: argparse.Namespace) -> int:
    try:
        directory, rules = load_directory(args.directory)
    except InputError as exc:
        print(f"crmservice explain: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    status = EXIT_OK
    for path in args.messages:
        try:
            messages = load_messages(path)
        except InputError as exc:
            print(f"crmservice explain: {exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        for message in messages:
            out = explanation(decide(message, directory, rules))
            print(pretty_json(out) if args.pretty else json.dumps(out, ensure_ascii=False), flush=True)
    return status


def _netgenium_check(args: argparse.Namespace) -> int:
    """Check the schema map against a live record API; the key comes from the environment only
    (a key on the command line would show in every process list)."""
    from crm_core.netgenium.check import run_check

    base_url = args.base_url or os.environ.get("NETGENIUM_BASE_URL", "")
    api_key = os.environ.get("NETGENIUM_API_KEY", "")
    header = args.header or os.environ.get("NETGENIUM_API_KEY_HEADER", "X-Api-Key")
    schema_map = args.schema_map or os.environ.get("NETGENIUM_SCHEMA_MAP", "")
    missing = [name for name, value in (("NETGENIUM_BASE_URL", base_url), ("NETGENIUM_API_KEY", api_key)) if not value]
    if missing:
        print(f"crmservice netgenium check: {' and '.join(missing)} must be set", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_check(base_url, api_key, header, schema_map)


def _sandbox(arguments: Sequence[str]) -> int:
    """Run `python -m sandbox.replay`: the sandbox is a program of its own, outside the product,
    so the product's command hands over to it instead of importing it."""
    import subprocess

    command = [sys.executable, "-m", "sandbox.replay", *arguments]
    return subprocess.run(command, check=False).returncode  # noqa: S603 - our own module, no shell


def _state(args: argparse.Namespace) -> int:
    """Commands that read the live service's state; the connection comes from AzureWebJobsStorage."""
    import asyncio

    connection = os.environ.get("AzureWebJobsStorage", "")  # noqa: SIM112 - the Functions setting's own name
    if not connection:
        print(
            f"crmservice {args.command}: AzureWebJobsStorage must be set (a storage connection string)", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    return asyncio.run(_ask_state(args, connection))


async def _ask_state(args: argparse.Namespace, connection: str) -> int:
    from crm_core.runtime import operator_state

    async with operator_state(connection) as state:
        return await _answer(args, state)


async def _answer(args: argparse.Namespace, state: queries.OperatorState) -> int:
    if args.command == "why":
        entry = await queries.ledger_entry(state, args.message_id)
        if entry is None:
            print(
                f"crmservice why: {args.message_id} is not in the ledger (never seen by the service)", file=sys.stderr
            )
            return 1
        print(pretty_json(entry) if args.pretty else json.dumps(entry, ensure_ascii=False))
        return EXIT_OK
    if args.command == "correspondents":
        for row in await queries.unmatched_correspondents(state, args.limit):
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    if args.poison_command == "replay":
        moved = await queries.replay_poison_items(state, args.queue)
        print(json.dumps({"queue": args.queue, "replayed": moved}))
        return EXIT_OK
    for item in await queries.poison_items(state, args.queue, args.limit):
        print(json.dumps(item, ensure_ascii=False))
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmservice", description="CRMService for Azure")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explain = commands.add_parser(
        "explain",
        help="why a mail is (not) stored: the capture decision for Graph message JSON files",
        description="Prints one JSON object per message, in input order: message_id, capture, "
        "direction, contacts, users, order_number, order_id, reasons.",
    )
    explain.add_argument("--directory", type=Path, required=True, metavar="DIRECTORY.json")
    explain.add_argument("messages", type=Path, nargs="+", metavar="MESSAGE.json")
    explain.add_argument("--pretty", action="store_true", help="indent each object for reading")
    explain.set_defaults(run=_explain)

    netgenium = commands.add_parser("netgenium", help="NET Genium record API tools")
    ng_commands = netgenium.add_subparsers(dest="ng_command", required=True, metavar="COMMAND")
    check = ng_commands.add_parser(
        "check",
        help="does every table and column of the schema map exist? (exit 0 yes, 1 no, 2 could not check)",
        description="Asks the record API at NETGENIUM_BASE_URL (key from NETGENIUM_API_KEY) whether every "
        "table and column that the schema map names exists, and prints what is missing.",
    )
    check.add_argument("--base-url", help="the record API (default: NETGENIUM_BASE_URL)")
    check.add_argument("--header", help="the API key header (default: NETGENIUM_API_KEY_HEADER or X-Api-Key)")
    check.add_argument("--schema-map", help="the schema map file (default: NETGENIUM_SCHEMA_MAP or the shipped one)")
    check.set_defaults(run=_netgenium_check)

    # Listed for --help only: main() hands `crmservice sandbox ...` over before parsing.
    commands.add_parser("sandbox", help="run the whole service on this machine: `crmservice sandbox replay --help`")

    poison = commands.add_parser("poison", help="queue items that failed for good: why, and another try")
    poison_commands = poison.add_subparsers(dest="poison_command", required=True, metavar="COMMAND")
    for name, text in (
        ("list", "print each poison item with its attempts and the reason of its last failure (JSON lines)"),
        ("replay", "move every poison item back to its queue for another try"),
    ):
        command = poison_commands.add_parser(name, help=text, description=text)
        command.add_argument("--queue", default=CAPTURE_QUEUE, help=f"the queue (default {CAPTURE_QUEUE})")
        if name == "list":
            command.add_argument("--limit", type=int, default=32, help="at most this many items (1..32)")
        command.set_defaults(run=_state)

    why = commands.add_parser(
        "why",
        help="why the service stored a mail or not: its ledger record, with the decision's reasons",
        description="Reads the capture ledger of the live service (AzureWebJobsStorage) for one Internet Message-ID.",
    )
    why.add_argument("message_id", metavar="MESSAGE_ID", help="the Internet Message-ID, e.g. '<CAF1@example.com>'")
    why.add_argument("--pretty", action="store_true", help="a key a line, for reading")
    why.set_defaults(run=_state)

    correspondents = commands.add_parser(
        "correspondents",
        help="who writes to the company without being in the address book (address, count, last seen)",
    )
    correspondents.add_argument("--limit", type=int, default=100, help="the most frequent N (default 100)")
    correspondents.set_defaults(run=_state)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crmservice` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sandbox"]:
        return _sandbox(arguments[1:])
    args = _parser().parse_args(arguments)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
