"""The local Functions runner: runs the deployed `function_app.py` on one machine, without Core Tools.

The Azure Functions Core Tools cannot be installed here (their installer downloads a binary), yet
every end-to-end test has to go through the same entry points that Azure calls. So this module does
what the Functions host and the Python worker do for the bindings this product uses:

- imports `function_app` from the app directory and reads `app.get_functions()`, as the worker's
  indexing does; nothing in the app knows it runs here;
- serves HTTP triggers under `/<routePrefix>/<route>` (aiohttp), with ASP.NET's route matching;
- feeds queue triggers from Azure Queue storage (Azurite) with host.json's `extensions.queues`
  rules: batches, polling back-off, visibility timeout after a failure, poison queue after
  `maxDequeueCount` attempts, base64 or plain message encoding;
- writes queue output bindings after the function returned successfully;
- fires timer triggers on their NCRONTAB schedule (UTC) and at start when `run_on_startup`.

It adds a few admin endpoints of the real host (`/admin/host/status`, `/admin/functions`,
`POST /admin/functions/<name>`) and one of its own, `/admin/sandbox/status`, that says whether every
trigger queue is empty and nothing is running, for tests that wait for the system to settle.

    python -m sandbox.host --port 7071 [--app-dir DIR]

docs/RUNNER.md lists what it imitates and what it does not.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import contextvars
import functools
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import azure.functions as func
from aiohttp import web
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as TriggerQueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueMessage as StorageQueueMessage
from azure.storage.queue.aio import QueueClient

from sandbox.host_config import HostConfig, QueueSettings, load_host_config
from sandbox.launch import REPO_ROOT
from sandbox.ncrontab import Schedule, parse_schedule
from sandbox.routes import RouteTemplate

log = logging.getLogger("sandbox.host")

HOST_VERSION = "4.x-sandbox"
DEFAULT_CONNECTION = "AzureWebJobsStorage"
MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request limit
MIN_POLLING_INTERVAL = 0.1
SUPPORTED_BINDINGS = {"httpTrigger", "http", "queueTrigger", "queue", "timerTrigger"}

T = TypeVar("T")


class FunctionLoadError(RuntimeError):
    """The app cannot be run as the Functions host would run it; the message names the function."""


# ---------------------------------------------------------------------------------------------
# What the app registers


@dataclass(frozen=True)
class QueueBinding:
    """A queue trigger or queue output: the queue name after `%SETTING%` expansion and its connection."""

    name: str
    queue_name: str
    connection: str


@dataclass
class FunctionSpec:
    """One registered function with the bindings the runner acts on."""

    name: str
    user_function: Callable[..., Any]
    is_async: bool
    trigger_type: str
    trigger_name: str
    route: RouteTemplate | None = None
    methods: frozenset[str] | None = None
    queue_trigger: QueueBinding | None = None
    schedule: Schedule | None = None
    schedule_text: str = ""
    run_on_startup: bool = False
    queue_outputs: list[QueueBinding] = field(default_factory=list)
    wants_context: bool = False
    disabled: bool = False

    def describe(self) -> dict[str, Any]:
        """The function as `/admin/functions` reports it (names and settings only)."""
        info: dict[str, Any] = {"name": self.name, "trigger": self.trigger_type, "disabled": self.disabled}
        if self.route is not None:
            info["route"] = self.route.template
            info["methods"] = sorted(self.methods) if self.methods else None
        if self.queue_trigger is not None:
            info["queue"] = self.queue_trigger.queue_name
        if self.schedule is not None:
            info["schedule"] = self.schedule_text
            info["run_on_startup"] = self.run_on_startup
        if self.queue_outputs:
            info["queue_outputs"] = [output.queue_name for output in self.queue_outputs]
        return info


def _expand_settings(value: str, what: str, environ: Mapping[str, str]) -> str:
    """`%NAME%` binding expressions are app settings, resolved by the host before the function is indexed."""
    parts = value.split("%")
    if len(parts) % 2 == 0:
        raise FunctionLoadError(f"{what}: unbalanced % in {value!r}")
    for index in range(1, len(parts), 2):
        setting = parts[index]
        if setting not in environ:
            raise FunctionLoadError(f"{what}: app setting {setting!r} (from {value!r}) is not set")
        parts[index] = environ[setting]
    return "".join(parts)


def _is_disabled(name: str, environ: Mapping[str, str], disabled: Iterable[str]) -> bool:
    # The host's own switch: app setting `AzureWebJobs.<FunctionName>.Disabled` = true.
    flag = environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower()
    return flag in ("true", "1") or name in set(disabled)


def describe_functions(
    app: func.FunctionRegister, environ: Mapping[str, str], disabled: Iterable[str] = ()
) -> list[FunctionSpec]:
    """Read the registered functions as the worker's indexing does; refuse bindings the runner cannot serve."""
    specs: list[FunctionSpec] = []
    for function in app.get_functions():
        name = function.get_function_name()
        user_function = function.get_user_function()
        trigger = function.get_trigger()
        if trigger is None:
            raise FunctionLoadError(f"function {name!r} has no trigger")
        spec = FunctionSpec(
            name=name,
            user_function=user_function,
            is_async=inspect.iscoroutinefunction(user_function),
            trigger_type=trigger.get_binding_name(),
            trigger_name=trigger.name,
            disabled=_is_disabled(name, environ, disabled),
        )
        bound_names = set()
        for binding in function.get_bindings():
            data = binding.get_dict_repr()
            kind = data["type"]
            bound_names.add(data["name"])
            if kind not in SUPPORTED_BINDINGS:
                raise FunctionLoadError(
                    f"function {name!r}: binding type {kind!r} is not supported by the local runner "
                    f"(supported: {', '.join(sorted(SUPPORTED_BINDINGS))})"
                )
            if kind == "httpTrigger":
                route = data.get("route") or name
                spec.route = RouteTemplate.compile(route)
                methods = data.get("methods")
                spec.methods = frozenset(str(getattr(m, "value", m)).upper() for m in methods) if methods else None
            elif kind in ("queueTrigger", "queue"):
                what = f"function {name!r}, binding {data['name']!r}"
                queue = QueueBinding(
                    name=data["name"],
                    queue_name=_expand_settings(str(data["queueName"]), what, environ).lower(),
                    connection=_expand_settings(str(data.get("connection") or DEFAULT_CONNECTION), what, environ),
                )
                if kind == "queueTrigger":
                    spec.queue_trigger = queue
                else:
                    spec.queue_outputs.append(queue)
            elif kind == "timerTrigger":
                spec.schedule_text = _expand_settings(str(data["schedule"]), f"function {name!r}", environ)
                try:
                    spec.schedule = parse_schedule(spec.schedule_text)
                except ValueError as error:
                    raise FunctionLoadError(f"function {name!r}: schedule {spec.schedule_text!r}: {error}") from error
                spec.run_on_startup = bool(data.get("runOnStartup"))
        parameters = inspect.signature(user_function).parameters
        spec.wants_context = "context" in parameters and "context" not in bound_names
        unbound = [p for p in parameters if p not in bound_names and p != "context"]
        if unbound:
            # The worker refuses these too ("declared in Python but not in function.json").
            raise FunctionLoadError(f"function {name!r}: parameters {unbound} have no binding")
        specs.append(spec)
    return specs


def load_function_app(app_dir: Path) -> func.FunctionRegister:
    """Import `function_app` from `app_dir` the way the worker does: the app directory first on sys.path."""
    app_dir = app_dir.resolve()
    script = app_dir / "function_app.py"
    if not script.exists():
        raise FunctionLoadError(f"{script} does not exist")
    loaded = sys.modules.get("function_app")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() != script:
        del sys.modules["function_app"]  # another app was loaded in this process before
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module("function_app")
    registers = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(registers) != 1:
        raise FunctionLoadError(f"{script} must define exactly one FunctionApp, found {len(registers)}")
    return registers[0]


def load_local_settings(app_dir: Path, environ: MutableMapping[str, str]) -> None:
    """`Values` of local.settings.json into the environment, as Core Tools does; the environment wins."""
    path = app_dir / "local.settings.json"
    if not path.exists():
        return
    values = json.loads(path.read_text(encoding="utf-8")).get("Values") or {}
    for key, value in values.items():
        environ.setdefault(str(key), str(value))


# ---------------------------------------------------------------------------------------------
# What the worker hands to a function


class Out(func.Out[T]):
    """The value a function sets on an output binding; written only if the function succeeds."""

    def __init__(self) -> None:
        self._value: T | None = None
        self.is_set = False

    def set(self, val: T) -> None:
        self._value = val
        self.is_set = True

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


class _TraceContext:
    """W3C trace context; a fresh trace per invocation, as no caller propagates one here."""

    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext:
    """Function-level retry policies are not imitated, so this always says 'first try'."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    """`context: func.Context` for functions that ask for it."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._thread_local = threading.local()
        self._trace = _TraceContext()
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return self._trace

    @property
    def retry_context(self) -> Any:
        return self._retry


def encode_queue_message(value: Any, encoding: str) -> list[str]:
    """Queue output values as the worker's converter accepts them (str, bytes, QueueMessage, or a list)."""
    items = value if isinstance(value, list | tuple) else [value]
    bodies: list[bytes] = []
    for item in items:
        if isinstance(item, str):
            bodies.append(item.encode("utf-8"))
        elif isinstance(item, bytes | bytearray):
            bodies.append(bytes(item))
        elif isinstance(item, func.QueueMessage):
            bodies.append(item.get_body())
        else:
            raise TypeError(f"a queue output accepts str, bytes or QueueMessage, not {type(item).__name__}")
    if encoding == "base64":
        return [base64.b64encode(body).decode("ascii") for body in bodies]
    return [body.decode("utf-8") for body in bodies]


def decode_queue_message(content: str, encoding: str) -> bytes:
    """The body a trigger sees; raises ValueError for text that is not the configured encoding."""
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error as error:
            raise ValueError("message is not valid base64") from error
    return content.encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Queue triggers


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
        host: FunctionsHost,
        spec: FunctionSpec,
        client: QueueClient,
        poison: QueueClient,
        settings: QueueSettings,
        lease_seconds: float,
    ) -> None:
        self.host = host
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
        self._runner.add_done_callback(_report_crash)

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
        trigger = TriggerQueueMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        lease = _Lease(self.client, message, self.lease_seconds)
        lease.start()
        failed = False
        try:
            await self.host.invoke(
                self.spec, trigger, reason=f"message {message.id}, dequeue count {message.dequeue_count}"
            )
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
        await _ensure_queue(self.poison)
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


def _report_crash(task: asyncio.Task[Any]) -> None:
    """A poller or timer that dies stops its trigger for good; say so loudly instead of at garbage collection."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception(), exc_info=task.exception())


async def _ensure_queue(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        await client.create_queue()


# ---------------------------------------------------------------------------------------------
# The host


@dataclass
class InvocationCounters:
    running: int = 0
    succeeded: int = 0
    failed: int = 0


class FunctionsHost:
    """Runs a Functions app in this process: `async with FunctionsHost(app_dir) as host: host.base_url`."""

    def __init__(
        self,
        app_dir: Path = REPO_ROOT,
        *,
        port: int = 0,
        bind: str = "127.0.0.1",
        message_lease: float = 600.0,
        shutdown_grace: float = 10.0,
        disabled: Iterable[str] = (),
        only: Iterable[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.app_dir = app_dir.resolve()
        self.port = port
        self.bind = bind
        self.message_lease = message_lease
        self.shutdown_grace = shutdown_grace
        self.disabled = tuple(disabled)
        self.only = None if only is None else frozenset(only)
        self.environ = environ if environ is not None else os.environ
        self.state = "Default"
        self.config: HostConfig = HostConfig()
        self.functions: list[FunctionSpec] = []
        self.listeners: list[QueueListener] = []
        self.invocations: dict[str, InvocationCounters] = {}
        self._clients: dict[tuple[str, str], QueueClient] = {}
        self._web: web.AppRunner | None = None
        self._timers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._stopped = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Index the app, open the queues, listen, then fire startup timers: the host's start order."""
        try:
            await self._start()
        except BaseException:
            await self.stop()  # close what was opened before the failure
            raise

    async def _start(self) -> None:
        self.state = "Initialized"
        self.config = load_host_config(self.app_dir, self.environ)
        app = load_function_app(self.app_dir)
        self.functions = describe_functions(app, self.environ, self.disabled)
        if self.only is not None:
            unknown = self.only - {spec.name for spec in self.functions}
            if unknown:
                raise FunctionLoadError(f"--functions names functions the app does not have: {sorted(unknown)}")
            for spec in self.functions:
                spec.disabled = spec.disabled or spec.name not in self.only
        self.invocations = {spec.name: InvocationCounters() for spec in self.functions}
        workers = self.environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
        self._executor = ThreadPoolExecutor(
            max_workers=int(workers) if workers else None, thread_name_prefix="function"
        )
        await self._open_queues()
        await self._start_web()
        for listener in self.listeners:
            listener.start()
        for spec in self.functions:
            if spec.schedule is not None and not spec.disabled:
                timer = asyncio.create_task(self._run_timer(spec), name=f"timer:{spec.name}")
                timer.add_done_callback(_report_crash)
                self._timers.append(timer)
        self.state = "Running"
        log.info(
            "Host started: %d functions, listening on %s; %s",
            len(self.functions),
            self.base_url,
            ", ".join(f"{s.name} ({s.trigger_type}{', disabled' if s.disabled else ''})" for s in self.functions),
        )

    async def stop(self) -> None:
        """Stop taking work, let running invocations finish (up to shutdown_grace), then close."""
        if self.state in ("Stopped", "Default"):
            self.state = "Stopped"
            return
        self.state = "Stopping"
        for listener in self.listeners:
            await listener.stop_polling()
        for task in self._timers:
            task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        self._timers.clear()
        for listener in self.listeners:
            await listener.drain(self.shutdown_grace)
        if self._background:
            await asyncio.wait(set(self._background), timeout=self.shutdown_grace)
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.state = "Stopped"
        self._stopped.set()
        log.info("Host stopped")

    async def __aenter__(self) -> FunctionsHost:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def serve_until_signalled(self) -> None:
        """Run until SIGTERM or SIGINT, then stop cleanly (the platform sends SIGTERM on scale-in)."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested.set)
        await self.start()
        try:
            await stop_requested.wait()
        finally:
            log.info("Stop requested")
            await self.stop()

    # -- storage -------------------------------------------------------------------------------

    def _connection_string(self, setting: str) -> str:
        for name in (setting, f"AzureWebJobs{setting}"):
            value = self.environ.get(name)
            if value:
                return value
        raise FunctionLoadError(
            f"connection setting {setting!r} is not set; the local runner needs a connection string "
            "(for example Azurite's) in that app setting"
        )

    def _queue_client(self, binding: QueueBinding, queue_name: str | None = None) -> QueueClient:
        name = queue_name or binding.queue_name
        key = (binding.connection, name)
        if key not in self._clients:
            self._clients[key] = QueueClient.from_connection_string(self._connection_string(binding.connection), name)
        return self._clients[key]

    async def _open_queues(self) -> None:
        for spec in self.functions:
            if spec.disabled:
                continue
            for output in spec.queue_outputs:
                await _ensure_queue(self._queue_client(output))
            binding = spec.queue_trigger
            if binding is None:
                continue
            client = self._queue_client(binding)
            await _ensure_queue(client)
            poison = self._queue_client(binding, f"{binding.queue_name}-poison")
            self.listeners.append(QueueListener(self, spec, client, poison, self.config.queues, self.message_lease))

    async def _write_outputs(self, spec: FunctionSpec, outs: Mapping[str, Out[Any]], returned: Any) -> None:
        for binding in spec.queue_outputs:
            if binding.name == "$return":
                value = returned
            else:
                out = outs[binding.name]
                if not out.is_set:
                    continue
                value = out.get()
            if value is None:
                continue
            client = self._queue_client(binding)
            for content in encode_queue_message(value, self.config.queues.message_encoding):
                await client.send_message(content)
            for listener in self.listeners:
                if listener.queue_name == binding.queue_name and listener.spec.queue_trigger is not None:
                    listener.wake.set()

    # -- invoking ------------------------------------------------------------------------------

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, *, reason: str) -> Any:
        """Call the user function with its bindings, then write its outputs; raises what the function raised."""
        invocation_id = str(uuid.uuid4())
        counters = self.invocations[spec.name]
        kwargs: dict[str, Any] = {spec.trigger_name: trigger_value}
        outs: dict[str, Out[Any]] = {b.name: Out() for b in spec.queue_outputs if b.name != "$return"}
        kwargs.update(outs)
        if spec.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, str(self.app_dir))
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        counters.running += 1
        try:
            if spec.is_async:
                call: Awaitable[Any] = spec.user_function(**kwargs)
            else:
                assert self._executor is not None
                context = contextvars.copy_context()
                call = asyncio.get_running_loop().run_in_executor(
                    self._executor, functools.partial(context.run, spec.user_function, **kwargs)
                )
            result = await asyncio.wait_for(call, timeout=self.config.function_timeout)
            await self._write_outputs(spec, outs, result)
        except BaseException as error:
            counters.failed += 1
            elapsed = (time.perf_counter() - started) * 1000
            if isinstance(error, TimeoutError):
                log.error(
                    "Timeout value of %s exceeded by function 'Functions.%s'", self.config.function_timeout, spec.name
                )
            log.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
                spec.name,
                invocation_id,
                elapsed,
                exc_info=not isinstance(error, asyncio.CancelledError),
            )
            raise
        finally:
            counters.running -= 1
        counters.succeeded += 1
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            spec.name,
            invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        return result

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- timers --------------------------------------------------------------------------------

    async def _fire_timer(self, spec: FunctionSpec, *, past_due: bool, last: datetime | None, next_: datetime) -> None:
        now = datetime.now(UTC)
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": (last or now).isoformat(),
                "Next": next_.isoformat(),
                "LastUpdated": now.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        with contextlib.suppress(Exception):  # logged by invoke; a timer just waits for its next occurrence
            await self.invoke(spec, request, reason="Timer fired" if last else "Timer fired at startup")

    async def _run_timer(self, spec: FunctionSpec) -> None:
        assert spec.schedule is not None
        last: datetime | None = None
        if spec.run_on_startup:
            await self._fire_timer(spec, past_due=False, last=None, next_=spec.schedule.next_after(datetime.now(UTC)))
            last = datetime.now(UTC)
        while True:
            due = spec.schedule.next_after(datetime.now(UTC))
            # The loop's clock is monotonic, the schedule is wall time: a few ms of margin so that the
            # function never runs before its instant (a `next_after(now)` would then give the same instant).
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.005)
            early = (due - datetime.now(UTC)).total_seconds()
            if early > 0:
                await asyncio.sleep(early + 0.005)
            late = (datetime.now(UTC) - due).total_seconds()
            await self._fire_timer(spec, past_due=late > 1.0, last=last or due, next_=spec.schedule.next_after(due))
            last = due

    # -- HTTP ----------------------------------------------------------------------------------

    async def _start_web(self) -> None:
        application = web.Application(client_max_size=MAX_BODY_BYTES)
        application.router.add_get("/admin/host/status", self._status)
        application.router.add_get("/admin/host/ping", self._ping)
        application.router.add_get("/admin/functions", self._list_functions)
        application.router.add_post("/admin/functions/{name}", self._invoke_admin)
        application.router.add_get("/admin/sandbox/status", self._sandbox_status)
        application.router.add_route("*", "/{tail:.*}", self._http_trigger)
        self._web = web.AppRunner(application, access_log=None, handle_signals=False)
        await self._web.setup()
        site = web.TCPSite(self._web, self.bind, self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def _status(self, _request: web.Request) -> web.Response:
        body = {"id": "sandbox", "state": self.state, "version": HOST_VERSION, "processId": os.getpid()}
        return web.json_response(body, status=200 if self.state == "Running" else 503)

    async def _ping(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.state == "Running" else 503)

    async def _list_functions(self, _request: web.Request) -> web.Response:
        return web.json_response([spec.describe() for spec in self.functions])

    async def _invoke_admin(self, request: web.Request) -> web.Response:
        """`POST /admin/functions/<name>` with `{"input": "..."}` runs a non-HTTP function now, as the host does."""
        spec = next((s for s in self.functions if s.name == request.match_info["name"]), None)
        if spec is None or spec.trigger_type == "httpTrigger":
            return web.json_response({"error": "no such non-HTTP function"}, status=404)
        try:
            document = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return web.json_response({"error": 'body must be JSON: {"input": "..."}'}, status=400)
        text = str((document or {}).get("input") or "")
        trigger: Any
        if spec.trigger_type == "timerTrigger":
            trigger = TimerRequest(past_due=False)
        else:
            now = datetime.now(UTC)
            trigger = TriggerQueueMessage(
                id=str(uuid.uuid4()), body=text.encode("utf-8"), dequeue_count=1, insertion_time=now, pop_receipt=""
            )

        async def run() -> None:
            with contextlib.suppress(Exception):
                await self.invoke(spec, trigger, reason="This function was programmatically called via the host APIs.")

        self._spawn(run())
        return web.Response(status=202)

    async def _sandbox_status(self, _request: web.Request) -> web.Response:
        """Per trigger queue: messages still there, in flight, settled; `idle` when all is quiet."""
        queues: dict[str, Any] = {}
        idle = True
        for listener in self.listeners:
            counters = listener.counters
            try:
                waiting = (await listener.client.get_queue_properties()).approximate_message_count or 0
                poison = await _message_count(listener.poison)
            except AzureError:
                waiting, poison = -1, -1
            queues[listener.queue_name] = {
                "function": listener.spec.name,
                "approximate_message_count": waiting,
                "poison_message_count": poison,
                "in_flight": counters.in_flight,
                "succeeded": counters.succeeded,
                "failed": counters.failed,
                "poisoned": counters.poisoned,
            }
            idle = idle and waiting == 0 and counters.in_flight == 0
        running = sum(c.running for c in self.invocations.values())
        return web.json_response(
            {
                "state": self.state,
                "idle": idle and running == 0 and not self._background,
                "queues": queues,
                "invocations": {name: vars(c) for name, c in self.invocations.items()},
            }
        )

    def _find_route(self, method: str, raw_path: str) -> tuple[FunctionSpec, dict[str, str]] | None:
        prefix = self.config.route_prefix
        if prefix:
            head = f"/{prefix}"
            if raw_path.lower() != head.lower() and not raw_path.lower().startswith(head.lower() + "/"):
                return None
            raw_path = raw_path[len(head) :]
        candidates = sorted(
            (s for s in self.functions if s.route is not None and not s.disabled),
            key=lambda s: s.route.sort_key() if s.route else ((), 0),
        )
        for spec in candidates:
            assert spec.route is not None
            params = spec.route.match(raw_path)
            if params is None:
                continue
            if spec.methods is not None and method not in spec.methods:
                continue
            return spec, params
        return None

    async def _http_trigger(self, request: web.Request) -> web.StreamResponse:
        if self.state != "Running":
            return web.Response(status=503, text="host is not running")
        found = self._find_route(request.method, request.rel_url.raw_path)
        if found is None:
            return web.Response(status=404)
        spec, route_params = found
        body = await request.read()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params={key: request.query[key] for key in request.query},
            route_params=route_params,
            body=body,
        )
        try:
            result = await self.invoke(
                spec, http_request, reason=f"HTTP {request.method} {spec.route.template if spec.route else ''}"
            )
        except Exception:
            return web.Response(status=500)
        return _to_web_response(result)


def _to_web_response(result: Any) -> web.Response:
    """The function's return value as the host's HTTP output binding sends it."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(status=200, body=result.encode("utf-8"), content_type="text/plain", charset="utf-8")
    if not isinstance(result, func.HttpResponse):
        log.error("HTTP function returned %s, not HttpResponse", type(result).__name__)
        return web.Response(status=500)
    headers: dict[str, str] = {}
    for name, value in result.headers.items():
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            continue
        headers[name] = value
    if not any(name.lower() == "content-type" for name in headers):
        mimetype = result.mimetype
        headers["Content-Type"] = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
    return web.Response(status=result.status_code, body=result.get_body(), headers=headers)


async def _message_count(client: QueueClient) -> int:
    try:
        return (await client.get_queue_properties()).approximate_message_count or 0
    except ResourceNotFoundError:
        return 0


# ---------------------------------------------------------------------------------------------
# Command line


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The storage SDK logs every request's headers at INFO; the host's own lines say what matters.
    logging.getLogger("azure").setLevel(max(level, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """`python -m sandbox.host --port P [--app-dir DIR]`: run until SIGTERM/SIGINT; 0 on a clean stop."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.host", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (Core Tools uses 7071)")
    parser.add_argument("--app-dir", type=Path, default=REPO_ROOT, help="folder with function_app.py and host.json")
    parser.add_argument(
        "--message-lease",
        type=float,
        default=600.0,
        help="seconds a received queue message stays invisible while it runs, renewed at half (host: 600)",
    )
    parser.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds running invocations get at stop")
    parser.add_argument("--disable", action="append", default=[], metavar="FUNCTION", help="do not run this function")
    parser.add_argument(
        "--functions", nargs="+", metavar="FUNCTION", help="run only these functions (as `func start --functions`)"
    )
    args = parser.parse_args(argv)
    app_dir: Path = args.app_dir.resolve()
    load_local_settings(app_dir, os.environ)
    try:
        config = load_host_config(app_dir)
    except ValueError as error:
        print(f"sandbox.host: {error}", file=sys.stderr)
        return 2
    _configure_logging(config.log_level)
    host = FunctionsHost(
        app_dir,
        port=args.port,
        message_lease=args.message_lease,
        shutdown_grace=args.shutdown_grace,
        disabled=args.disable,
        only=args.functions,
    )
    try:
        asyncio.run(host.serve_until_signalled())
    except (FunctionLoadError, ValueError) as error:
        log.error("Host could not start: %s", error)
        return 1
    except AzureError as error:
        log.error("Host could not start: storage is unreachable (%s: %s)", type(error).__name__, error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
