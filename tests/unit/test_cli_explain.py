"""`crmservice explain`: the administrator's "why was this mail (not) stored?"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core.cli import main
from tests.unit.messages import CRM, JANA, NOVAK, STRANGER, mail

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["message_id", "capture", "direction", "contacts", "users", "order_number", "order_id", "reasons"]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "directory.json"
    path.write_text(
        json.dumps(
            {
                "crm_address": CRM,
                "users": [{"id": 1, "email": JANA, "name": "Jana"}],
                "contacts": [{"id": 101, "email": NOVAK, "company_id": 11}],
                "orders": [{"id": 40, "number": 4}],
                "excluded": ["@newsletter.example"],
                "order_keywords": ["Order"],
            }
        )
    )
    return path


def write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_one_object_a_line_in_input_order(tmp_path: Path, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write(tmp_path, "a.json", mail(message_id="<a@x>", subject="Order:0004"))
    second = write(tmp_path, "b.json", mail(message_id="<b@x>", sender=STRANGER))
    third = write(tmp_path, "c.json", mail(message_id="<c@x>", sender=JANA, to=[NOVAK], subject="Order:9"))
    assert main(["explain", "--directory", str(directory), str(first), str(second), str(third)]) == 0
    lines = capsys.readouterr().out.splitlines()
    objects = [json.loads(line) for line in lines]
    assert [list(o) for o in objects] == [KEYS] * 3
    assert objects[0] == {
        "message_id": "<a@x>",
        "capture": True,
        "direction": "incoming",
        "contacts": [101],
        "users": [1],
        "order_number": 4,
        "order_id": 40,
        "reasons": ["incoming: the sender is a contact and a recipient is a user", "order 4 named in the subject"],
    }
    assert objects[1]["capture"] is False
    assert objects[1]["direction"] is None
    assert objects[1]["reasons"] == ["sender not in address book"]
    assert (objects[2]["direction"], objects[2]["order_number"], objects[2]["order_id"]) == ("outgoing", 9, None)
    assert "order 9 not found" in objects[2]["reasons"]


def test_broken_files_are_named_and_the_rest_decided(
    tmp_path: Path, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.json", mail(message_id="<g@x>"))
    broken = write(tmp_path, "broken.json", '{"subject": ')
    not_message = write(tmp_path, "list.json", [1, 2])
    not_object = write(tmp_path, "number.json", "42")
    missing = tmp_path / "missing.json"
    args = ["explain", "--directory", str(directory), str(broken), str(good), str(not_message), str(not_object)]
    assert main([*args, str(missing)]) == 2
    captured = capsys.readouterr()
    assert [json.loads(line)["message_id"] for line in captured.out.splitlines()] == ["<g@x>"]
    errors = captured.err.splitlines()
    assert len(errors) == 4
    assert "broken.json: not valid JSON" in errors[0]
    assert "list.json[0]: not a message" in errors[1]
    assert "number.json: not a message" in errors[2]
    assert "missing.json: cannot be read" in errors[3]


def test_wrongly_typed_message_field_is_not_a_message(
    tmp_path: Path, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.json", {"subject": "x", "toRecipients": "jana@firma.example"})
    assert main(["explain", "--directory", str(directory), str(bad)]) == 2
    assert "bad.json: not a message (toRecipients" in capsys.readouterr().err


def test_graph_page_of_messages(tmp_path: Path, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = write(tmp_path, "page.json", {"value": [mail(message_id="<1@x>"), mail(message_id="<2@x>")]})
    assert main(["explain", "--directory", str(directory), str(page)]) == 0
    assert [json.loads(line)["message_id"] for line in capsys.readouterr().out.splitlines()] == ["<1@x>", "<2@x>"]


def test_bad_directory_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path, "dir.json", {"crm_address": CRM, "users": [{"id": "one", "email": JANA}]})
    message = write(tmp_path, "m.json", mail())
    assert main(["explain", "--directory", str(directory), str(message)]) == 2
    err = capsys.readouterr().err
    assert "dir.json: not a directory file (users.0.id" in err


def test_pretty_output_is_still_json(tmp_path: Path, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = write(tmp_path, "m.json", mail(message_id="<p@x>", subject="Order:4"))
    assert main(["explain", "--pretty", "--directory", str(directory), str(message), str(message)]) == 0
    out = capsys.readouterr().out
    decoder = json.JSONDecoder()
    first, end = decoder.raw_decode(out)
    assert list(first) == KEYS
    assert '  "contacts": [101],\n' in out
    assert '    "order 4 named in the subject"\n' in out
    second, _ = decoder.raw_decode(out[end:].lstrip())
    assert second == first


def test_console_script_runs(tmp_path: Path, directory: Path) -> None:
    message = write(tmp_path, "m.json", mail(message_id="<s@x>"))
    script = Path(sys.executable).parent / "crmservice"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    result = subprocess.run(
        [*command, "explain", "--directory", str(directory), str(message)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["capture"] is True
