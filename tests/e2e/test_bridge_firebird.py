"""The whole service with the NET Genium bridge on a real Firebird 3 server.

One end-to-end capture through the local runner (Graph emulator → webhook → queue → capture →
bridge → Firebird), with a retried write and an attachment, and the same capture in direct mode
(the app on the database itself, no bridge in between); and `crmservice sandbox replay
--netgenium firebird` printing exactly what the SQLite sandbox prints for the same mails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from sandbox.stack import NetGeniumMode, SandboxStack
from tests.e2e.conftest import CONTACTS, CRM, DIRECTORY, USERS
from tests.unit.messages import mail

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", ["http", "direct"])
def test_a_mail_is_captured_into_firebird_once_with_its_attachment(mode: NetGeniumMode) -> None:
    """The same capture over the bridge's HTTP API and in direct mode (NETGENIUM_DATABASE_URL)."""
    with SandboxStack(DIRECTORY, netgenium="firebird", netgenium_mode=mode) as stack:
        assert stack.firebird is not None
        message = mail(
            sender=CONTACTS[0].email,
            to=[USERS[0].email],
            cc=[CRM],
            subject="Firebird Order:3",
            message_id="<fb-1@e2e.example>",
        )
        message["attachments"] = [{"name": "offer.txt", "contentType": "text/plain", "contentBytes": "aGVsbG8="}]
        if mode == "http":
            stack.netgenium_faults(lose_next=1, operations=["insert"])  # the first insert's answer is lost
        stack.reset_counts()
        stack.deliver(message)
        stack.settle(timeout=180)
        # Direct mode never called the record API: the emulator served only what the test asked.
        assert (stack.request_counts()["netgenium"] == 0) == (mode == "direct")
        report = stack.report()
        [activity] = report["activities"]
        assert activity["message_id"] == "<fb-1@e2e.example>" and activity["contacts"] == [CONTACTS[0].id]
        # Read straight from Firebird: one row, in the shared activity table, and its file.
        engine = sa.create_engine(stack.firebird.url("netgenium"), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.text("SELECT id, ng_kind, ng_subject FROM ng_activities WHERE ng_message_id = :m"),
                    {"m": "<fb-1@e2e.example>"},
                ).all()
                files = connection.execute(sa.text("SELECT filename, size FROM ng_bridge_files")).all()
        finally:
            engine.dispose()
        assert [(kind, subject) for _id, kind, subject in rows] == [("email", "Firebird Order:3")]
        assert files == [("offer.txt", 5)]


def _replay(backend: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "crmservice"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    return subprocess.run(
        [
            *command,
            "sandbox",
            "replay",
            "--directory",
            str(ROOT / "examples" / "directory.json"),
            "--messages",
            str(ROOT / "examples" / "messages"),
            "--json",
            "--netgenium",
            backend,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_replay_on_firebird_prints_what_sqlite_prints() -> None:
    on_sqlite, on_firebird = _replay("sqlite"), _replay("firebird")
    assert on_sqlite.returncode == on_firebird.returncode == 0, on_firebird.stderr[-2000:]
    assert on_firebird.stdout == on_sqlite.stdout
    assert '"<CAF1@zakaznik.example>"' in on_firebird.stdout
