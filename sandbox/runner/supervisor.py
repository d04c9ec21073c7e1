"""The runner with its worker in a separate process that can be killed and started again.

On Azure the Functions host and the Python worker are separate processes, and either can die: the
worker when the function crashes it or runs out of memory, the whole instance when the platform
recycles or scales it in. What survives such a death is what the service keeps outside the
process: queue messages come back when their visibility lease ends, table rows stay. To test that,
`python -m sandbox.runner --worker-process` (or the app setting `SANDBOX_RUNNER_WORKER_PROCESS=1`)
starts this supervisor instead of the host: it owns the public port and runs the host and the app
(the ordinary runner) as a child process on a private port, forwarding every request to it.

    POST /admin/sandbox/worker/kill     {"restart_after": 2}  SIGKILL the child; start a new one after N s
    POST /admin/sandbox/worker/restart                          SIGTERM (graceful), then start a new one
    GET  /admin/sandbox/worker                                  {"pid", "state", "kills", "restarts", ...}

A killed child gets no grace: its running invocations stop in the middle, their queue messages stay
invisible until their lease ends (`--message-lease`, or the app setting
`SANDBOX_RUNNER_MESSAGE_LEASE`; the host's is 10 minutes), the rows it claimed stay claimed. While
no child runs, `/api/...` answers 503 (Graph retries a notification that got one), and
`/admin/sandbox/status` says `"state": "Restarting"`, `"idle": false`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.launch import REPO_ROOT, free_port

log = logging.getLogger("sandbox.runner.supervisor")

WORKER_SETTING = "SANDBOX_RUNNER_WORKER_PROCESS"
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "proxy-connection"}
)
MAX_BODY_BYTES = 100 * 1024 * 1024


class Worker:
    """The child runner process: started, health-checked, killed, started again."""

    def __init__(self, runner_args: Sequence[str], startup_timeout: float = 60.0) -> None:
        self.runner_args = list(runner_args)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.state = "Starting"
        self.kills = 0
        self.restarts = 0
        self.last_killed_pid: int | None = None
        self._lock = asyncio.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k != WORKER_SETTING}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own module, no shell; Popen returns at once
            [sys.executable, "-m", "sandbox.runner", "--port", str(self.port), *self.runner_args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=None,  # the child's log lines go where the supervisor's go
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.state = "Stopped"
                raise RuntimeError(f"the worker process exited with {self.process.returncode} at start")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{self.base_url}/admin/host/status", timeout=aiohttp.ClientTimeout(2)) as r:
                    if r.status == 200:
                        self.state = "Running"
                        log.info("worker process %d running on port %d", self.process.pid, self.port)
                        return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the worker process did not start within {self.startup_timeout}s")

    async def kill(self, session: aiohttp.ClientSession, restart_after: float) -> dict[str, Any]:
        """SIGKILL now (no grace, as a crashed process), then a new worker after `restart_after` s."""
        async with self._lock:
            killed = self.pid
            if self.process is not None and killed is not None:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
            self.state = "Restarting"
            self.kills += 1
            self.last_killed_pid = killed
            log.warning("worker process %s killed; a new one starts in %.1fs", killed, restart_after)
        task = asyncio.create_task(self._start_later(session, restart_after))
        task.add_done_callback(_report)
        return {"killed_pid": killed, "restart_after": restart_after}

    async def restart(self, session: aiohttp.ClientSession, grace: float = 15.0) -> dict[str, Any]:
        """SIGTERM (the host's graceful stop), then a new worker at once."""
        async with self._lock:
            old = self.pid
            self.state = "Restarting"
            if self.process is not None and old is not None:
                self.process.terminate()
                try:
                    await asyncio.wait_for(asyncio.to_thread(self.process.wait), grace)
                except TimeoutError:
                    self.process.kill()
                    await asyncio.to_thread(self.process.wait)
            await self.start(session)
            self.restarts += 1
        return {"stopped_pid": old, "pid": self.pid}

    async def _start_later(self, session: aiohttp.ClientSession, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock:
            if self.state != "Restarting":
                return
            await self.start(session)
            self.restarts += 1

    def stop(self, grace: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def describe(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "state": self.state,
            "port": self.port,
            "kills": self.kills,
            "restarts": self.restarts,
            "last_killed_pid": self.last_killed_pid,
            "supervisor_pid": os.getpid(),
        }


_PRCTL: Any = None
with contextlib.suppress(OSError, AttributeError):  # loaded in the parent: the child only calls it
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies, however it dies (Linux), so that
    a supervisor killed by its own caller leaves no worker behind."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the worker process could not be started again: %s", task.exception())


class Supervisor:
    def __init__(self, port: int, runner_args: Sequence[str], shutdown_grace: float) -> None:
        self.port = port
        self.worker = Worker(runner_args)
        self.shutdown_grace = shutdown_grace
        self.session: aiohttp.ClientSession | None = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/admin/sandbox/worker", self.describe)
        app.router.add_post("/admin/sandbox/worker/kill", self.kill)
        app.router.add_post("/admin/sandbox/worker/restart", self.restart)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        return app

    async def describe(self, _request: web.Request) -> web.Response:
        return web.json_response(self.worker.describe())

    async def kill(self, request: web.Request) -> web.Response:
        assert self.session is not None
        body: Any = {}
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                body = await request.json()
        delay = body.get("restart_after", 0) if isinstance(body, dict) else 0
        if not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay <= 3600:
            return web.json_response({"error": "restart_after is a number of seconds from 0 to 3600"}, status=400)
        return web.json_response(await self.worker.kill(self.session, float(delay)))

    async def restart(self, _request: web.Request) -> web.Response:
        assert self.session is not None
        return web.json_response(await self.worker.restart(self.session, self.shutdown_grace + 5))

    async def forward(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        if self.worker.state != "Running":
            return self._unavailable(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        try:
            async with self.session.request(
                request.method,
                f"{self.worker.base_url}{request.rel_url}",
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
                out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(status=answer.status, body=content, headers=out_headers)
        except (aiohttp.ClientError, ConnectionError):
            # The worker died while this request was in flight: the caller sees what a crashed
            # worker gives it, a server error.
            return self._unavailable(request)

    def _unavailable(self, request: web.Request) -> web.Response:
        if request.path == "/admin/sandbox/status":
            return web.json_response({"state": "Restarting", "idle": False, "queues": {}, "invocations": {}})
        return web.Response(status=503, headers={"Retry-After": "1"}, text="the worker process is restarting")

    async def serve(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300))
        runner: web.AppRunner | None = None
        try:
            await self.worker.start(self.session)
            runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            log.info("supervisor on port %d, worker process %s", self.port, self.worker.pid)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await asyncio.to_thread(self.worker.stop, self.shutdown_grace + 5)
            if runner is not None:
                await runner.cleanup()
            await self.session.close()


def strip_supervisor_args(argv: Sequence[str]) -> list[str]:
    """The command line for the child: the same options, without the port and `--worker-process`."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--port":
            skip = True
            continue
        if arg.startswith("--port=") or arg == "--worker-process":
            continue
        out.append(arg)
    return out


def run_supervisor(port: int, argv: Sequence[str], shutdown_grace: float) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(Supervisor(port, strip_supervisor_args(argv), shutdown_grace).serve())
    except RuntimeError as error:
        log.error("supervisor could not start: %s", error)
        return 1
    return 0
