"""Queue triggers fed from Azure Queue storage (Azurite) with host.json's `extensions.queues` rules.

The retry and poison behaviour of the deployed app lives in host.json, not in the app, so the
runner has to reproduce the WebJobs queue listener closely for a test of "five failures end in the
poison queue" to mean anything: batches, polling back-off, a lease renewed at half while the
function runs, the visibility timeout after a failure, and the poison queue after `maxDequeueCount`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as TriggerQueueMessage
from azure.storage.queue import QueueMessage as StorageQueueMessage
from azure.storage.queue.aio import QueueClient

from crm_core.storage.tables import client_options
from sandbox.runner.bindings import decode_queue_message
from sandbox.runner.faults import RunnerFaults
from sandbox.runner.functions import FunctionLoadError, FunctionSpec, Invoke, QueueBinding, report_crash
from sandbox.runner.host_config import QueueSettings

log = logging.getLogger(__name__)

MIN_POLLING_INTERVAL = 0.1


async def ensure_queue(client: QueueClient) -> None:
    """The host creates trigger, output and poison queues on first use; an existing one is fine."""
    with contextlib.suppress(ResourceExistsError):
        await client.create_queue()


async def message_count(client: QueueClient) -> int:
    """A poison queue that was never needed does not exist yet, which counts as empty."""
    try:
        return (await client.get_queue_properties()).approximate_message_count or 0
    except ResourceNotFoundError:
        return 0


class QueueClients:
    """One client per (connection, queue), shared by triggers and outputs and closed together at stop."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self._clients: dict[tuple[str, str], QueueClient] = {}

    def connection_string(self, setting: str) -> str:
        """The host also accepts the setting under `AzureWebJobs<name>`; identity-based connections are not imitated."""
        for name in (setting, f"AzureWebJobs{setting}"):
            value = self.environ.get(name)
            if value:
                return value
        raise FunctionLoadError(
            f"connection setting {setting!r} is not set; the local runner needs a connection string "
            "(for example Azurite's) in that app setting"
        )

    def get(self, binding: QueueBinding, queue_name: str | None = None) -> QueueClient:
        """`queue_name` overrides the binding's queue, for its poison queue on the same connection."""
        name = queue_name or binding.queue_name
        key = (binding.connection, name)
        if key not in self._clients:
            self._clients[key] = QueueClient.from_connection_string(
                self.connection_string(binding.connection), name, **client_options()
            )
        return self._clients[key]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


@dataclass
class QueueCounters:
    """What `/admin/sandbox/status` reports per trigger queue."""

    in_flight: int = 0
    succeeded: int = 0
    failed: int = 0
    poisoned: int = 0


class QueueListener:
    """Feeds one queue-triggered function, with the WebJobs queue listener's batching and retry rules."""

    def __init__(
        self,
        invoke: Invoke,
        spec: FunctionSpec,
        client: QueueClient,
        poison: QueueClient,
        settings: QueueSettings,
        lease_seconds: float,
        faults: RunnerFaults | None = None,
    ) -> None:
        self.invoke = invoke
        self.faults = faults
        self.spec = spec
        self.client = client
        self.poison = poison
        self.settings = settings
        self.lease_seconds = lease_seconds
        self.counters = QueueCounters()
        self.wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    @property
    def queue_name(self) -> str:
        return self.client.queue_name

    def start(self) -> None:
        self._runner = asyncio.create_task(self._poll(), name=f"queue:{self.queue_name}")
        self._runner.add_done_callback(report_crash)

    async def stop_polling(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def drain(self, grace: float) -> None:
        """Let running invocations finish; what does not finish is left for its lease to expire."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _poll(self) -> None:
        delay = MIN_POLLING_INTERVAL
        while True:
            if self.counters.in_flight > self.settings.new_batch_threshold:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                messages = await self._receive()
            except AzureError as error:
                log.warning("queue %s: receive failed (%s); retrying", self.queue_name, type(error).__name__)
                messages = []
            if messages:
                delay = MIN_POLLING_INTERVAL
                for message in messages:
                    self.counters.in_flight += 1
                    task = asyncio.create_task(self._process(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                continue
            # Nothing there: back off exponentially up to maxPollingInterval, unless our own output binding
            # just wrote to this queue (the host's shared queue watcher does the same).
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
            delay = min(delay * 2, self.settings.max_polling_interval)

    async def _receive(self) -> list[StorageQueueMessage]:
        messages: list[StorageQueueMessage] = []
        pager = self.client.receive_messages(
            messages_per_page=self.settings.batch_size,
            max_messages=self.settings.batch_size,
            visibility_timeout=max(1, round(self.lease_seconds)),
        )
        async for message in pager:
            messages.append(message)
        return messages

    async def _process(self, message: StorageQueueMessage) -> None:
        try:
            await self._process_one(message)
        except Exception:
            log.exception("queue %s: message %s could not be settled", self.queue_name, message.id)
        finally:
            self.counters.in_flight -= 1
            self._slot_free.set()

    async def _process_one(self, message: StorageQueueMessage) -> None:
        max_count = self.settings.max_dequeue_count
        if message.dequeue_count is not None and message.dequeue_count > max_count:
            # A previous holder died after its last attempt: no further attempt, straight to poison.
            await self._to_poison(message, "dequeue count above maxDequeueCount")
            return
        try:
            body = decode_queue_message(message.content or "", self.settings.message_encoding)
        except ValueError:
            await self._to_poison(message, f"not {self.settings.message_encoding}-encoded")
            return
        trigger = TriggerQueueMessage(  # type: ignore[no-untyped-call]  # azure.functions leaves __init__ untyped
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        if self.faults is not None and self.faults.take_duplicate(self.queue_name):
            # At-least-once delivery: the same text arrives a second time, as its own message.
            await self.client.send_message(message.content or "")
            self.wake.set()
            log.warning("queue %s: message %s delivered twice (injected fault)", self.queue_name, message.id)
        lease = _Lease(self.client, message, self.lease_seconds)
        lease.start()
        failed = False
        try:
            await self.invoke(self.spec, trigger, reason=f"message {message.id}, dequeue count {message.dequeue_count}")
        except Exception:
            failed = True
        finally:
            await lease.stop()  # also when cancelled at shutdown: the message then reappears after its lease
        if failed:
            self.counters.failed += 1
            if (message.dequeue_count or 1) >= max_count:
                await self._to_poison(message, f"failed {message.dequeue_count} times")
            else:
                await self._release(message)
            return
        self.counters.succeeded += 1
        try:
            await self.client.delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:
            log.warning("queue %s: message %s was gone or re-leased before delete", self.queue_name, message.id)

    async def _release(self, message: StorageQueueMessage) -> None:
        try:
            await self.client.update_message(
                message.id, message.pop_receipt, visibility_timeout=round(self.settings.visibility_timeout)
            )
        except ResourceNotFoundError:
            log.warning("queue %s: message %s was re-leased before release", self.queue_name, message.id)

    async def _to_poison(self, message: StorageQueueMessage, why: str) -> None:
        # The original text goes to the poison queue unchanged, so a replay puts back exactly what came in.
        await ensure_queue(self.poison)
        await self.poison.send_message(message.content or "")
        with contextlib.suppress(ResourceNotFoundError):
            await self.client.delete_message(message.id, message.pop_receipt)
        self.counters.poisoned += 1
        log.warning("queue %s: message %s moved to %s (%s)", self.queue_name, message.id, self.poison.queue_name, why)


class _Lease:
    """Keeps a message invisible while its function runs, as the host renews at half the lease."""

    def __init__(self, client: QueueClient, message: StorageQueueMessage, seconds: float) -> None:
        self.client = client
        self.message = message
        self.seconds = max(1, round(seconds))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 2)
            try:
                updated = await self.client.update_message(
                    self.message.id, self.message.pop_receipt, visibility_timeout=self.seconds
                )
            except AzureError as error:
                log.warning("message %s: lease renewal failed (%s)", self.message.id, type(error).__name__)
                return
            self.message.pop_receipt = updated.pop_receipt
            self.message.next_visible_on = updated.next_visible_on

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
