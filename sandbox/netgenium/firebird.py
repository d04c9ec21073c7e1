"""A private Firebird 3 server for tests, benchmarks and the sandbox: own config, port and databases.

Debian's `firebird3.0-server` installs the server (`/usr/sbin/firebird`) and may or may not start
its own service; this does not depend on it. It makes a root directory of its own (symlinks to the
installed plugins and messages, and its own `firebird.conf` with a free loopback port, its own
lock and temporary folders, and its own security database), creates SYSDBA with a random
password through the embedded engine (`isql-fb` with `FIREBIRD` pointing at that root, so no
server and no interactive prompt is involved), and starts the SuperServer process with that root.
Every database it creates is fresh and holds the NET Genium-like tables of the schema map.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from crm_core.netgenium.schema_map import SchemaMap, default_schema_map
from sandbox.launch import free_port

SERVER_BINARIES = ("/usr/sbin/firebird", "/opt/firebird/bin/firebird")
ISQL_BINARIES = ("/usr/bin/isql-fb", "/opt/firebird/bin/isql")
INSTALL_ROOTS = ("/usr/lib/*/firebird/3.0", "/opt/firebird")
_LINKED = ("plugins", "intl", "firebird.msg", "UDF", "lib")


class FirebirdUnavailable(RuntimeError):
    """Firebird is not installed here (or would not start); the message says what to install."""


def _first(candidates: tuple[str, ...], what: str) -> str:
    for pattern in candidates:
        for found in sorted(glob.glob(pattern)):
            if os.path.exists(found):
                return found
    raise FirebirdUnavailable(f"no {what} found ({', '.join(candidates)}): apt-get install firebird3.0-server")


def firebird_installed() -> bool:
    """Whether the server and its tools are on this machine."""
    try:
        _first(SERVER_BINARIES, "Firebird server")
        _first(ISQL_BINARIES, "isql-fb")
    except FirebirdUnavailable:
        return False
    return True


class FirebirdServer:
    """`with FirebirdServer() as fb: url = fb.create_database("test")` — stopped and removed on exit."""

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.password = secrets.token_hex(12)
        self.startup_timeout = startup_timeout
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        assert self.root is not None
        return {
            **os.environ,
            "FIREBIRD": str(self.root),
            "FIREBIRD_LOCK": str(self.root / "lock"),
            "FIREBIRD_TMP": str(self.root / "tmp"),
        }

    def _make_root(self) -> Path:
        install = Path(_first(INSTALL_ROOTS, "Firebird installation"))
        root = Path(tempfile.mkdtemp(prefix="crm-firebird-"))
        for folder in ("lock", "tmp", "data"):
            (root / folder).mkdir()
        for name in _LINKED:
            if (install / name).exists():
                (root / name).symlink_to(install / name)
        plugins = install / "plugins.conf"
        (root / "plugins.conf").write_text(plugins.read_text("utf-8") if plugins.exists() else "", "utf-8")
        (root / "databases.conf").write_text("", "utf-8")
        (root / "firebird.conf").write_text(
            "\n".join(
                [
                    f"RemoteServicePort = {self.port}",
                    "RemoteBindAddress = 127.0.0.1",
                    f"SecurityDatabase = {root / 'security3.fdb'}",
                    "ServerMode = Super",
                    f"IpcName = crm_fb_{self.port}",
                    "AuthServer = Srp",
                    "UserManager = Srp",
                    "WireCrypt = Enabled",
                    "DefaultDbCachePages = 2048",
                    "",
                ]
            ),
            "utf-8",
        )
        return root

    def start(self) -> FirebirdServer:
        """Make the root, SYSDBA, and start the server; ready when its port accepts connections."""
        server = _first(SERVER_BINARIES, "Firebird server")
        isql = _first(ISQL_BINARIES, "isql-fb")
        self.root = self._make_root()
        script = (
            f"create database '{self.root / 'security3.fdb'}';\n"
            f"create user SYSDBA password '{self.password}';\ncommit;\nquit;\n"
        )
        made = subprocess.run(  # noqa: S603 - the installed isql, no shell
            [isql, "-q", "-user", "SYSDBA"], input=script.encode(), env=self._env(), capture_output=True, check=False
        )
        if made.returncode != 0 or not (self.root / "security3.fdb").exists():
            self.stop()
            raise FirebirdUnavailable(f"could not create the security database: {made.stderr.decode()[-500:]}")
        self.process = subprocess.Popen(  # noqa: S603 - the installed server, no shell
            [server], env=self._env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                self.stop()
                raise FirebirdUnavailable(f"the Firebird server exited: {error[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise FirebirdUnavailable(f"the Firebird server did not listen on {self.port} within {self.startup_timeout}s")

    def url(self, name: str) -> str:
        """The SQLAlchemy URL of a database of this server."""
        assert self.root is not None
        path = self.root / "data" / f"{name}.fdb"
        return f"firebird+firebird://SYSDBA:{self.password}@127.0.0.1:{self.port}/{path}?charset=UTF8"

    def create_database(self, name: str, schema_map: SchemaMap | None = None) -> str:
        """A fresh database with NET Genium-like tables; its URL."""
        import sqlalchemy as sa
        from firebird.driver import create_database

        from sandbox.netgenium.ddl import create_tables

        assert self.root is not None
        dsn = f"inet://127.0.0.1:{self.port}/{self.root / 'data' / name}.fdb"
        create_database(dsn, user="SYSDBA", password=self.password, charset="UTF8", overwrite=True).close()
        url = self.url(name)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            create_tables(engine, schema_map or default_schema_map())
        finally:
            engine.dispose()
        return url

    def stop(self) -> None:
        """Stop the server and remove its root (databases included)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> FirebirdServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
