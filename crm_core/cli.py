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

from crm_core import operators
from crm_core.domain.capture_decision import CaptureRules, Decision, decide
from crm_core.domain.directory import Directory, DirectoryFile
from crm_core.domain.mail import GraphMessage
from crm_core.domain.tasks import CAPTURE_QUEUE
from crm_core.operators import EXIT_BAD_INPUT, EXIT_OK, pretty_json

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
    database_url = os.environ.get("NETGENIUM_DATABASE_URL", "")  # direct mode; never on the command line
    header = args.header or os.environ.get("NETGENIUM_API_KEY_HEADER", "X-Api-Key")
    schema_map = args.schema_map or os.environ.get("NETGENIUM_SCHEMA_MAP", "")
    if not base_url and database_url:
        return run_check("", "", header, schema_map, database_url=database_url)
    missing = [name for name, value in (("NETGENIUM_BASE_URL", base_url), ("NETGENIUM_API_KEY", api_key)) if not value]
    if missing:
        print(
            f"crmservice netgenium check: {' and '.join(missing)} must be set "
            "(or NETGENIUM_DATABASE_URL for direct mode)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return run_check(base_url, api_key, header, schema_map)


def _sandbox(arguments: Sequence[str], module: str = "sandbox.replay") -> int:
    """Run `python -m sandbox.replay` (or `sandbox.demo`): the sandbox is a program of its own,
    outside the product, so the product's command hands over to it instead of importing it. On
    POSIX the command becomes that program (exec): Ctrl+C and SIGTERM reach it directly, and it
    stops every process it started."""
    command = [sys.executable, "-m", module, *arguments]
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)  # noqa: S606 - our own module, no shell
    import subprocess

    return subprocess.run(command, check=False).returncode  # noqa: S603 - our own module, no shell


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

    # Listed for --help only: main() hands `crmservice sandbox ...` and `demo` over before parsing.
    commands.add_parser("sandbox", help="run the whole service on this machine: `crmservice sandbox replay --help`")
    commands.add_parser(
        "demo",
        help="a scripted day of mail and calendar changes on the whole local service: `crmservice demo --help`",
    )

    poison = commands.add_parser("poison", help="queue items that failed for good: why, and another try")
    poison_commands = poison.add_subparsers(dest="poison_command", required=True, metavar="COMMAND")
    for name, text in (
        ("list", "print each poison item with its attempts and the reason of its last failure (exit 1: some)"),
        ("replay", "move every poison item back to its queue for another try"),
    ):
        command = poison_commands.add_parser(name, help=text, description=text)
        command.add_argument("--queue", default=CAPTURE_QUEUE, help=f"the queue (default {CAPTURE_QUEUE})")
        if name == "list":
            command.add_argument("--limit", type=int, default=32, help="at most this many items (1..32)")
        _json_flag(command)
        command.set_defaults(run=operators.state)

    why = commands.add_parser(
        "why",
        help="why the service stored a mail or not: its ledger record, with the decision's reasons",
        description="Reads the capture ledger of the live service (AzureWebJobsStorage) for one Internet Message-ID.",
    )
    why.add_argument("message_id", metavar="MESSAGE_ID", help="the Internet Message-ID, e.g. '<CAF1@example.com>'")
    why.add_argument("--pretty", action="store_true", help="JSON with a key a line (implies --json)")
    _json_flag(why)
    why.set_defaults(run=operators.state)

    correspondents = commands.add_parser(
        "correspondents",
        help="who writes to the company without being in the address book (address, count, last seen)",
    )
    correspondents.add_argument(
        "--top", "--limit", dest="top", type=int, default=100, metavar="N", help="the most frequent N (default 100)"
    )
    _json_flag(correspondents)
    correspondents.set_defaults(run=operators.state)

    backfill = commands.add_parser(
        "backfill",
        help="capture the CRM mailbox's mail older than the first run's cutoff, as live mail is captured",
        description="Reads the CRM mailbox's inbox by received time, oldest first, and puts each mail through "
        "the live capture (the same decision and ledger: a mail stored already is not stored again). --until "
        "defaults to the first run's cutoff (CRM_INITIAL_SYNC_DAYS back). Stopped (Ctrl+C, an outage), the same "
        "command continues after the last finished page. Exit 0: done; 1: some mails failed or the run stopped "
        "(run it again); 2: bad usage or settings; 130: interrupted.",
    )
    backfill.add_argument("--since", type=operators.parse_date, required=True, metavar="DATE", help="from this date")
    backfill.add_argument("--until", type=operators.parse_date, metavar="DATE", help="up to (not including) this date")
    backfill.add_argument(
        "--dry-run",
        action="store_true",
        help="write nothing: print what would be stored, one JSON object a mail as `explain` prints",
    )
    backfill.add_argument(
        "--folder",
        default=None,
        metavar="FOLDER",
        help="the CRM mailbox's folder (default inbox, where the live capture reads and BCC copies land; "
        "a well-known name such as archive, or a folder id, for mail a rule moved)",
    )
    backfill.add_argument("--restart", action="store_true", help="read the range from its start again")
    backfill.add_argument("--page-size", type=int, metavar="N", help="mails a Graph page (default 200)")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    _json_flag(backfill, "a JSON summary at the end instead of text")
    backfill.set_defaults(run=operators.backfill)

    calendar = commands.add_parser("calendar", help="calendar sync: `crmservice calendar status`")
    calendar_commands = calendar.add_subparsers(dest="calendar_command", required=True, metavar="COMMAND")
    calendar_status = calendar_commands.add_parser(
        "status",
        help="who is in calendar sync, who is not and why, last sync per user, the latest conflicts",
        description="Exit 0: users are synced and every NET Genium user matched; 1: some user matched nobody "
        "(listed with the reason) or the users were never refreshed.",
    )
    calendar_status.add_argument("--conflicts", type=int, default=20, metavar="N", help="the latest N conflicts")
    _json_flag(calendar_status)
    calendar_status.set_defaults(run=operators.state)

    check_all = commands.add_parser(
        "check",
        help="can the service run? settings, Graph, NET Genium and storage, one line a check (exit 0 ok, 1 not)",
        description="Reads the app settings from the environment, as the Functions host does, and checks them; "
        "then gets a Graph token, looks up the CRM mailbox and reads its inbox, asks NET Genium for its health "
        "and checks the schema map against it, and reaches Table and Queue storage. Exit 0: all OK; 1: a check "
        "failed (its line says what to fix).",
    )
    _json_flag(check_all, "a JSON list of {check, ok, detail}")
    check_all.set_defaults(run=operators.check)

    subscriptions = commands.add_parser(
        "subscriptions", help="the Graph subscriptions the service owns: list, ensure, delete"
    )
    sub_commands = subscriptions.add_subparsers(dest="sub_command", required=True, metavar="COMMAND")
    listing = sub_commands.add_parser(
        "list",
        help="each subscription in Graph or in storage: id, resource, expiry, whether both agree",
        description="Exit 0: there are subscriptions and Graph and the stored records agree; 1: none, or they "
        "disagree (`ensure` repairs that).",
    )
    ensure = sub_commands.add_parser(
        "ensure",
        help="run the subscription upkeep once: create a missing one, renew one past half its life",
        description="What the upkeep timer does: creates the mail subscription if it is missing (then reads the "
        "mail that arrived meanwhile), renews one past half its life, drops records Graph no longer has.",
    )
    delete = sub_commands.add_parser(
        "delete",
        help="delete subscriptions in Graph and their stored records",
        description="Exit 1 if an id was neither in Graph nor stored. The upkeep timer creates a new one later.",
    )
    delete.add_argument("ids", nargs="*", metavar="ID", help="subscription ids")
    delete.add_argument("--all", action="store_true", help="every subscription the app owns")
    for command in (listing, ensure, delete):
        _json_flag(command)
        command.set_defaults(run=operators.subscriptions)
    return parser


def _json_flag(command: argparse.ArgumentParser, what: str = "one JSON document instead of text") -> None:
    command.add_argument("--json", action="store_true", help=what)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crmservice` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sandbox"]:
        return _sandbox(arguments[1:])
    if arguments[:1] == ["demo"]:
        return _sandbox(arguments[1:], "sandbox.demo")
    args = _parser().parse_args(arguments)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
