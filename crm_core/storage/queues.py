"""Queue items sent later, and the poison queues: what failed for good, and another try for it.

Queue items are plain text (host.json `messageEncoding: none`), so an operator reading a poison
queue in Storage Explorer sees the JSON task, and a replayed item is byte for byte the original.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from crm_core.domain.settings import Settings
from crm_core.domain.state import PoisonItem as PoisonItem
from crm_core.domain.tasks import POISON_SUFFIX
from crm_core.storage.failures import FailureLog
from crm_core.storage.tables import client_options, storage_error


def _client(connection: str, queue: str) -> QueueClient:
    return QueueClient.from_connection_string(connection, queue, **client_options())


class DelayedQueue:
    """Sends an item that becomes visible only after a delay (a throttled task waiting its turn)."""

    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service

    @classmethod
    def from_settings(cls, settings: Settings) -> DelayedQueue:
        connection = settings.azure_web_jobs_storage.get_secret_value()
        if connection:
            return cls(QueueServiceClient.from_connection_string(connection, **client_options()))
        from azure.identity.aio import DefaultAzureCredential

        account = settings.azure_web_jobs_storage_account_name
        return cls(
            QueueServiceClient(
                f"https://{account}.queue.core.windows.net", credential=DefaultAzureCredential(), **client_options()
            )
        )

    async def send_later(self, queue: str, content: str, delay_seconds: float) -> None:
        client = self._service.get_queue_client(queue)
        try:
            await client.send_message(content, visibility_timeout=max(0, round(delay_seconds)))
        except AzureError as exc:
            raise storage_error(exc, "queueing a task for later") from exc

    async def message_count(self, queue: str) -> int | None:
        """The queue's approximate length; None when the queue does not exist (yet)."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self._service.get_queue_client(queue)
        try:
            properties = await client.get_queue_properties()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise storage_error(exc, f"reading queue {queue}") from exc
        return int(properties.approximate_message_count or 0)

    async def close(self) -> None:
        await self._service.close()


async def list_poison(connection: str, queue: str, failures: FailureLog, *, limit: int = 32) -> list[PoisonItem]:
    """Up to `limit` items of `<queue>-poison`, with the last recorded reason of each (a peek)."""
    async with _client(connection, queue + POISON_SUFFIX) as poison:
        try:
            await poison.create_queue()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise storage_error(exc, "opening a poison queue") from exc
        try:
            peeked = await poison.peek_messages(max_messages=min(limit, 32))
        except AzureError as exc:
            raise storage_error(exc, "peeking a poison queue") from exc
        out = []
        for message in peeked:
            # The poison copy is a new message: its own dequeue count says nothing of the attempts
            # the item had in its queue. The failure log counted them.
            failure = await failures.get(queue, str(message.content))
            attempts = failure.attempts if failure else int(message.dequeue_count or 0)
            out.append(PoisonItem(str(message.content), attempts, failure.reason if failure else None))
        return out


async def replay_poison(connection: str, queue: str, failures: FailureLog) -> int:
    """Move every item of `<queue>-poison` back to `queue`; returns how many moved.

    Each item is sent before it is deleted: a crash in between leaves a copy in both queues,
    and the ledger makes the second capture a no-op.
    """
    moved = 0
    async with _client(connection, queue + POISON_SUFFIX) as poison, _client(connection, queue) as target:
        for client in (poison, target):
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass
            except AzureError as exc:
                raise storage_error(exc, "opening a queue") from exc
        while True:
            try:
                batch = [m async for m in poison.receive_messages(max_messages=32, visibility_timeout=60)]
            except AzureError as exc:
                raise storage_error(exc, "reading a poison queue") from exc
            if not batch:
                return moved
            for message in batch:
                try:
                    await target.send_message(message.content)
                    await poison.delete_message(message)
                except AzureError as exc:
                    raise storage_error(exc, "replaying a poison item") from exc
                await failures.forget(queue, str(message.content))
                moved += 1


class PoisonQueues:
    """The poison queues of one storage account, with the failure log that says why each item failed."""

    def __init__(self, connection: str, failures: FailureLog) -> None:
        self._connection = connection
        self._failures = failures

    async def list(self, queue: str, limit: int) -> list[PoisonItem]:
        return await list_poison(self._connection, queue, self._failures, limit=limit)

    async def replay(self, queue: str) -> int:
        return await replay_poison(self._connection, queue, self._failures)
