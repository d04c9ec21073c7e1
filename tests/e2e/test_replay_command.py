"""`crmservice sandbox replay` as an administrator runs it, from the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _replay(*arguments: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "crmservice"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    return subprocess.run(
        [*command, "sandbox", "replay", "--directory", str(ROOT / "examples" / "directory.json"), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_replay_prints_the_outcome_of_each_mail_and_names_broken_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    (tmp_path / "notes.txt").write_text("not a mail")
    result = _replay("--messages", str(ROOT / "examples" / "messages"), str(tmp_path), "--json", "--run-facts")
    assert result.returncode == 2, result.stderr
    report = json.loads(result.stdout)
    [activity] = report["activities"]
    assert activity == {
        "message_id": "<CAF1@zakaznik.example>",
        "direction": "incoming",
        "contacts": [101],
        "users": [1],
        "order_id": 40,
    }
    assert isinstance(report["run"]["activity_ids"]["<CAF1@zakaznik.example>"], int)
    assert report["skipped"] == [
        {"message_id": "<news-77@mailer.example>", "reasons": ["automated: Precedence is bulk"]},
        {"message_id": "<q-9@prospect.example>", "reasons": ["sender not in address book"]},
    ]
    assert report["run"]["requests"]["graph"] >= 2 and report["run"]["requests"]["netgenium"] >= 4
    assert "broken.json: skipped" in result.stderr
    assert "notes.txt: skipped (not .json or .eml)" in result.stderr


def test_replay_prints_the_same_for_every_seed(tmp_path: Path) -> None:
    """Graph's order is the seed's; the decisions must not be. Replies come before the mail naming
    their order in half of the conversations, and the real profile shuffles the rest."""
    messages = tmp_path / "mails.json"
    mails = []
    for n in range(12):
        conversation = f"conv-seed-{n}"
        original = {
            "internetMessageId": f"<o{n}@zakaznik.example>", "conversationId": conversation,
            "subject": "Quote Order:4", "from": {"emailAddress": {"address": "jan.novak@zakaznik.example"}},
            "toRecipients": [{"emailAddress": {"address": "jana.svobodova@firma.example"}}],
            "ccRecipients": [{"emailAddress": {"address": "crm@firma.example"}}],
            "body": {"contentType": "text", "content": "hello"},
            "receivedDateTime": f"2026-11-30T10:{n:02d}:00Z",
        }
        reply = {
            **original, "internetMessageId": f"<r{n}@zakaznik.example>", "subject": "Re: Quote",
            "internetMessageHeaders": [{"name": "In-Reply-To", "value": f"<o{n}@zakaznik.example>"}],
            "receivedDateTime": f"2026-11-30T11:{n:02d}:00Z",
        }
        mails += [reply, original] if n % 2 else [original, reply]
    messages.write_text(json.dumps(mails))
    outputs = [_replay("--messages", str(messages), "--json", "--seed", str(seed)) for seed in (1, 2, 3)]
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    assert outputs[0].stdout == outputs[1].stdout == outputs[2].stdout
    report = json.loads(outputs[0].stdout)
    assert len(report["activities"]) == 24
    assert all(a["order_id"] == 40 for a in report["activities"])  # every reply linked, whatever the order
