"""`crmservice demo`: a day at a small company, on the whole local service.

Starts what `crmservice sandbox replay` starts (Azurite, the Graph and NET Genium emulators, the
local Functions runner with the real function_app.py), seeds NET Genium with the company of a data
file (users, companies, contacts, orders), then plays the file's day: each mail arrives in the CRM
mailbox and travels Graph → webhook → queue → capture → NET Genium, and the demo prints what became
of it and why (the ledger's record, as `crmservice why` shows it); then calendar changes in Outlook
and in NET Genium, synced both ways. A summary table compares every mail with the fate the file
scripts for it. The status page stays open at the printed URL until Ctrl+C (`--once`: exit after
the summary). Mail from before the service's first run is captured by `crmservice backfill`, run
as an administrator runs it. Every run starts from nothing: fresh storage and databases, free ports.

Exit status: 0 every mail and the calendar came out as scripted, 1 not, 2 a bad data file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm_core.domain.directory import DirectoryFile
from crm_core.storage.ledger import LedgerEntry, LedgerState
from sandbox.calendar_scenario import SCENARIO_SETTINGS, Scenario, wait_for_calendar_users
from sandbox.launch import REPO_ROOT
from sandbox.stack import SandboxError, SandboxStack, _records

DEFAULT_DAY = REPO_ROOT / "examples" / "demo-day.json"
EXIT_OK, EXIT_DIFFERENT, EXIT_BAD_INPUT = 0, 1, 2


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Named(_Model):
    id: int
    name: str


class Company(_Model):
    name: str
    crm_address: str
    users: list[dict[str, Any]]
    companies: list[Named] = Field(default_factory=list)
    contacts: list[dict[str, Any]] = Field(default_factory=list)
    orders: list[dict[str, Any]] = Field(default_factory=list)
    excluded: list[str] = Field(default_factory=list)
    order_keywords: list[str] = Field(default_factory=lambda: ["Order"])

    def directory(self) -> DirectoryFile:
        return DirectoryFile(
            crm_address=self.crm_address,
            users=self.users,
            contacts=self.contacts,
            orders=self.orders,
            excluded=self.excluded,
            order_keywords=self.order_keywords,
        )


class Expect(_Model):
    """What the service must make of a mail: stored (`written`) or `skipped`, and why."""

    outcome: Literal["written", "skipped"]
    reason: str  # the start of one of the decision's reasons
    direction: Literal["incoming", "outgoing"] | None = None
    order: int | None = None  # the order number it is linked to (null: none)
    attachments: int | None = None  # files stored with the activity
    duplicate: bool = False  # a second copy of an earlier mail: the ledger drops it


class DemoMail(_Model):
    time: str
    case: str
    message: dict[str, Any]
    expect: Expect


class HistoryMail(_Model):
    """A mail received before the service's first run: `crmservice backfill` captures it."""

    days_ago: int = Field(gt=30)  # older than the first run's cutoff (CRM_INITIAL_SYNC_DAYS, 30)
    case: str
    message: dict[str, Any]
    expect: Expect


class DemoDay(_Model):
    about: str = ""
    company: Company
    mails: list[DemoMail]
    history: list[HistoryMail] = Field(default_factory=list)
    calendar: list[dict[str, Any]] = Field(default_factory=list)


def load_day(path: Path) -> DemoDay:
    day = DemoDay.model_validate_json(path.read_bytes())
    day.company.directory()  # the directory must be valid too
    return day


def mail_texts(day: DemoDay) -> list[str]:
    """Every subject and body the day's mails carry (for checking that no log shows them)."""
    texts: list[str] = []
    messages = [mail.message for mail in day.mails] + [mail.message for mail in day.history]
    for message in messages:
        subject = message.get("subject")
        body = (message.get("body") or {}).get("content")
        texts += [text for text in (subject, body) if isinstance(text, str) and text.strip()]
    return texts


def calendar_texts(day: DemoDay) -> list[str]:
    """Every subject, place and body the day's calendar steps write (private to the users too)."""
    texts: list[str] = []
    for step in day.calendar:
        fields = step.get("fields") or {}
        texts += [str(fields[k]) for k in ("subject", "location", "body") if str(fields.get(k) or "").strip()]
    return texts


def _fill_days(value: Any, today: datetime) -> Any:
    """`{today+N}` in a calendar step becomes the date N days from today (the sync window moves)."""
    if isinstance(value, str):
        while "{today" in value:
            start = value.index("{today")
            end = value.index("}", start)
            offset = value[start + len("{today") : end] or "+0"
            day = (today + timedelta(days=int(offset))).date().isoformat()
            value = value[:start] + day + value[end + 1 :]
        return value
    if isinstance(value, Mapping):
        return {k: _fill_days(v, today) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_days(v, today) for v in value]
    return value


class Demo:
    """Plays a day on a started stack and keeps what it saw."""

    def __init__(self, day: DemoDay, stack: SandboxStack, out: TextIO) -> None:
        self.day = day
        self.stack = stack
        self.out = out
        company = day.company
        self.users = {int(u["id"]): str(u.get("name") or u["email"]) for u in company.users}
        self.companies = {c.id: c.name for c in company.companies}
        self.contacts = {
            int(c["id"]): (str(c.get("name") or c["email"]), c.get("company_id")) for c in company.contacts
        }
        self.orders = {int(o["id"]): int(o["number"]) for o in company.orders}
        self.results: list[dict[str, Any]] = []
        self.calendar: dict[str, Any] = {}

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # ---- set-up ----------------------------------------------------------------------------------

    def seed_companies(self) -> None:
        """The company records beside the contacts (the stack seeds users, contacts and orders)."""
        if not self.day.company.companies:
            return
        table, rows = _records("companies", [c.model_dump() for c in self.day.company.companies])
        answer = self.stack.netgenium_admin("POST", "seed", json={"table": table, "records": rows})
        if answer.status_code != 200:
            raise SandboxError(f"seeding NET Genium {table} failed: {answer.status_code} {answer.text[:300]}")

    # ---- mail --------------------------------------------------------------------------------------

    def _entry(self, message_id: str) -> LedgerEntry | None:
        for entry in self.stack.ledger_entries():
            if entry.message_id == message_id:
                return entry
        return None

    def _activities(self, message_id: str) -> list[dict[str, Any]]:
        return [r for r in self.stack.netgenium_records("ng_activities") if r.get("ng_message_id") == message_id]

    def _wait_for(self, message_id: str, timeout: float = 60.0) -> LedgerEntry | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self._entry(message_id)
            if entry is not None and entry.state is not LedgerState.CLAIMED:
                return entry
            time.sleep(0.1)
        return self._entry(message_id)

    def play_mail(self, number: int, mail: DemoMail) -> None:
        message_id = str(mail.message.get("internetMessageId") or "").strip()
        self.stack.deliver(mail.message)
        if mail.expect.duplicate:
            self.stack.wait_quiet(timeout=60.0, quiet=1.0)  # its capture ran and found the ledger's row
        self._show(number, mail.time, mail.case, message_id, mail.expect)

    def _show(self, number: int, when: str, case: str, message_id: str, expect: Expect) -> None:
        """What became of one mail, from the ledger (what `crmservice why` answers) and NET Genium."""
        entry = self._wait_for(message_id)
        activities = self._activities(message_id)
        got = self._got(entry, activities)
        ok, wrong = self._compare(expect, got)
        self.results.append(
            {
                "number": number,
                "time": when,
                "case": case,
                "message_id": message_id,
                "expected": expect.model_dump(),
                "got": got,
                "ok": ok,
                "wrong": wrong,
            }
        )
        self.say(f"[{when}] {case}")
        self.say(f"        -> {self._fate(got, duplicate=expect.duplicate)}")
        for reason in got["reasons"]:
            self.say(f"           because: {reason}")
        if not ok:
            self.say(f"           NOT AS SCRIPTED: {'; '.join(wrong)}")

    def play_history(self) -> None:
        """Older mail, in the mailbox before the service's first run: the live path reads 30 days
        back and leaves it; `crmservice backfill` (run as an administrator runs it) captures it."""
        if not self.day.history:
            return
        import os
        import subprocess

        now = datetime.now(UTC)
        oldest = max(mail.days_ago for mail in self.day.history)
        self.say()
        self.say(
            f"Older mail: {len(self.day.history)} mails received {min(m.days_ago for m in self.day.history)} to "
            f"{oldest} days ago were in the mailbox before the service's first run, which reads 30 days back."
        )
        self.stack.graph_faults(dropNotificationsRate=1.0)  # already there: no change notification
        try:
            for mail in self.day.history:
                received = (now - timedelta(days=mail.days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
                self.stack.deliver({**mail.message, "receivedDateTime": received})
            self.stack.wait_quiet(timeout=60.0, quiet=1.0)
        finally:
            self.stack.graph_admin("DELETE", "faults").raise_for_status()
        since = (now - timedelta(days=oldest + 1)).date().isoformat()
        self.say(f"  $ crmservice backfill --since {since}")
        script = Path(sys.executable).parent / "crmservice"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
        done = subprocess.run(  # noqa: S603 - our own command, no shell
            [*command, "backfill", "--since", since, "--json", "--no-progress"],
            env={
                **{k: v for k, v in os.environ.items() if k != "CRM_DEMO_STDOUT_TO_STDERR"},
                **self.stack.app_settings(self.stack.runners[0].port),
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if done.returncode != 0:
            raise SandboxError(f"crmservice backfill exited with {done.returncode}: {done.stderr[-1500:]}")
        summary = json.loads(done.stdout.splitlines()[-1])
        counts = ", ".join(f"{name} {count}" for name, count in summary["outcomes"].items())
        self.say(f"  read {summary['mails']} mails from Graph, oldest first: {counts}")
        for mail in self.day.history:
            message_id = str(mail.message.get("internetMessageId") or "").strip()
            self._show(len(self.results) + 1, f"-{mail.days_ago}d", mail.case, message_id, mail.expect)

    def _got(self, entry: LedgerEntry | None, activities: list[dict[str, Any]]) -> dict[str, Any]:
        if entry is None:
            return {"outcome": "missing", "reasons": [], "activities": len(activities)}
        files = activities[0].get("ng_attachments") if activities else None
        return {
            "outcome": entry.state.value,
            "activity_id": entry.activity_id,
            "direction": entry.direction,
            "contacts": list(entry.contact_ids),
            "users": list(entry.user_ids),
            "order": self.orders.get(entry.order_id) if entry.order_id is not None else None,
            "reasons": list(entry.reasons),
            "activities": len(activities),
            "attachments": len(files) if isinstance(files, list) else 0,
        }

    @staticmethod
    def _compare(expect: Expect, got: dict[str, Any]) -> tuple[bool, list[str]]:
        wrong = []
        if got["outcome"] != expect.outcome:
            wrong.append(f"expected {expect.outcome}, got {got['outcome']}")
        if not any(str(reason).startswith(expect.reason) for reason in got["reasons"]):
            wrong.append(f"expected a reason starting {expect.reason!r}")
        if expect.outcome == "written":
            if got.get("activities") != 1:
                wrong.append(f"expected one activity in NET Genium, found {got.get('activities')}")
            if expect.direction is not None and got.get("direction") != expect.direction:
                wrong.append(f"expected {expect.direction}, got {got.get('direction')}")
            if "order" in expect.model_fields_set and got.get("order") != expect.order:
                wrong.append(f"expected order {expect.order}, got {got.get('order')}")
            if expect.attachments is not None and got.get("attachments") != expect.attachments:
                wrong.append(f"expected {expect.attachments} attachments, got {got.get('attachments')}")
        elif got.get("activities"):
            wrong.append("a skipped mail has an activity")
        return not wrong, wrong

    def _fate(self, got: dict[str, Any], *, duplicate: bool = False) -> str:
        if got["outcome"] == "written" and duplicate:
            return (
                f"already stored as activity {got['activity_id']}: the ledger dropped this copy "
                f"({got.get('activities')} activity in NET Genium)"
            )
        if got["outcome"] == "written":
            people = [self._contact(c) for c in got["contacts"]] + [self.users.get(u, str(u)) for u in got["users"]]
            text = f"stored as activity {got['activity_id']}: {got['direction']}, {', '.join(people)}"
            if got.get("order") is not None:
                text += f", order {got['order']}"
            if got.get("attachments"):
                text += f", {got['attachments']} file{'s' if got['attachments'] != 1 else ''}"
            if got.get("activities", 0) == 1:
                text += " (one activity)"
            return text
        if got["outcome"] == "skipped":
            return "not stored"
        return f"no outcome yet ({got['outcome']})"

    def _contact(self, contact_id: int) -> str:
        name, company = self.contacts.get(contact_id, (str(contact_id), None))
        return f"{name} ({self.companies[company]})" if company in self.companies else name

    # ---- calendar ----------------------------------------------------------------------------------

    def play_calendar(self) -> None:
        if not self.day.calendar:
            return
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        steps = _fill_days(self.day.calendar, today)
        scenario = Scenario(self.stack)
        self.say()
        self.say("Calendar: changes on both sides, synced both ways")
        for step in steps:
            if step.get("op") == "sync":
                self.say("  ... sync")
                scenario.sync()
                continue
            if step.get("op") == "pause":  # the demo's own step: time passes between two edits
                time.sleep(float(step.get("seconds", 1)))
                continue
            if step.get("note"):
                self.say(f"  {step['note']}")
            scenario.run([{k: v for k, v in step.items() if k != "note"}])
        scenario.sync()
        sides = scenario.sides()
        agree = sorted((i["user"], i["start"], i["end"]) for i in sides["outlook"]) == sorted(
            (i["user"], i["start"], i["end"]) for i in sides["netgenium"]
        )
        self.calendar = {**sides, "conflicts": scenario.conflicts(), "agree": agree}
        self.say("  Outlook and NET Genium now hold:")
        for side in ("outlook", "netgenium"):
            for item in sides[side]:
                self.say(
                    f"    {side:<10} {item['user']:<30} {item['start']} .. {item['end'][11:16]}  {item['subject']}"
                )
        for conflict in self.calendar["conflicts"]:
            self.say(
                f"  conflict: the {conflict['winner']} edit won over the {conflict['loser']} edit "
                f"({', '.join(conflict['fields'])}); `crmservice calendar status` lists it"
            )
        self.say(f"  both sides agree: {'yes' if agree else 'NO'}")

    # ---- summary -----------------------------------------------------------------------------------

    def summary(self) -> list[str]:
        rows = [("#", "time", "case", "expected", "got", "ok")]
        for r in self.results:
            expect, got = r["expected"], r["got"]
            rows.append(
                (
                    str(r["number"]),
                    r["time"],
                    r["case"][:58] + ("..." if len(r["case"]) > 58 else ""),
                    _short(expect["outcome"], expect.get("order"), expect["reason"]),
                    _short(got["outcome"], got.get("order"), _matching(got["reasons"], expect["reason"]))[:48],
                    "yes" if r["ok"] else "NO",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        stored = [r for r in self.results if r["got"]["outcome"] == "written" and not r["expected"]["duplicate"]]
        skipped = [r for r in self.results if r["got"]["outcome"] == "skipped"]
        directions = {d: sum(1 for r in stored if r["got"].get("direction") == d) for d in ("incoming", "outgoing")}
        lines.append("")
        lines.append(
            f"{len(self.results)} mails: {len(stored)} stored ({directions['incoming']} incoming, "
            f"{directions['outgoing']} outgoing), {len(skipped)} not stored, "
            f"{sum(1 for r in self.results if r['expected']['duplicate'])} repeated copy dropped by the ledger; "
            f"{sum(1 for r in self.results if r['ok'])} of {len(self.results)} as scripted"
        )
        return lines

    def all_as_scripted(self) -> bool:
        calendar_ok = self.calendar.get("agree", True) if self.day.calendar else True
        return all(r["ok"] for r in self.results) and bool(calendar_ok)

    def document(self, status_url: str) -> dict[str, Any]:
        return {
            "mails": self.results,
            "calendar": self.calendar,
            "status_url": status_url,
            "as_scripted": self.all_as_scripted(),
        }


def _short(outcome: str, order: Any, reason: str) -> str:
    text = {"written": "stored", "skipped": "skipped"}.get(outcome, outcome)
    if order is not None:
        text += f", order {order}"
    return f"{text}: {reason}" if outcome == "skipped" else text


def _matching(reasons: Sequence[str], wanted: str) -> str:
    for reason in reasons:
        if reason.startswith(wanted):
            return reason
    return reasons[0] if reasons else ""


class _Stop(Exception):
    """SIGTERM: stop as Ctrl+C does (so that every process the demo started is stopped)."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Stop


_STDOUT_TO_LOG = """\
# Written by `crmservice demo --log-file`: every Python process of the demo's stack writes its
# standard output where its log lines go (stderr), so that the log file holds both, and each log
# line carries its record's extra fields.
import os
import sys

if os.environ.get("CRM_DEMO_STDOUT_TO_STDERR") == "1":
    import logging

    sys.stdout.flush()
    os.dup2(2, 1)
    print(f"crm-demo: the standard output of process {os.getpid()} goes to this log", flush=True)

    # Each log line also shows the record's extra fields: what Application Insights would receive
    # as custom dimensions, so that a look for mail content in the log covers them too.
    _standard = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
    _format = logging.Formatter.format

    def _with_extras(self, record):
        text = _format(self, record)
        extras = {k: v for k, v in vars(record).items() if k not in _standard}
        return f"{text} extra={extras!r}" if extras else text

    logging.Formatter.format = _with_extras
"""


@contextlib.contextmanager
def _stdout_into_logs(enabled: bool) -> Iterator[None]:
    """With `enabled`, the processes the stack starts (the runner, its workers) send their standard
    output to their stderr log too: a `sitecustomize` module on their PYTHONPATH does it at start."""
    if not enabled:
        yield
        return
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "CRM_DEMO_STDOUT_TO_STDERR")}
    with tempfile.TemporaryDirectory(prefix="crm-demo-") as folder:
        (Path(folder) / "sitecustomize.py").write_text(_STDOUT_TO_LOG, encoding="utf-8")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, saved["PYTHONPATH"]]))
        os.environ["CRM_DEMO_STDOUT_TO_STDERR"] = "1"
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def run_demo(
    day: DemoDay,
    *,
    once: bool,
    as_json: bool,
    seed: int = 0,
    ideal: bool = False,
    log_file: Path | None = None,
    wait: Callable[[], None] | None = None,
) -> int:
    out = sys.stderr if as_json else sys.stdout
    directory = day.company.directory()
    previous = signal.signal(signal.SIGTERM, _on_term)
    started = time.monotonic()
    try:
        print(
            f"Starting the local service for {day.company.name} (Azurite, Graph and NET Genium emulators, "
            "the Functions runner) ...",
            file=out,
            flush=True,
        )
        with (
            _stdout_into_logs(log_file is not None),
            SandboxStack(
                directory, seed=seed, graph_profile="ideal" if ideal else "real", app_settings=SCENARIO_SETTINGS
            ) as stack,
        ):
            try:
                demo = Demo(day, stack, out)
                demo.seed_companies()
                wait_for_calendar_users(stack, len(directory.users))
                company = day.company
                demo.say(
                    f"NET Genium holds {len(company.users)} users, {len(company.companies)} companies, "
                    f"{len(company.contacts)} contacts and {len(company.orders)} orders; the service subscribed "
                    f"to {company.crm_address} and to {len(company.users)} calendars "
                    f"({time.monotonic() - started:.0f} s)."
                )
                demo.say()
                demo.say(f"The day's mail to {company.crm_address}:")
                for number, mail in enumerate(day.mails, 1):
                    demo.play_mail(number, mail)
                demo.play_history()
                demo.play_calendar()
                demo.say()
                for line in demo.summary():
                    demo.say(line)
                status_url = f"{stack.runners[0].base_url}/api/status"
                if as_json:
                    print(json.dumps(demo.document(status_url), ensure_ascii=False), flush=True)
                demo.say()
                demo.say(f"Status page: {status_url}")
                if not once:
                    demo.say("Ask the running service yourself, in another terminal:")
                    demo.say(
                        f"  export AzureWebJobsStorage='{stack.azurite.connection_string if stack.azurite else ''}'"
                    )
                    demo.say(f"  .venv/bin/crmservice why '{day.mails[0].message.get('internetMessageId')}'")
                    demo.say("  .venv/bin/crmservice correspondents")
                    demo.say("The service keeps running; Ctrl+C stops it and everything the demo started.")
                    (wait or _forever)()
            finally:
                if log_file is not None:
                    log_file.write_text("".join(r.log_tail(limit=1 << 30) for r in stack.runners), encoding="utf-8")
    except (KeyboardInterrupt, _Stop):
        print("\nStopped; everything the demo started is gone.", file=out, flush=True)
        return EXIT_OK
    except SandboxError as exc:
        print(f"crmservice demo: {exc}", file=sys.stderr)
        return EXIT_DIFFERENT
    finally:
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK if demo.all_as_scripted() else EXIT_DIFFERENT


def _forever() -> None:
    while True:
        time.sleep(3600)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="crmservice demo",
        description="A scripted day of mail and calendar changes at a small company, on the whole local service "
        "(Azurite, both emulators, the Functions runner): what became of each mail and why, a summary, and the "
        "status page until Ctrl+C.",
    )
    parser.add_argument("--once", action="store_true", help="exit after the summary instead of waiting for Ctrl+C")
    parser.add_argument("--json", action="store_true", help="print the outcome as one JSON document (text to stderr)")
    parser.add_argument("--day", type=Path, default=DEFAULT_DAY, metavar="DAY.json", help="the scripted day")
    parser.add_argument("--seed", type=int, default=0, help="seed for everything random in the Graph emulator")
    parser.add_argument("--ideal", action="store_true", help="Graph's happy path instead of its documented worst case")
    parser.add_argument(
        "--log-file",
        type=Path,
        help="write what the Functions runner and its workers wrote (stderr and stdout) to this file at the end",
    )
    args = parser.parse_args(argv)
    try:
        day = load_day(args.day)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"crmservice demo: {args.day}: not a demo day ({str(exc)[:500]})", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_demo(day, once=args.once, as_json=args.json, seed=args.seed, ideal=args.ideal, log_file=args.log_file)


if __name__ == "__main__":
    sys.exit(main())
