"""Telemetry through the whole stack: the sandbox's app with APPLICATIONINSIGHTS_CONNECTION_STRING
pointed at a local collector; what the Azure Monitor exporter sends has the capture spans and the
counters, and not a word of the mails' subjects or bodies, nor the NET Genium key."""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox.stack import NETGENIUM_KEY, SandboxStack
from tests.e2e.conftest import CONTACTS, CRM, DIRECTORY, USERS
from tests.unit.messages import mail


class Collector:
    """Stands in for Application Insights' ingestion endpoint: keeps every body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip" or raw[:2] == b"\x1f\x8b":
                    raw = gzip.decompress(raw)
                bodies.append(raw.decode("utf-8", "replace"))
                answer = b'{"itemsReceived": 0, "itemsAccepted": 0, "errors": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def text(self) -> str:
        return "\n".join(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


def test_the_running_app_sends_capture_spans_and_counters_without_content(collector: Collector) -> None:
    settings = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        f"IngestionEndpoint={collector.url};LiveEndpoint={collector.url}",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    subject, body = f"SUBJECT-CANARY-{uuid.uuid4().hex[:8]}", f"BODY-CANARY-{uuid.uuid4().hex[:8]}"
    captured_id = f"<telemetry-{uuid.uuid4().hex}@e2e.example>"
    skipped_id = f"<telemetry-{uuid.uuid4().hex}@e2e.example>"
    with SandboxStack(DIRECTORY, app_settings=settings) as stack:
        for sender, message_id in ((CONTACTS[0].email, captured_id), ("who@unknown.example", skipped_id)):
            stack.deliver(
                mail(sender=sender, to=[USERS[0].email], cc=[CRM], subject=subject, body=body, message_id=message_id)
            )
        stack.settle()
        states = {e.message_id: e.state.value for e in stack.ledger_entries()}
        assert (states[captured_id], states[skipped_id]) == ("written", "skipped")
        deadline = time.monotonic() + 30
        wanted = ("crm.capture", captured_id, skipped_id, "crm.mail.captured", "crm.mail.skipped", "crm.graph.requests")
        while time.monotonic() < deadline and not all(w in collector.text() for w in wanted):
            time.sleep(0.2)
    sent = collector.text()
    missing = [w for w in wanted if w not in sent]
    assert not missing, (missing, sent[-2000:])
    assert "crm.netgenium.requests" in sent and "sender not in address book" in sent
    for secret in (subject, body, NETGENIUM_KEY, "sandbox-graph-token"):
        assert secret not in sent, secret
    # Request URLs lose their query: NET Genium's filters name the addresses looked up, Graph's
    # pages carry delta tokens.
    for kept_out in ("who@unknown.example", CONTACTS[0].email, "deltatoken", "skiptoken"):
        assert kept_out not in sent, kept_out
