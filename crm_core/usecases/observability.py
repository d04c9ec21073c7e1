"""The telemetry port: spans and counters a use case reports, nothing by default.

`crm_core.telemetry` plays it with OpenTelemetry for Application Insights when
`APPLICATIONINSIGHTS_CONNECTION_STRING` is set; otherwise `NO_TELEMETRY` is used, which costs a
method call and imports nothing. What is reported is named here once. An attribute is an id, a
decision, a reason phrase or a count: never a subject, a body, an address list or a secret.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from crm_core.domain.capture_decision import Decision

AttributeValue = str | int | float | bool
Attributes = Mapping[str, AttributeValue | None]

# Spans
SPAN_NOTIFICATIONS = "crm.notifications"  # one webhook POST of change notifications
SPAN_CAPTURE_TASK = "crm.capture_task"  # one capture queue item (a notification's mails, or a delta run)
SPAN_CAPTURE = "crm.capture"  # one mail through claim, decision and write

# Counters
CAPTURED = "crm.mail.captured"
SKIPPED = "crm.mail.skipped"  # attribute crm.reason: the skip's kind ("automated", "internal", ...)
FAILED = "crm.mail.failed"  # a mail's capture raised (retried later); attribute crm.error
TASK_FAILED = "crm.task.failed"  # a queue item failed (the host retries it, then poisons it)
GRAPH_REQUESTS = "crm.graph.requests"
NETGENIUM_REQUESTS = "crm.netgenium.requests"
THROTTLES = "crm.throttles"  # a 429 (or 503 with Retry-After) from Graph or NET Genium; attribute crm.system
COUNTERS = (CAPTURED, SKIPPED, FAILED, TASK_FAILED, GRAPH_REQUESTS, NETGENIUM_REQUESTS, THROTTLES)

# Attribute names
MESSAGE_ID = "crm.message_id"  # the Internet Message-ID (a mail's id, not its content)
DECISION = "crm.decision"  # written, found, skipped, duplicate, failed
REASON = "crm.reason"


class Span(Protocol):
    def set(self, key: str, value: AttributeValue | None) -> None: ...


class Telemetry(Protocol):
    enabled: bool

    def span(self, name: str, attributes: Attributes | None = None) -> AbstractContextManager[Span]: ...
    def count(self, name: str, value: int = 1, attributes: Attributes | None = None) -> None: ...


class _NoSpan:
    def set(self, key: str, value: AttributeValue | None) -> None:
        return None


_NO_SPAN = _NoSpan()


class NoTelemetry:
    """Telemetry off: every call returns at once, and nothing is imported or sent."""

    enabled = False

    @contextmanager
    def span(self, name: str, attributes: Attributes | None = None) -> Iterator[Span]:
        yield _NO_SPAN

    def count(self, name: str, value: int = 1, attributes: Attributes | None = None) -> None:
        return None


NO_TELEMETRY = NoTelemetry()


def record_capture(telemetry: Telemetry, span: Span, outcome: str, decision: Decision | None) -> None:
    """A mail's outcome on its span, and counted: captured, or skipped by the kind of its reason."""
    span.set(DECISION, outcome)
    if decision is None:  # a duplicate: the ledger had it, nothing was decided again
        return
    if decision.skip is not None:
        span.set(REASON, decision.skip.value)
        telemetry.count(SKIPPED, 1, {REASON: decision.skip.value})
    elif outcome in ("written", "found"):
        span.set(REASON, decision.reasons[0] if decision.reasons else decision.direction)
        span.set("crm.order_linked", decision.order_id is not None)
        telemetry.count(CAPTURED, 1, {"crm.direction": decision.direction or "", DECISION: outcome})
