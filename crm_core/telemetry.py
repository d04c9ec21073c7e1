"""Telemetry for Application Insights: OpenTelemetry through `azure-monitor-opentelemetry`, or nothing.

With `APPLICATIONINSIGHTS_CONNECTION_STRING` set, `telemetry_from_environment` configures the Azure
Monitor distro once per process (traces and metrics; logs are not exported a second time, the
Functions host already sends the worker's logs to Application Insights), instruments httpx so that
every Graph and NET Genium request is a dependency and counted, and returns an `OpenTelemetry` that
the use cases report spans and counters to. Without it, `NO_TELEMETRY`: this module then imports
nothing of OpenTelemetry or Azure Monitor (cold start is paid on every scale-out), sends nothing,
and each call is a no-op.

What leaves the process: span and counter names, the Internet Message-ID, decisions, reason
phrases, counts, and the requests' method, host, path and status (the query string is cut: NET
Genium filters name customers' addresses). Never a subject, a body or a secret.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from crm_core.domain.settings import Settings
from crm_core.usecases.observability import (
    COUNTERS,
    GRAPH_REQUESTS,
    NETGENIUM_REQUESTS,
    NO_TELEMETRY,
    THROTTLES,
    Attributes,
    AttributeValue,
    Span,
    Telemetry,
)

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
_MAX_ATTRIBUTE = 256

log = logging.getLogger("crm_core.telemetry")
_configured = False


def _clean(attributes: Attributes | None) -> dict[str, AttributeValue]:
    """Attributes OpenTelemetry takes: no None, text cut short."""
    out: dict[str, AttributeValue] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        out[key] = value[:_MAX_ATTRIBUTE] if isinstance(value, str) else value
    return out


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _Span:
    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, key: str, value: AttributeValue | None) -> None:
        if value is not None:
            self._span.set_attribute(key, value[:_MAX_ATTRIBUTE] if isinstance(value, str) else value)


class OpenTelemetry:
    """The telemetry port over OpenTelemetry's API (the global providers unless given others)."""

    enabled = True

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        graph_url: str | None = None,
        netgenium_url: str | None = None,
    ) -> None:
        from opentelemetry import metrics, trace

        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("crm_core")
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("crm_core")
        self._counters = {name: meter.create_counter(name, unit="1") for name in COUNTERS}
        # By origin (host and port): on one machine, the sandbox's emulators share a host.
        self._origins = {
            origin: system
            for url, system in ((graph_url, "graph"), (netgenium_url, "netgenium"))
            if (origin := _origin(url or ""))
        }

    @contextmanager
    def span(self, name: str, attributes: Attributes | None = None) -> Iterator[Span]:
        with self._tracer.start_as_current_span(name, attributes=_clean(attributes)) as span:
            yield _Span(span)

    def count(self, name: str, value: int = 1, attributes: Attributes | None = None) -> None:
        self._counters[name].add(value, attributes=_clean(attributes))

    def system_of(self, url: str) -> str | None:
        """Which system a request's URL is of: "graph", "netgenium", or None (tokens, storage)."""
        return self._origins.get(_origin(url))

    def http_response(self, url: str, status: int | None, headers: Mapping[str, str] | None = None) -> None:
        """Count one request to Graph or NET Genium, and a throttle when it was one."""
        system = self.system_of(url)
        if system is None:
            return
        self.count(GRAPH_REQUESTS if system == "graph" else NETGENIUM_REQUESTS, 1, {"http.status_code": status or 0})
        retry_after = any(k.lower() == "retry-after" for k in (headers or {}))
        if status == 429 or (status == 503 and retry_after):
            self.count(THROTTLES, 1, {"crm.system": system, "http.status_code": status})

    def instrument_httpx(self) -> None:
        """Every httpx request a span (query cut from its URL), and Graph's and NET Genium's counted."""
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        def request_hook(span: Any, request: Any) -> None:
            url = _url_text(getattr(request, "url", None))
            if url and span is not None and span.is_recording():
                for key in ("url.full", "http.url"):
                    span.set_attribute(key, _without_query(url))

        def response_hook(span: Any, request: Any, response: Any) -> None:
            status = getattr(response, "status_code", None)
            headers = getattr(response, "headers", None)
            pairs = {_text(k): _text(v) for k, v in headers.items()} if headers is not None else {}
            url = _url_text(getattr(request, "url", None))
            self.http_response(url, int(status) if status is not None else None, pairs)

        async def async_request_hook(span: Any, request: Any) -> None:
            request_hook(span, request)

        async def async_response_hook(span: Any, request: Any, response: Any) -> None:
            response_hook(span, request, response)

        HTTPXClientInstrumentor().instrument(
            request_hook=request_hook,
            response_hook=response_hook,
            async_request_hook=async_request_hook,
            async_response_hook=async_response_hook,
        )


def _url_text(url: Any) -> str:
    """httpx gives the request's URL as `httpx.URL`, or as (scheme, host, port, path) bytes."""
    if isinstance(url, tuple) and len(url) == 4:
        scheme, host, port, path = (_text(part) if isinstance(part, bytes) else part for part in url)
        return f"{scheme}://{host}{f':{port}' if port else ''}{path}"
    return str(url or "")


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _origin(url: str) -> str:
    """ "host:port" of a URL (the scheme's port when it names none); "" for no URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return ""
    return f"{parts.hostname}:{port}" if parts.hostname else ""


AUTHENTICATION_SETTING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"


def entra_credential(environ: Mapping[str, str]) -> Any:
    """The managed identity to send with, when Application Insights refuses local authentication
    (the deployment disables it and sets `Authorization=AAD;ClientId=<identity>`); else None.

    Without it, the exporter's requests would be refused and telemetry silently lost.
    """
    parts = dict(
        part.split("=", 1) for part in environ.get(AUTHENTICATION_SETTING, "").split(";") if "=" in part
    )
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = parts.get("ClientId", "").strip()
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def telemetry_from_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> Telemetry:
    """OpenTelemetry to Application Insights when the connection string is set; else `NO_TELEMETRY`.

    Configures the process's providers once; a second call (another runtime) reuses them.
    """
    global _configured
    environ = os.environ if environ is None else environ
    connection = environ.get(CONNECTION_SETTING, "").strip()
    if not connection:
        return NO_TELEMETRY
    hosts = {"graph_url": settings.graph_base_url, "netgenium_url": settings.netgenium_base_url}
    if _configured:
        return OpenTelemetry(**hosts)
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Web frameworks the distro would instrument are not used here; httpx is instrumented below, with
    # the hooks that count Graph's and NET Genium's requests and cut query strings from URLs.
    # Sampling is the distro's default (rate-limited, 5 traces a second; OTEL_TRACES_SAMPLER changes it);
    # the counters are not sampled.
    off = ("django", "fastapi", "flask", "psycopg2", "httpx")
    options: dict[str, Any] = {}
    credential = entra_credential(environ)
    if credential is not None:
        options["credential"] = credential
    configure_azure_monitor(
        connection_string=connection,
        disable_logging=True,
        instrumentation_options={name: {"enabled": False} for name in off},
        **options,
    )
    telemetry = OpenTelemetry(**hosts)
    telemetry.instrument_httpx()
    _configured = True
    log.info("telemetry: sending to Application Insights")
    return telemetry
