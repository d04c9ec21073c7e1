"""Telemetry: with OpenTelemetry (in-memory exporter and reader) a capture leaves its span and moves the
counters; without APPLICATIONINSIGHTS_CONNECTION_STRING nothing of OpenTelemetry or Azure Monitor is
even imported. No subject, body or secret in any attribute or log record."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm_core.domain.errors import ServiceUnavailable
from crm_core.telemetry import OpenTelemetry
from crm_core.usecases import observability as obs
from crm_core.usecases.mail_capture import CaptureOptions, MailCapture
from tests.unit.messages import CRM, JANA, NOVAK, RULES, STRANGER, mail
from tests.usecases.fakes import FakeActivityStore, FakeCorrespondents, FakeLedger, FakeMailSource

ROOT = Path(__file__).resolve().parents[2]
SUBJECT = "Quarterly pricing for Zakaznik s.r.o. SUBJECT-CANARY"
BODY = "Dear Jana, the confidential BODY-CANARY figures are attached."
SECRET = "sandbox-netgenium-key-SECRET-CANARY"


class Recorded:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.telemetry = OpenTelemetry(
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            graph_url="https://graph.microsoft.com/v1.0",
            netgenium_url="http://127.0.0.1:8080/netgenium",
        )

    def counters(self) -> dict[tuple[str, tuple[tuple[str, Any], ...]], int]:
        data = self.reader.get_metrics_data()
        out: dict[tuple[str, tuple[tuple[str, Any], ...]], int] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        assert isinstance(point, NumberDataPoint)
                        out[(metric.name, tuple(sorted((point.attributes or {}).items())))] = int(point.value)
        return out


def capture_with(telemetry: Any, source: FakeMailSource, crm: FakeActivityStore) -> MailCapture:
    ledger, correspondents = FakeLedger(), FakeCorrespondents()
    return MailCapture(
        source, crm, ledger, correspondents, RULES, worker="w", options=CaptureOptions(), telemetry=telemetry
    )


async def test_a_capture_leaves_a_span_with_id_decision_and_reason_and_moves_the_counters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    recorded = Recorded()
    source, crm = FakeMailSource(CRM), FakeActivityStore()
    capture = capture_with(recorded.telemetry, source, crm)
    content: dict[str, Any] = {"subject": SUBJECT, "body": BODY}
    written = source.add(mail(sender=NOVAK, to=[JANA], message_id="<w1@x.example>", **content), "g1")
    stranger = source.add(mail(sender=STRANGER, to=[JANA], message_id="<s1@x.example>", **content), "g2")
    bulk = mail(sender=NOVAK, to=[JANA], subject=SUBJECT, body=BODY, message_id="<b1@x.example>")
    bulk["internetMessageHeaders"] = [{"name": "Precedence", "value": "bulk"}]
    automated = source.add(bulk, "g3")

    for message in (written, stranger, automated, written):  # the last one a duplicate
        await capture.capture(CRM, message)
    crm.fail("create_email_activity", ServiceUnavailable("NET Genium down"))
    failing = source.add(mail(sender=NOVAK, to=[JANA], subject=SUBJECT, body=BODY, message_id="<f1@x.example>"), "g4")
    with pytest.raises(ServiceUnavailable):
        await capture.capture(CRM, failing)

    spans = [s for s in recorded.spans.get_finished_spans() if s.name == obs.SPAN_CAPTURE]
    seen = {str((s.attributes or {})[obs.MESSAGE_ID]): dict(s.attributes or {}) for s in spans}
    assert len(spans) == 5
    assert seen["<w1@x.example>"][obs.DECISION] == "duplicate"  # the second capture of it, last in the dict
    first = dict(spans[0].attributes or {})
    assert (first[obs.MESSAGE_ID], first[obs.DECISION]) == ("<w1@x.example>", "written")
    assert str(first[obs.REASON]).startswith("incoming")
    assert (seen["<s1@x.example>"][obs.DECISION], seen["<s1@x.example>"][obs.REASON]) == (
        "skipped",
        "sender not in address book",
    )
    assert seen["<b1@x.example>"][obs.REASON] == "automated"
    assert seen["<f1@x.example>"][obs.DECISION] == "failed"

    counters = recorded.counters()
    assert counters[(obs.CAPTURED, (("crm.decision", "written"), ("crm.direction", "incoming")))] == 1
    assert counters[(obs.SKIPPED, ((obs.REASON, "sender not in address book"),))] == 1
    assert counters[(obs.SKIPPED, ((obs.REASON, "automated"),))] == 1
    assert counters[(obs.FAILED, (("crm.error", "ServiceUnavailable"),))] == 1

    everything = json.dumps([dict(s.attributes or {}) for s in recorded.spans.get_finished_spans()], default=str)
    everything += json.dumps([list(key) for key in counters], default=str)
    everything += "\n".join(record.getMessage() + json.dumps(record.__dict__, default=str) for record in caplog.records)
    for canary in ("SUBJECT-CANARY", "BODY-CANARY", "Quarterly pricing", "confidential"):
        assert canary not in everything, canary


def test_graph_and_netgenium_requests_and_throttles_are_counted_by_host() -> None:
    recorded = Recorded()
    telemetry = recorded.telemetry
    telemetry.http_response("https://graph.microsoft.com/v1.0/users/x/messages?$top=1", 200)
    telemetry.http_response("https://GRAPH.microsoft.com:443/v1.0/users", 429, {"Retry-After": "3"})
    telemetry.http_response("http://127.0.0.1:8080/netgenium/api/v1/health", 200)
    telemetry.http_response("http://127.0.0.1:8080/api/v1/tables/t/records", 503, {"retry-after": "10"})
    telemetry.http_response("http://127.0.0.1:8080/x", 503)  # down, not throttled
    telemetry.http_response("http://127.0.0.1:10000/devstoreaccount1/Tables", 200)  # storage on the same host
    telemetry.http_response("https://login.microsoftonline.com/t/oauth2/v2.0/token", 200)  # a token
    telemetry.http_response("not a url", 200)
    counters = recorded.counters()
    graph = sum(n for (name, _), n in counters.items() if name == obs.GRAPH_REQUESTS)
    netgenium = sum(n for (name, _), n in counters.items() if name == obs.NETGENIUM_REQUESTS)
    assert (graph, netgenium) == (2, 3)
    throttles = {dict(attrs)["crm.system"]: n for (name, attrs), n in counters.items() if name == obs.THROTTLES}
    assert throttles == {"graph": 1, "netgenium": 1}


def test_attributes_drop_none_and_are_cut_short() -> None:
    recorded = Recorded()
    with recorded.telemetry.span("x", {"a": None, "b": "y" * 1000, "c": 3}) as span:
        span.set("d", None)
        span.set("e", "z" * 1000)
    [finished] = recorded.spans.get_finished_spans()
    attributes = dict(finished.attributes or {})
    assert set(attributes) == {"b", "c", "e"} and len(str(attributes["b"])) == 256 and len(str(attributes["e"])) == 256


async def test_a_webhook_post_leaves_a_span_that_says_queued_dropped_or_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crm_core.domain.notifications import NotificationRejected
    from crm_core.domain.settings import load_settings
    from crm_core.runtime import Runtime
    from tests.usecases.fakes import FakeSubscriptionRecords, notification_body
    from tests.usecases.test_notification_intake import OURS, SECRET, change

    for name, value in APP_SETTINGS.items():
        monkeypatch.setenv(name, value)
    recorded = Recorded()
    runtime = Runtime(load_settings())
    subscriptions = FakeSubscriptionRecords()
    await subscriptions.save(OURS)
    runtime.__dict__.update(telemetry=recorded.telemetry, subscriptions=subscriptions)

    await runtime.accept_notifications(notification_body(change("AAMkAD-1", client_state=SECRET)))
    await runtime.accept_notifications(notification_body(change("AAMkAD-2", client_state="forged-" + "y" * 40)))
    with pytest.raises(NotificationRejected):
        await runtime.accept_notifications(b"not json")

    spans = [dict(s.attributes or {}) for s in recorded.spans.get_finished_spans() if s.name == obs.SPAN_NOTIFICATIONS]
    assert [(a[obs.DECISION], a.get("crm.tasks")) for a in spans] == [("queued", 1), ("dropped", 0), ("rejected", None)]
    assert spans[1]["crm.dropped"] == 1
    assert spans[2][obs.REASON] == "body is not JSON"
    assert SECRET not in json.dumps(spans) and "forged" not in json.dumps(spans)


APP_SETTINGS = {
    "CRM_MAILBOX": CRM,
    "CRM_NOTIFICATION_URL": "https://crm.firma.example/api/notifications?code=k1",
    "CRM_LIFECYCLE_URL": "https://crm.firma.example/api/lifecycle?code=k1",
    "NETGENIUM_BASE_URL": "http://127.0.0.1:9",
    "NETGENIUM_API_KEY": SECRET,
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "GRAPH_AUTH": "static_token",
    "GRAPH_STATIC_TOKEN": "token",
    "GRAPH_BASE_URL": "http://127.0.0.1:9/v1.0",
}

UNSET_SCRIPT = """
import asyncio, json, sys
import function_app
from crm_core.runtime import get_runtime
from crm_core.usecases.mail_capture import CaptureOptions, MailCapture
from tests.unit.messages import CRM, JANA, NOVAK, RULES, STRANGER, mail
from tests.usecases.fakes import FakeActivityStore, FakeCorrespondents, FakeLedger, FakeMailSource

loaded_at_import = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "azure.monitor")))
runtime = get_runtime(function_app.settings)
telemetry = runtime.telemetry
source, crm = FakeMailSource(CRM), FakeActivityStore()
capture = MailCapture(source, crm, FakeLedger(), FakeCorrespondents(), RULES, worker="w",
                      options=CaptureOptions(), telemetry=telemetry)
async def main():
    results = [await capture.capture(CRM, source.add(mail(sender=NOVAK, to=[JANA], message_id="<a@x>"), "g1")),
               await capture.capture(CRM, source.add(mail(sender=STRANGER, to=[JANA], message_id="<b@x>"), "g2"))]
    return [r.outcome.value for r in results]
outcomes = asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "azure.monitor")))
print(json.dumps({"enabled": telemetry.enabled, "outcomes": outcomes, "at_import": loaded_at_import, "loaded": loaded}))
"""


def test_without_the_connection_string_nothing_of_opentelemetry_is_imported_and_capture_runs() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS")}
    env.update(APP_SETTINGS)
    out = subprocess.run(
        [sys.executable, "-c", UNSET_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["enabled"] is False
    assert result["outcomes"] == ["written", "skipped"]
    assert result["at_import"] == [] and result["loaded"] == []


SET_SCRIPT = """
import asyncio, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        throttled = "throttle" in self.path
        self.send_response(429 if throttled else 200)
        if throttled:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()

import function_app
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from crm_core.runtime import get_runtime
from crm_core.usecases.mail_capture import CaptureOptions, MailCapture
from tests.unit.messages import CRM, JANA, NOVAK, RULES, mail
from tests.usecases.fakes import FakeActivityStore, FakeCorrespondents, FakeLedger, FakeMailSource

runtime = get_runtime(function_app.settings)
telemetry = runtime.telemetry
exporter = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
counted = []
original = telemetry.count
telemetry.count = lambda name, value=1, attributes=None: (counted.append([name, dict(attributes or {})]),
                                                           original(name, value, attributes))[1]
source, crm = FakeMailSource(CRM), FakeActivityStore()
capture = MailCapture(source, crm, FakeLedger(), FakeCorrespondents(), RULES, worker="w",
                      options=CaptureOptions(), telemetry=telemetry)

async def main():
    import httpx
    await capture.capture(CRM, source.add(mail(sender=NOVAK, to=[JANA], message_id="<a@x>", subject=sys.argv[2]), "g1"))
    base = function_app.settings.netgenium_base_url
    async with httpx.AsyncClient() as client:
        await client.get(base + "/api/v1/tables/t/records", params={"filter": "email eq 'who@customer.example'"})
        await client.get(base + "/throttle")

asyncio.run(main())
spans = [{"name": s.name, "attributes": dict(s.attributes or {})} for s in exporter.get_finished_spans()]
print(json.dumps({"enabled": telemetry.enabled, "monitor": "azure.monitor.opentelemetry" in sys.modules,
                  "spans": spans, "counted": counted}, default=str))
"""


def test_with_the_connection_string_spans_and_counters_reach_opentelemetry_and_urls_lose_their_query() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS")}
    env.update(APP_SETTINGS)
    env.update(
        {
            "NETGENIUM_BASE_URL": f"http://127.0.0.1:{port}",
            # Nowhere to send to: an ingestion and live endpoint that refuse at once, and no statsbeat.
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/",
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "OTEL_TRACES_SAMPLER": "always_on",  # the distro's default samples by rate
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", SET_SCRIPT, str(port), SUBJECT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["enabled"] is True and result["monitor"] is True
    [capture_span] = [s for s in result["spans"] if s["name"] == obs.SPAN_CAPTURE]
    assert capture_span["attributes"][obs.MESSAGE_ID] == "<a@x>"
    assert capture_span["attributes"][obs.DECISION] == "written"
    requests = [s for s in result["spans"] if s["name"] == "GET"]
    assert len(requests) == 2
    urls = [str(s["attributes"].get("url.full") or s["attributes"].get("http.url")) for s in requests]
    assert urls == [f"http://127.0.0.1:{port}/api/v1/tables/t/records", f"http://127.0.0.1:{port}/throttle"]
    names = [name for name, _ in result["counted"]]
    assert names.count(obs.NETGENIUM_REQUESTS) == 2 and names.count(obs.CAPTURED) == 1
    assert [attrs["crm.system"] for name, attrs in result["counted"] if name == obs.THROTTLES] == ["netgenium"]
    assert "SUBJECT-CANARY" not in out.stdout and "customer.example" not in out.stdout


def test_with_local_authentication_off_the_exporter_sends_as_the_managed_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deployment disables Application Insights' local authentication and sets
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING; without a credential every export would be refused."""
    import azure.identity

    from crm_core.telemetry import entra_credential

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", lambda **kw: made.append(kw) or "credential")
    assert entra_credential({}) is None
    assert entra_credential({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=key"}) is None
    assert made == []
    client_id = "0b8e1a2c-0000-4000-8000-000000000001"
    setting = {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"Authorization=AAD;ClientId={client_id}"}
    assert entra_credential(setting) == "credential"
    assert made == [{"client_id": client_id}]
