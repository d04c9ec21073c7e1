"""The composition root: one set of adapters per process, and the entry points the triggers call.

Adapters are built on first use, not at import, so the webhook never pays for msgraph-sdk, and a
process that only answers notifications never opens a NET Genium connection. Every entry point
here is a whole use case run: parse the trigger's input, call the use case, record why it failed.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import ValidationError

from crm_core.domain.settings import Settings
from crm_core.domain.tasks import (
    CALENDAR_QUEUE,
    CAPTURE_QUEUE,
    LIFECYCLE_QUEUE,
    CalendarTask,
    CaptureTask,
    LifecycleTask,
    continuation_task,
    deferral,
)

# Only types at import time: each adapter is imported when it is first built, so that importing
# function_app stays cheap (cold start) and the webhook never loads the NET Genium or Graph SDKs.
if TYPE_CHECKING:
    from crm_core.calendar_runtime import CalendarRuntime
    from crm_core.domain.status_page import StatusResponse
    from crm_core.graph.client import GraphAdapter
    from crm_core.netgenium.client import NetGeniumClient
    from crm_core.storage.failures import FailureLog
    from crm_core.storage.ledger import CaptureLedger
    from crm_core.storage.queues import DelayedQueue
    from crm_core.storage.subscriptions import SubscriptionStore
    from crm_core.storage.tables import TableStorage
    from crm_core.usecases.backfill import Backfill
    from crm_core.usecases.mail_capture import MailCapture
    from crm_core.usecases.mailbox_sync import MailboxSync, SyncReport
    from crm_core.usecases.notification_intake import Intake
    from crm_core.usecases.observability import Span, Telemetry
    from crm_core.usecases.operator_queries import OperatorState
    from crm_core.usecases.preflight import Probes
    from crm_core.usecases.subscription_upkeep import (
        DeletedSubscription,
        SubscriptionUpkeep,
        SubscriptionView,
        UpkeepReport,
    )

log = logging.getLogger("crm_core.runtime")


def describe_error(exc: BaseException) -> str:
    """A reason fit for a log and the failure table: the error, never the input it choked on."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"invalid data at {where or 'top level'}: {first['msg']}"
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def _operator_state(storage: TableStorage, connection: str) -> OperatorState:
    """The stores operator queries read, over one table storage (and, for the poison queues, its
    connection string)."""
    from crm_core.storage.calendar import CalendarConflicts, CalendarUsers
    from crm_core.storage.correspondents import UnmatchedCorrespondents
    from crm_core.storage.cursors import SyncCursors
    from crm_core.storage.failures import FailureLog
    from crm_core.storage.ledger import CaptureLedger
    from crm_core.storage.queues import PoisonQueues
    from crm_core.usecases.operator_queries import OperatorState

    return OperatorState(
        ledger=CaptureLedger(storage),
        correspondents=UnmatchedCorrespondents(storage),
        poison=PoisonQueues(connection, FailureLog(storage)),
        calendar_users=CalendarUsers(storage),
        calendar_conflicts=CalendarConflicts(storage),
        cursors=SyncCursors(storage),
    )


@asynccontextmanager
async def operator_state(connection: str) -> AsyncIterator[OperatorState]:
    """The stores the `crmservice` operator commands read, opened on one storage connection."""
    from crm_core.storage.tables import TableStorage

    async with TableStorage.from_connection_string(connection) as storage:
        yield _operator_state(storage, connection)


@asynccontextmanager
async def preflight_probes(settings: Settings) -> AsyncIterator[Probes]:
    """What `crmservice check` reaches, built from the settings and closed afterwards."""
    from crm_core.usecases.preflight import Probes

    probes = _Probes(settings)
    try:
        yield Probes(mailbox=settings.crm_mailbox, graph=probes, netgenium=probes, storage=probes)
    finally:
        await probes.aclose()


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, for masking whatever an operator command prints."""
    from urllib.parse import parse_qs, unquote, urlsplit

    values = [
        settings.netgenium_api_key.get_secret_value(),
        settings.graph_client_secret.get_secret_value(),
        settings.graph_static_token.get_secret_value(),
        settings.azure_web_jobs_storage.get_secret_value(),
    ]
    database = settings.netgenium_database_url.get_secret_value()
    values += [database, unquote(urlsplit(database).password or "")]
    connection = settings.azure_web_jobs_storage.get_secret_value()
    values += [part.split("=", 1)[1] for part in connection.split(";") if part.lower().startswith("accountkey=")]
    for url in (settings.crm_notification_url, settings.crm_lifecycle_url):
        values.append(url.get_secret_value())
        values += [code for codes in parse_qs(urlsplit(url.get_secret_value()).query).values() for code in codes]
    return [value for value in values if len(value) >= 4]


class _Probes:
    """The adapters behind `crm_core.usecases.preflight`'s probes, each built on first use."""

    def __init__(self, settings: Settings) -> None:
        self._runtime = Runtime(settings)
        self._settings = settings
        self._netgenium: NetGeniumClient | None = None

    async def aclose(self) -> None:
        if self._netgenium is not None:
            await self._netgenium.aclose()
        await self._runtime.aclose()

    async def token(self) -> None:
        from crm_core.graph.factory import acquire_token

        await acquire_token(self._settings)

    async def mailbox_user(self, mailbox: str) -> str:
        user = await self._runtime.graph.get_user(mailbox)
        return user.id

    async def read_inbox(self, mailbox: str) -> None:
        from datetime import UTC, datetime

        await self._runtime.graph.message_delta_page(mailbox, received_since=datetime.now(UTC), page_size=1)

    def _client(self) -> NetGeniumClient:
        if self._netgenium is None:
            from crm_core.netgenium.check import CHECK_RETRY
            from crm_core.netgenium.client import NetGeniumClient

            self._netgenium = NetGeniumClient.from_settings(self._settings, retry=CHECK_RETRY)
        return self._netgenium

    async def health(self) -> dict[str, object]:
        return await self._client().health()

    async def schema_problems(self) -> list[str]:
        from crm_core.netgenium.check import check_schema

        client = self._client()
        return await check_schema(client, client.schema_map)

    async def tables(self) -> None:
        await self._runtime.subscriptions.all()

    async def queue_lengths(self) -> dict[str, int | None]:
        queues = (CAPTURE_QUEUE, LIFECYCLE_QUEUE, CALENDAR_QUEUE)
        return {queue: await self._runtime.delayed.message_count(queue) for queue in queues}


class Runtime:
    """Everything one Functions worker process needs, built lazily from the settings."""

    def __init__(self, settings: Settings, *, worker: str | None = None) -> None:
        self.settings = settings
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        # httpx logs every request URL at INFO; NET Genium filters carry customers' addresses.
        logging.getLogger("httpx").setLevel(logging.WARNING)

    async def aclose(self) -> None:
        """Close the adapters that were built (only those: closing must not build one)."""
        built = self.__dict__
        if "graph" in built:
            await built["graph"].aclose()
        if "netgenium" in built:
            await built["netgenium"].aclose()
        if "delayed" in built:
            await built["delayed"].close()
        if "storage" in built:
            await built["storage"].close()
        if "capture" in built:
            built["capture"].close()

    @cached_property
    def telemetry(self) -> Telemetry:
        """OpenTelemetry to Application Insights with APPLICATIONINSIGHTS_CONNECTION_STRING, else a no-op
        (and then nothing of OpenTelemetry or Azure Monitor is imported)."""
        from crm_core.telemetry import telemetry_from_environment

        return telemetry_from_environment(self.settings)

    @cached_property
    def storage(self) -> TableStorage:
        from crm_core.storage.tables import TableStorage

        return TableStorage.from_settings(self.settings)

    @cached_property
    def subscriptions(self) -> SubscriptionStore:
        from crm_core.storage.subscriptions import SubscriptionStore

        return SubscriptionStore(self.storage)

    @cached_property
    def delayed(self) -> DelayedQueue:
        from crm_core.storage.queues import DelayedQueue

        return DelayedQueue.from_settings(self.settings)

    @cached_property
    def failures(self) -> FailureLog:
        from crm_core.storage.failures import FailureLog

        return FailureLog(self.storage)

    @cached_property
    def ledger(self) -> CaptureLedger:
        from crm_core.storage.ledger import CaptureLedger

        return CaptureLedger(self.storage)

    @cached_property
    def graph(self) -> GraphAdapter:
        from crm_core.graph.factory import create_graph_adapter

        return create_graph_adapter(self.settings)

    @cached_property
    def netgenium(self) -> NetGeniumClient:
        from crm_core.netgenium.client import NetGeniumClient

        return NetGeniumClient.from_settings(self.settings)

    @cached_property
    def capture(self) -> MailCapture:
        from crm_core.cpu import ProcessWork
        from crm_core.domain.capture_decision import CaptureRules
        from crm_core.storage.correspondents import UnmatchedCorrespondents
        from crm_core.usecases.mail_capture import CaptureOptions, MailCapture

        settings = self.settings
        return MailCapture(
            self.graph,
            self.netgenium,
            self.ledger,
            UnmatchedCorrespondents(self.storage),
            CaptureRules.build(settings.crm_mailbox, settings.crm_excluded_addresses, settings.crm_order_keywords),
            worker=self.worker,
            options=CaptureOptions(
                max_attachment_bytes=settings.crm_attachment_max_bytes,
                include_inline_attachments=settings.crm_include_inline_attachments,
                max_body_chars=settings.crm_max_body_chars,
            ),
            cpu=ProcessWork(),
            telemetry=self.telemetry,
        )

    @cached_property
    def mailbox_sync(self) -> MailboxSync:
        from crm_core.storage.cursors import SyncCursors
        from crm_core.storage.leases import MailboxLeases
        from crm_core.usecases.mailbox_sync import MailboxSync

        return MailboxSync(
            self.graph,
            SyncCursors(self.storage),
            self.capture,
            initial_days=self.settings.crm_initial_sync_days,
            budget_seconds=self.settings.crm_run_budget_seconds,
            leases=MailboxLeases(self.storage),
            holder=self.worker,
        )

    @cached_property
    def calendar(self) -> CalendarRuntime:
        from crm_core.calendar_runtime import CalendarRuntime

        return CalendarRuntime(self)

    @cached_property
    def upkeep(self) -> SubscriptionUpkeep:
        from crm_core.usecases.subscription_upkeep import SubscriptionUpkeep

        settings = self.settings
        return SubscriptionUpkeep(
            self.graph,
            self.subscriptions,
            mailbox=settings.crm_mailbox,
            notification_url=settings.crm_notification_url.get_secret_value(),
            lifecycle_url=settings.crm_lifecycle_url.get_secret_value(),
            lifetime=timedelta(minutes=settings.crm_subscription_minutes),
            reconcile=self.reconcile,
            resync_calendar=self._resync_calendar,
        )

    def backfill(self, *, page_size: int | None = None, folder: str | None = None) -> Backfill:
        """`crmservice backfill`: the CRM mailbox's older mail through this runtime's capture (build
        the runtime with a stable `worker`, so that a resumed run takes over its own claims)."""
        from crm_core.domain.mailbox import MAIL_FOLDER
        from crm_core.storage.cursors import SyncCursors
        from crm_core.storage.leases import MailboxLeases
        from crm_core.usecases.backfill import Backfill

        return Backfill(
            self.graph,
            SyncCursors(self.storage),
            self.capture,
            self.ledger,
            mailbox=self.settings.crm_mailbox,
            folder=folder or MAIL_FOLDER,
            page_size=page_size,
            leases=MailboxLeases(self.storage),
            holder=self.worker,
        )

    # ---- entry points --------------------------------------------------------------------------

    async def accept_notifications(self, body: bytes) -> Intake:
        from crm_core.domain.notifications import NotificationRejected
        from crm_core.usecases.notification_intake import accept_changes
        from crm_core.usecases.observability import DECISION, REASON, SPAN_NOTIFICATIONS

        with self.telemetry.span(SPAN_NOTIFICATIONS) as span:
            try:
                intake = await accept_changes(body, self.subscriptions)
            except NotificationRejected as exc:
                span.set(DECISION, "rejected")
                span.set(REASON, exc.reason)
                raise
            span.set(DECISION, "queued" if intake.tasks else "dropped")
            span.set("crm.tasks", len(intake.tasks))
            span.set("crm.dropped", intake.dropped)
            return intake

    async def accept_lifecycle(self, body: bytes) -> Intake:
        from crm_core.usecases.notification_intake import accept_lifecycle

        return await accept_lifecycle(body, self.subscriptions)

    async def run_capture_task(self, body: str, attempt: int) -> list[str]:
        """One capture task; returns tasks to queue for mails a delta run could not capture.

        A task stopped by a server that asked us to wait is queued again for after the wait,
        keeping the queue's attempts for real failures (`crm_core.domain.tasks.deferral`).
        """
        from crm_core.usecases.observability import SPAN_CAPTURE_TASK

        with self.telemetry.span(SPAN_CAPTURE_TASK, {"crm.attempt": attempt}) as span:
            return await self._run_capture_task(body, attempt, span)

    async def _run_capture_task(self, body: str, attempt: int, span: Span) -> list[str]:
        task: CaptureTask | None = None
        try:
            task = CaptureTask.model_validate_json(body)
            span.set("crm.kind", task.kind)
            span.set("crm.items", len(task.item_ids))
            if task.kind == "events":
                # A calendar change is a hint to sync that user's calendar (both ways).
                await self.calendar.sync_mailbox(task.mailbox)
                return []
            if task.single:
                for item in task.item_ids:
                    await self.mailbox_sync.retry_one(task.mailbox, item)
                return []
            report = await self.mailbox_sync.handle(task)
        except Exception as exc:
            later = deferral(task, exc) if task is not None else None
            if later is not None and await self.defer(CAPTURE_QUEUE, exc, attempt, *later):
                return []
            await self.record_failure(CAPTURE_QUEUE, body, exc, attempt)
            raise
        return _retry_tasks(task.mailbox, task.subscription_id, report)

    async def defer(
        self, queue: str, exc: BaseException, attempt: int, later: CaptureTask | CalendarTask, delay: float
    ) -> bool:
        """Queue `later` on `queue` to run after `delay` seconds, noting why; False if even that
        failed (then the host retries)."""
        try:
            await self.delayed.send_later(queue, later.model_dump_json(), delay)
        except Exception:
            log.exception("could not queue a throttled task for later", extra={"queue": queue})
            return False
        reason = f"throttled, tried again in {delay:.0f} s (deferral {later.deferrals}): {describe_error(exc)}"
        log.warning("task deferred", extra={"queue": queue, "delay_s": delay, "reason": reason})
        try:
            await self.failures.record(queue, later.model_dump_json(), reason, attempt)
        except Exception:
            log.exception("could not record a deferral", extra={"queue": queue})
        return True

    async def status_page(self, format: str | None = None) -> StatusResponse:
        """The status page (with `format="json"` its figures as JSON), from the service's stores."""
        from crm_core.domain.status_page import status_response
        from crm_core.usecases.status_report import StatusSources, status_report

        # Poison depths come from `delayed` (which also works with a managed identity), not from
        # the state's poison queues, which need a connection string.
        state = _operator_state(self.storage, self.settings.azure_web_jobs_storage.get_secret_value())
        report = await status_report(StatusSources(state, self.ledger, self.subscriptions, self.delayed))
        return status_response(report, format)

    async def run_lifecycle_task(self, body: str, attempt: int) -> None:
        try:
            await self.upkeep.handle(LifecycleTask.model_validate_json(body))
        except Exception as exc:
            await self.record_failure(LIFECYCLE_QUEUE, body, exc, attempt)
            raise

    async def subscription_overview(self) -> list[SubscriptionView]:
        from crm_core.usecases.subscription_upkeep import subscription_overview

        return await subscription_overview(self.graph, self.subscriptions)

    async def delete_subscriptions(self, ids: list[str] | None) -> list[DeletedSubscription]:
        from crm_core.usecases.subscription_upkeep import delete_subscriptions

        return await delete_subscriptions(self.graph, self.subscriptions, ids)

    async def _resync_calendar(self, mailbox: str) -> None:
        """After a gap in a calendar's notifications: queue a sync of that user."""
        from crm_core.domain.tasks import CalendarTask

        await self.delayed.send_later(CALENDAR_QUEUE, CalendarTask(mailbox=mailbox).model_dump_json(), 0)

    async def run_upkeep(self) -> UpkeepReport:
        return await self.upkeep.run()

    async def reconcile(self) -> SyncReport:
        return await self.mailbox_sync.reconcile(self.settings.crm_mailbox)

    async def run_reconcile(self) -> list[str]:
        """The reconciliation timer; returns tasks to queue for mails it could not capture."""
        report = await self.reconcile()
        log.info(
            "reconcile: done",
            extra={
                "captured": len(report.captured),
                "failed": len(report.failed),
                "graph_requests": report.graph_requests,
            },
        )
        return _retry_tasks(self.settings.crm_mailbox, "", report)

    async def record_failure(self, queue: str, body: str, exc: BaseException, attempt: int) -> None:
        from crm_core.usecases.observability import TASK_FAILED

        reason = describe_error(exc)
        self.telemetry.count(TASK_FAILED, 1, {"crm.queue": queue, "crm.error": type(exc).__name__})
        log.warning("queue item failed", extra={"queue": queue, "attempt": attempt, "reason": reason})
        try:
            await self.failures.record(queue, body, reason, attempt)
        except Exception:  # the original error matters more than a lost note about it
            log.exception("could not record a queue failure", extra={"queue": queue})


def _retry_tasks(mailbox: str, subscription_id: str, report: SyncReport) -> list[str]:
    """What a run leaves for the queue: each mail it could not capture, alone, and the rest of an
    unfinished round."""
    tasks = [
        CaptureTask(
            subscription_id=subscription_id,
            kind="mail",
            mailbox=mailbox,
            item_ids=[graph_id],
            change_type="created",
            single=True,
        ).model_dump_json()
        for graph_id in report.failed
    ]
    if report.unfinished:
        tasks.append(continuation_task(mailbox, subscription_id).model_dump_json())
    return tasks


_runtime: Runtime | None = None


def get_runtime(settings: Settings) -> Runtime:
    """The process's runtime (the Functions worker runs every invocation in one process)."""
    global _runtime
    if _runtime is None or _runtime.settings is not settings:
        _runtime = Runtime(settings)
    return _runtime
