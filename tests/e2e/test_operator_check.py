"""`crmservice check`, `subscriptions`, and the text and JSON outputs of why / correspondents /
poison, run as an administrator runs them: the console script with the app settings of the
sandbox's runner in its environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sandbox.stack import SandboxStack
from tests.e2e.conftest import CONTACTS, CRM, USERS
from tests.unit.messages import mail

ROOT = Path(__file__).resolve().parents[2]


def app_settings(stack: SandboxStack) -> dict[str, str]:
    return stack.app_settings(stack.runners[0].port)


def run(stack: SandboxStack, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    """The console script with the runner's own app settings (and `overrides`) in its environment."""
    script = Path(sys.executable).parent / "crmservice"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    env = {**os.environ, **app_settings(stack), **overrides}
    return subprocess.run([*command, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False)


def secrets_of(settings: dict[str, str]) -> list[str]:
    values = [settings["NETGENIUM_API_KEY"], settings["GRAPH_STATIC_TOKEN"]]
    values += [p.split("=", 1)[1] for p in settings["AzureWebJobsStorage"].split(";") if p.startswith("AccountKey=")]
    for name in ("CRM_NOTIFICATION_URL", "CRM_LIFECYCLE_URL"):
        values += [code for codes in parse_qs(urlsplit(settings[name]).query).values() for code in codes]
    return values


def assert_no_secret(stack: SandboxStack, result: subprocess.CompletedProcess[str], *extra: str) -> None:
    for secret in [*secrets_of(app_settings(stack)), *extra]:
        assert secret not in result.stdout and secret not in result.stderr


def test_check_passes_against_the_sandbox(stack: SandboxStack) -> None:
    result = run(stack, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 8 and all(line.startswith("OK") for line in lines), result.stdout
    assert_no_secret(stack, result)

    as_json = run(stack, "check", "--json")
    assert as_json.returncode == 0, as_json.stderr
    checks = json.loads(as_json.stdout)
    assert [c["check"] for c in checks] == [
        "settings",
        "graph token",
        "graph mailbox",
        "graph inbox",
        "netgenium health",
        "netgenium schema map",
        "storage tables",
        "storage queues",
    ]
    assert all(c["ok"] for c in checks) and all(set(c) == {"check", "ok", "detail"} for c in checks)


def test_check_names_a_wrong_netgenium_key_without_printing_it(stack: SandboxStack) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    result = run(stack, "check", "--json", NETGENIUM_API_KEY=wrong)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [c for c in json.loads(result.stdout) if not c["ok"]]
    assert [c["check"] for c in failed] == ["netgenium schema map"]
    assert "NETGENIUM_API_KEY" in failed[0]["detail"]
    assert_no_secret(stack, result, wrong)

    text = run(stack, "check", NETGENIUM_API_KEY=wrong)
    assert text.returncode == 1
    [line] = [line for line in text.stdout.splitlines() if line.startswith("FAIL")]
    assert "netgenium schema map" in line
    assert_no_secret(stack, text, wrong)


def test_check_names_a_wrong_setting(stack: SandboxStack) -> None:
    result = run(stack, "check", "--json", CRM_MAILBOX="not-an-address")
    assert result.returncode == 1
    [settings] = json.loads(result.stdout)
    assert (settings["check"], settings["ok"]) == ("settings", False)
    assert "CRM_MAILBOX" in settings["detail"]


def test_subscriptions_list_delete_ensure(stack: SandboxStack) -> None:
    listed = run(stack, "subscriptions", "list", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    # The mail subscription; the users' calendar subscriptions are listed beside it.
    [sub] = [s for s in json.loads(listed.stdout) if "/messages" in s["resource"]]
    assert sub["in_graph"] and sub["stored"] and sub["agree"]
    assert sub["resource"] == f"users/{CRM}/mailFolders('inbox')/messages" or CRM in sub["resource"]
    assert sub["id"] in run(stack, "subscriptions", "list").stdout

    assert run(stack, "subscriptions", "delete").returncode == 2
    assert run(stack, "subscriptions", "delete", sub["id"], "--all").returncode == 2
    unknown = run(stack, "subscriptions", "delete", "no-such-subscription", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout) == [
        {"id": "no-such-subscription", "deleted_in_graph": False, "deleted_record": False}
    ]

    deleted = run(stack, "subscriptions", "delete", "--all", "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert {"id": sub["id"], "deleted_in_graph": True, "deleted_record": True} in json.loads(deleted.stdout)
    assert stack.graph_subscriptions() == []
    empty = run(stack, "subscriptions", "list")
    assert empty.returncode == 1 and "ensure" in empty.stdout

    ensured = run(stack, "subscriptions", "ensure", "--json")
    assert ensured.returncode == 0, ensured.stdout + ensured.stderr
    [created] = json.loads(ensured.stdout)["created"]
    again = run(stack, "subscriptions", "list", "--json")
    assert again.returncode == 0, again.stdout
    assert [s["id"] for s in json.loads(again.stdout)] == [created]
    assert_no_secret(stack, ensured)
    # The service captures through the new subscription.
    message_id = f"<after-ensure-{uuid.uuid4().hex}@e2e.example>"
    stack.deliver(mail(sender=CONTACTS[1].email, to=[USERS[0].email], cc=[CRM], message_id=message_id))
    stack.settle()
    why = run(stack, "why", message_id)
    assert why.returncode == 0, why.stderr
    assert why.stdout.startswith(f"{message_id}: written")


def test_why_correspondents_poison_text_and_json(stack: SandboxStack) -> None:
    stranger = f"<stranger-{uuid.uuid4().hex}@e2e.example>"
    stack.deliver(mail(sender="Lead@Unknown.example", to=[USERS[2].email], cc=[CRM], message_id=stranger))
    stack.settle()

    text = run(stack, "why", stranger)
    assert text.returncode == 0
    assert text.stdout.splitlines()[0] == f"{stranger}: skipped"
    assert "    - sender not in address book" in text.stdout.splitlines()
    assert json.loads(run(stack, "why", stranger, "--json").stdout)["state"] == "skipped"
    never = run(stack, "why", "<never@seen.example>", "--json")
    assert (never.returncode, never.stdout) == (1, "")
    assert "never seen" in never.stderr

    top = run(stack, "correspondents", "--top", "1", "--json")
    assert top.returncode == 0
    [row] = json.loads(top.stdout)
    assert json.loads(run(stack, "correspondents", "--limit", "1", "--json").stdout) == [row]
    assert "lead@unknown.example" in run(stack, "correspondents").stdout
    assert run(stack, "correspondents", "--top", "0").returncode == 2
    assert run(stack, "correspondents", "--top", "many").returncode == 2

    poison = run(stack, "poison", "list", "--json")
    assert (poison.returncode, json.loads(poison.stdout)) == (0, [])
    assert "is empty" in run(stack, "poison", "list").stdout
