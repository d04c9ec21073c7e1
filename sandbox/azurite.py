"""Azurite (the Azure Storage emulator from npm) as a real process on free loopback ports.

The service keeps its state in Table storage and moves work through Queue storage; tests and the
sandbox have to exercise the same SDK calls against a real server, not a fake. Azurite is pinned in
package.json (3.35.0 is the last line that runs on Node 20) and installed with `npm ci`.

It runs in memory (nothing left on disk, every start is empty), bound to 127.0.0.1 only,
with `--loose` and `--skipApiVersionCheck` so that newer SDKs than the emulator knows are accepted,
and with telemetry off.

    with Azurite() as storage:
        os.environ["AzureWebJobsStorage"] = storage.connection_string

In pytest, `from sandbox.azurite import azurite` in a conftest.py gives a session-scoped fixture.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from sandbox.launch import REPO_ROOT, free_port

PINNED_VERSION = "3.35.0"

# The emulator's well-known development account; public, documented by Microsoft, not a secret.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteNotInstalledError(RuntimeError):
    """Azurite is not in node_modules (or is the wrong version); the message says how to install it."""


class Azurite:
    """One Azurite process serving blob, queue and table on three free loopback ports."""

    def __init__(self, *, root: Path = REPO_ROOT, startup_timeout: float = 30.0) -> None:
        self.root = root
        self.startup_timeout = startup_timeout
        self.blob_port = 0
        self.queue_port = 0
        self.table_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._workspace: tempfile.TemporaryDirectory[str] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the emulator

    @property
    def executable(self) -> Path:
        return self.root / "node_modules" / ".bin" / "azurite"

    def _check_installed(self) -> None:
        package = self.root / "node_modules" / "azurite" / "package.json"
        if not self.executable.exists() or not package.exists():
            raise AzuriteNotInstalledError(
                f"Azurite is not installed in {self.root / 'node_modules'}; run `npm ci` in {self.root} "
                f"(package.json pins azurite {PINNED_VERSION}, Node 20 or later)"
            )
        version = json.loads(package.read_text(encoding="utf-8")).get("version")
        if version != PINNED_VERSION:
            raise AzuriteNotInstalledError(
                f"node_modules holds azurite {version}, package.json pins {PINNED_VERSION}; run `npm ci` in {self.root}"
            )
        if shutil.which("node") is None:
            raise AzuriteNotInstalledError("Azurite needs Node.js (20 or later) on PATH; `node` was not found")

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{ACCOUNT_NAME}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{ACCOUNT_NAME}"

    @property
    def table_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.table_port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """What `AzureWebJobsStorage` holds when the app talks to this emulator."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )

    def start(self) -> Azurite:
        """Start and wait until all three services accept connections; retried on a port taken meanwhile."""
        self._check_installed()
        last_error: RuntimeError | None = None
        for _attempt in range(3):
            try:
                self._start_once()
                return self
            except _PortRaceError as error:
                last_error = error
        raise RuntimeError(f"Azurite did not start: {last_error}")

    def _start_once(self) -> None:
        self.blob_port, self.queue_port, self.table_port = _distinct_free_ports(3)
        # In memory, but Azurite may still write a debug log or lock file into its working directory.
        self._workspace = tempfile.TemporaryDirectory(prefix="azurite-")
        command = [
            str(self.executable),
            "--inMemoryPersistence",
            "--silent",
            "--loose",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.blob_port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(self.queue_port),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(self.table_port),
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our pinned binary, no shell
            command, cwd=self._workspace.name, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.startup_timeout
        waiting = [self.blob_port, self.queue_port, self.table_port]
        while waiting:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self._cleanup()
                if "EADDRINUSE" in tail:
                    raise _PortRaceError(tail)
                raise RuntimeError(f"Azurite exited with {self.process and self.process.returncode}: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not accept connections within {self.startup_timeout}s")
            if _accepts(waiting[0]):
                waiting.pop(0)
            else:
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (Azurite closes its servers on it), then SIGKILL if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._workspace is not None:
            self._workspace.cleanup()
            self._workspace = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        """What Azurite printed (startup lines and errors; access logs are off)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _PortRaceError(RuntimeError):
    """Another process took a port between our probe and Azurite's bind."""


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def azurite_process() -> Iterator[Azurite]:
    """A generator for `pytest.fixture(...)` with the scope the caller wants; stops Azurite afterwards."""
    with Azurite() as server:
        yield server


try:
    import pytest
except ImportError:  # production installs have no pytest; only tests need the fixture
    pass
else:
    azurite = pytest.fixture(scope="session", name="azurite")(azurite_process)
