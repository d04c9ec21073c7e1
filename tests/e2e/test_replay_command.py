"""`crmservice sandbox replay` as an administrator runs it, from the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_replay_prints_the_outcome_of_each_mail_and_names_broken_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    (tmp_path / "notes.txt").write_text("not a mail")
    script = Path(sys.executable).parent / "crmservice"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    result = subprocess.run(
        [
            *command,
            "sandbox",
            "replay",
            "--directory",
            str(ROOT / "examples" / "directory.json"),
            "--messages",
            str(ROOT / "examples" / "messages"),
            str(tmp_path),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    report = json.loads(result.stdout)
    assert report["activities"] == [
        {
            "message_id": "<CAF1@zakaznik.example>",
            "direction": "incoming",
            "contacts": [101],
            "users": [1],
            "order_id": 40,
            "activity_id": report["activities"][0]["activity_id"],
        }
    ]
    assert isinstance(report["activities"][0]["activity_id"], int)
    assert report["skipped"] == [
        {"message_id": "<news-77@mailer.example>", "reasons": ["automated: Precedence is bulk"]},
        {"message_id": "<q-9@prospect.example>", "reasons": ["sender not in address book"]},
    ]
    assert report["requests"]["graph"] >= 2 and report["requests"]["netgenium"] >= 4
    assert "broken.json: skipped" in result.stderr
    assert "notes.txt: skipped (not .json or .eml)" in result.stderr
