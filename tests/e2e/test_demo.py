"""`crmservice demo` as a new user runs it: the scripted day comes out as its data file says, the
status page answers while it runs, Ctrl+C stops everything, a second run starts cleanly, and the
log of the whole run (the Functions runner: stderr, stdout, and each record's extra fields) shows
no subject or body of the day's mail, nor what its calendar entries say."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sandbox.demo import DEFAULT_DAY, DemoDay, calendar_texts, load_day, mail_texts

ROOT = Path(__file__).resolve().parents[2]


SEED = os.environ.get("CRM_TEST_SEED", "1")  # the Graph emulator's seed, as every e2e stack's


def demo_command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "crmservice"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    seed = [] if "--help" in args else ["--seed", SEED]
    return [*base, "demo", *seed, *args]


@pytest.fixture(scope="module")
def day() -> DemoDay:
    return load_day(DEFAULT_DAY)


@pytest.fixture(scope="module")
def once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.CompletedProcess[str], str]]:
    log_file = tmp_path_factory.mktemp("demo") / "runner.log"
    result = subprocess.run(
        demo_command("--once", "--json", "--log-file", str(log_file)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    yield result, log_file.read_text(encoding="utf-8") if log_file.exists() else ""


def test_every_mail_comes_out_as_the_day_scripts_it(
    once: tuple[subprocess.CompletedProcess[str], str], day: DemoDay
) -> None:
    result, _ = once
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert document["as_scripted"] is True
    mails = document["mails"]
    scripts = [*day.mails, *day.history]  # the day's mail, then the older mail `crmservice backfill` captured
    assert len(mails) == len(scripts) and day.history
    for scripted, shown in zip(scripts, mails, strict=True):
        expect, got = scripted.expect, shown["got"]
        where = scripted.case
        assert shown["message_id"] == scripted.message["internetMessageId"], where
        assert got["outcome"] == expect.outcome, where
        assert any(reason.startswith(expect.reason) for reason in got["reasons"]), (where, got["reasons"])
        if expect.outcome == "written":
            assert got["activities"] == 1, where  # one activity, also for the repeated copy
            assert got["direction"] == expect.direction, where
            assert got["order"] == expect.order, where
            if expect.attachments is not None:
                assert got["attachments"] == expect.attachments, where
        else:
            assert got["activities"] == 0 and got.get("activity_id") is None, where
    cases = {m.expect.outcome for m in day.mails}
    assert cases == {"written", "skipped"}
    assert {m.expect.direction for m in day.mails if m.expect.outcome == "written"} == {"incoming", "outgoing"}
    reasons = {m.expect.reason.split(":")[0].split(" ")[0] for m in day.mails if m.expect.outcome == "skipped"}
    assert {"internal", "sender", "automated", "excluded", "not"} <= reasons  # every kind of skip in the day

    calendar = document["calendar"]
    assert calendar["agree"] is True and len(calendar["outlook"]) == len(calendar["netgenium"]) == 3
    assert {i["subject"] for i in calendar["netgenium"]} >= {"Telefonát Odběratel - servis kompresorů"}
    # Both sides changed the visit between two syncs: the later edit (Outlook's) won and is logged.
    assert [(c["winner"], c["loser"]) for c in calendar["conflicts"]] == [("outlook", "netgenium")]
    [visit] = [i for i in calendar["netgenium"] if i["subject"] == "Návštěva Zákazník a.s."]
    assert visit["start"].endswith("T12:00:00Z")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/status", document["status_url"])


def test_the_text_shows_each_mail_its_fate_and_a_summary(
    once: tuple[subprocess.CompletedProcess[str], str], day: DemoDay
) -> None:
    result, _ = once
    text = result.stderr  # with --json, the text goes to stderr
    for mail in day.mails:
        assert f"[{mail.time}] {mail.case}" in text
    for old in day.history:
        assert f"[-{old.days_ago}d] {old.case}" in text
    total = len(day.mails) + len(day.history)
    assert f"{total} of {total} as scripted" in text
    assert "$ crmservice backfill --since " in text
    assert "both sides agree: yes" in text
    assert "NOT AS SCRIPTED" not in text


def _fragments(text: str) -> list[str]:
    """A text and each line of it (tags dropped), long enough to be the day's own words."""
    plain = html.unescape(re.sub(r"<[^>]+>", "\n", text))
    parts = [text, *(line.strip() for line in plain.splitlines())]
    return [part for part in parts if len(part) >= 12]


def test_no_subject_or_body_of_the_day_is_in_the_log(
    once: tuple[subprocess.CompletedProcess[str], str], day: DemoDay
) -> None:
    result, log = once
    assert result.returncode == 0
    # The log is the whole run's: the host started, every capture ran and was logged, and the
    # standard output of the runner (the functions run in it) and of any process it started went there too.
    assert "Host started" in log and log.count("Executed 'Functions.capture'") >= 1
    assert re.search(r"the standard output of process \d+ goes to this log", log)
    # The records' extra fields (Application Insights' custom dimensions) are in the log as well.
    assert "'outcome': 'written'" in log and "'outcome': 'skipped'" in log
    assert "capture" in log and "calendar" in log
    texts = mail_texts(day)
    assert len(texts) == 2 * (len(day.mails) + len(day.history))
    leaks = sorted({fragment for text in texts for fragment in _fragments(text) if fragment in log})
    assert leaks == []
    # Nor what the users wrote into their calendars (subjects, places).
    calendar = calendar_texts(day)
    assert len(calendar) >= 5
    assert sorted({text for text in calendar if text in log}) == []


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def test_a_second_run_starts_cleanly_serves_the_status_page_and_stops_on_ctrl_c(
    once: tuple[subprocess.CompletedProcess[str], str], day: DemoDay
) -> None:
    first_url = json.loads(once[0].stdout)["status_url"]
    assert not _port_open(first_url)  # the first run stopped its runner

    # Its own process group, as a terminal's foreground job: Ctrl+C reaches every process in it.
    process = subprocess.Popen(
        demo_command(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    lines: list[str] = []
    status_url = ""
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Status page: "):
                status_url = line.split(": ", 1)[1].strip()
            if "Ctrl+C stops it" in line:
                break
        assert status_url, "".join(lines)[-3000:]
        total = len(day.mails) + len(day.history)
        assert any(f"{total} of {total} as scripted" in line for line in lines), "".join(lines)[-3000:]
        answer = httpx.get(status_url, timeout=30)
        assert answer.status_code == 200, answer.text[:500]
        assert "text/html" in answer.headers.get("content-type", "")
        page: Any = answer.text
        assert "<html" in page.lower()
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl+C
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-3000:]
    assert "Stopped" in out
    assert not _port_open(status_url)


def test_demo_help_and_a_bad_day_file(tmp_path: Path) -> None:
    shown = subprocess.run(demo_command("--help"), cwd=ROOT, capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: crmservice demo")
    broken = tmp_path / "day.json"
    broken.write_text('{"company": {}}')
    bad = subprocess.run(
        demo_command("--once", "--day", str(broken)), cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "not a demo day" in bad.stderr
