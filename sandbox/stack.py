"""The whole service on one machine: Azurite, both emulators, and the local runner with the real
function_app.py, wired together over loopback HTTP exactly as Azure wires the deployed app.

    with SandboxStack(directory) as stack:
        stack.deliver([...])
        stack.settle()
        print(stack.report())

The runner gets the app settings a deployment would give it, pointed at the emulators; the app
subscribes to the CRM mailbox by itself (its upkeep timer runs on start), and every delivered mail
travels Graph emulator → webhook → queue → capture worker → NET Genium emulator.

The Graph emulator behaves as Graph's documentation says Graph may behave at worst (delta items in
any order, updated items with only what changed, tokens that expire, pages that take time) unless
`graph_profile="ideal"`; `seed` seeds everything random in it (`SandboxStack.default_seed` when
not given, so that a test suite can make every stack it starts repeatable).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Literal

import httpx

from crm_core.domain.directory import DirectoryFile
from crm_core.netgenium.schema_map import load_schema_map
from crm_core.storage.ledger import CaptureLedger, LedgerEntry, LedgerState
from crm_core.storage.subscriptions import SubscriptionStore
from crm_core.storage.tables import TableStorage
from sandbox.azurite import Azurite
from sandbox.launch import REPO_ROOT, ServerProcess, free_port
from sandbox.netgenium.firebird import FirebirdServer
from sandbox.runner.status import SandboxStatus

GRAPH_TOKEN = "sandbox-graph-token"  # noqa: S105 - the emulator's fixed bearer token, loopback only
NETGENIUM_KEY = "sandbox-netgenium-key"


class SandboxError(RuntimeError):
    """The sandbox could not start or settle; the message says which part and why."""


def _records(entity: str, items: Iterable[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Directory records as rows of the schema map's tables, ids kept."""
    mapping = load_schema_map(None).entities()[entity]
    rows = []
    for item in items:
        row: dict[str, Any] = {"id": item["id"]}
        for logical, value in item.items():
            if logical == "id" or value is None:
                continue
            logical_name = "company" if logical == "company_id" else logical
            row[mapping.column(logical_name).name] = value
        rows.append(row)
    return mapping.table, rows


GraphProfile = Literal["real", "ideal"]
NetGeniumBackend = Literal["sqlite", "firebird"]
# How the app reaches NET Genium: the record API over HTTP (the emulator), or direct mode on the
# emulator's own Firebird database (NETGENIUM_DATABASE_URL), the emulator kept for the admin API.
NetGeniumMode = Literal["http", "direct"]


class SandboxStack:
    """Starts and stops every process of the local service; talks to each over HTTP."""

    default_seed: ClassVar[int] = 0

    def __init__(
        self,
        directory: DirectoryFile,
        *,
        graph_latency_ms: int = 0,
        netgenium_latency_ms: int = 0,
        app_settings: Mapping[str, str] | None = None,
        runners: int = 1,
        graph_profile: GraphProfile = "real",
        seed: int | None = None,
        netgenium: NetGeniumBackend = "sqlite",
        netgenium_mode: NetGeniumMode = "http",
    ) -> None:
        if graph_profile not in ("real", "ideal"):
            raise ValueError(f"graph_profile must be 'real' or 'ideal', not {graph_profile!r}")
        if netgenium_mode == "direct" and netgenium != "firebird":
            raise ValueError("direct mode needs a database server the app can reach: netgenium='firebird'")
        self.netgenium_mode = netgenium_mode
        self.directory = directory
        self.graph_profile = graph_profile
        self.seed = self.default_seed if seed is None else seed
        self.mailbox = directory.crm_address.strip().lower()
        self.graph_latency_ms = graph_latency_ms
        self.netgenium_latency_ms = netgenium_latency_ms
        self.extra_settings = dict(app_settings or {})
        self.runner_count = runners
        self.azurite: Azurite | None = None
        self.netgenium_backend = netgenium
        self.firebird: FirebirdServer | None = None
        self.netgenium: ServerProcess | None = None
        self.graph: ServerProcess | None = None
        self.runners: list[ServerProcess] = []
        self.delivered: list[str] = []
        self._http = httpx.Client(timeout=30)

    # ---- start and stop ------------------------------------------------------------------------

    def start(self) -> SandboxStack:
        try:
            self.azurite = Azurite().start()
            self.netgenium = ServerProcess(
                "sandbox.netgenium", [*self.netgenium_db(), "--api-key", NETGENIUM_KEY], health_path="/api/v1/health"
            ).start()
            self.graph = ServerProcess("sandbox.graph", self.graph_args(), health_path="/_admin/health").start()
            self._seed()
            for index in range(self.runner_count):
                self.runners.append(self._start_runner(primary=index == 0))
            if self.runner_count:  # none: the emulators and storage only, for code that drives crm_core itself
                self._wait_for_subscription()
        except BaseException:
            self.stop()
            raise
        return self

    def netgenium_db(self) -> list[str]:
        """The NET Genium emulator's database: SQLite in memory, or a fresh one on a private Firebird server."""
        if self.netgenium_backend == "sqlite":
            return ["--db", ":memory:"]
        self.firebird = FirebirdServer().start()
        return ["--db", self.firebird.create_database("netgenium"), "--time-zone", "Europe/Prague"]

    def graph_args(self) -> list[str]:
        """The Graph emulator's command line: its token, its seed, and `--ideal` for the happy path."""
        args = ["--token", GRAPH_TOKEN, "--seed", str(self.seed)]
        return [*args, "--ideal"] if self.graph_profile == "ideal" else args

    def app_settings(self, port: int) -> dict[str, str]:
        """The app settings a deployment would set, pointed at the local emulators."""
        assert self.azurite and self.netgenium and self.graph
        base = f"http://127.0.0.1:{port}/api"
        return {
            "CRM_MAILBOX": self.mailbox,
            "CRM_NOTIFICATION_URL": f"{base}/notifications",
            "CRM_LIFECYCLE_URL": f"{base}/lifecycle",
            "CRM_ORDER_KEYWORDS": ",".join(self.directory.order_keywords),
            "CRM_EXCLUDED_ADDRESSES": ",".join(self.directory.excluded),
            "GRAPH_AUTH": "static_token",
            "GRAPH_STATIC_TOKEN": GRAPH_TOKEN,
            "GRAPH_BASE_URL": f"{self.graph.base_url}/v1.0",
            **self.netgenium_settings(),
            "AzureWebJobsStorage": self.azurite.connection_string,
            **self.extra_settings,
        }

    def netgenium_settings(self) -> dict[str, str]:
        """NETGENIUM_BASE_URL and its key, or in direct mode the emulator's database URL."""
        assert self.netgenium is not None
        if self.netgenium_mode == "direct":
            assert self.firebird is not None
            return {"NETGENIUM_DATABASE_URL": self.firebird.url("netgenium"), "CRM_CALENDAR_TIME_ZONE": "Europe/Prague"}
        return {"NETGENIUM_BASE_URL": self.netgenium.base_url, "NETGENIUM_API_KEY": NETGENIUM_KEY}

    def _start_runner(self, *, primary: bool) -> ServerProcess:
        port = free_port()
        # Timers are not singletons in the runner: only the first runner fires them.
        args = ["--app-dir", str(REPO_ROOT), "--shutdown-grace", "5"]
        if not primary:
            args += ["--disable", "subscription_upkeep", "--disable", "reconcile"]
        runner = ServerProcess(
            "sandbox.runner", args, port=port, health_path="/admin/host/status", env=self.app_settings(port)
        )
        return runner.start()

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        self.runners.clear()
        for server in (self.graph, self.netgenium):
            if server is not None:
                server.stop()
        if self.firebird is not None:
            self.firebird.stop()
            self.firebird = None
        if self.azurite is not None:
            self.azurite.stop()
        self.graph = self.netgenium = None
        self.azurite = None
        self._http.close()

    def __enter__(self) -> SandboxStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- set-up --------------------------------------------------------------------------------

    def _seed(self) -> None:
        assert self.netgenium and self.graph
        for entity, items in (
            ("users", [u.model_dump() for u in self.directory.users]),
            ("contacts", [c.model_dump() for c in self.directory.contacts]),
            ("orders", [o.model_dump() for o in self.directory.orders]),
        ):
            if not items:
                continue
            table, rows = _records(entity, items)
            answer = self._http.post(f"{self.netgenium.base_url}/_admin/seed", json={"table": table, "records": rows})
            if answer.status_code != 200:
                raise SandboxError(f"seeding NET Genium {table} failed: {answer.status_code} {answer.text[:300]}")
        people = [(self.mailbox, "CRM mailbox")]
        people += [(u.email.strip().lower(), u.name or u.email) for u in self.directory.users]
        for address, name in dict(people).items():
            answer = self._http.post(
                f"{self.graph.base_url}/_admin/users",
                json={"userPrincipalName": address, "mail": address, "displayName": name},
            )
            if answer.status_code not in (200, 201, 409):
                raise SandboxError(f"creating Graph user {address} failed: {answer.status_code} {answer.text[:300]}")
        if self.graph_latency_ms:
            self.graph_faults(latencyMs=self.graph_latency_ms)
        if self.netgenium_latency_ms:
            self.netgenium_faults(latency_ms=self.netgenium_latency_ms)

    def _wait_for_subscription(self, timeout: float = 30.0) -> None:
        """Until Graph has a live subscription and the app has saved it (before that, the webhook
        does not know its id yet, and the start-up reconciliation is still to run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = {s["id"] for s in self.graph_subscriptions() if s.get("active")}
            if active and self._saved_subscription_ids() & active and self.quiet():
                return
            time.sleep(0.1)
        tail = self.runners[0].log_tail() if self.runners else ""
        raise SandboxError(f"the app did not subscribe to the CRM mailbox within {timeout}s: {tail[-1500:]}")

    def _saved_subscription_ids(self) -> set[str]:
        assert self.azurite
        connection = self.azurite.connection_string

        async def read() -> set[str]:
            async with TableStorage.from_connection_string(connection) as storage:
                return {r.id for r in await SubscriptionStore(storage).all() if r.kind == "mail"}

        return asyncio.run(read())

    # ---- the emulators' admin APIs -------------------------------------------------------------

    def graph_subscriptions(self) -> list[dict[str, Any]]:
        assert self.graph
        value: list[dict[str, Any]] = self._http.get(f"{self.graph.base_url}/_admin/subscriptions").json()["value"]
        return value

    def graph_admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        assert self.graph
        return self._http.request(method, f"{self.graph.base_url}/_admin/{path.lstrip('/')}", **kwargs)

    def netgenium_admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        assert self.netgenium
        return self._http.request(method, f"{self.netgenium.base_url}/_admin/{path.lstrip('/')}", **kwargs)

    def graph_faults(self, **faults: Any) -> None:
        self.graph_admin("POST", "faults", json=faults).raise_for_status()

    def netgenium_faults(self, **faults: Any) -> None:
        self.netgenium_admin("POST", "faults", json=faults).raise_for_status()

    def request_counts(self) -> dict[str, int]:
        """Requests each emulator served, all operations together (admin calls not counted)."""
        graph = self.graph_admin("GET", "stats").json()["requests"]
        netgenium = self.netgenium_admin("GET", "counts").json()["counts"]
        return {"graph": sum(graph.values()), "netgenium": sum(netgenium.values())}

    def reset_counts(self) -> None:
        self.graph_admin("DELETE", "stats").raise_for_status()
        self.netgenium_admin("POST", "reset", json={"data": False}).raise_for_status()
        if self.netgenium_latency_ms:
            self.netgenium_faults(latency_ms=self.netgenium_latency_ms)

    def netgenium_records(self, table: str = "ng_activities") -> list[dict[str, Any]]:
        """Every record of a table, through the record API itself."""
        assert self.netgenium
        records: list[dict[str, Any]] = []
        params: dict[str, str] = {"top": "1000"}
        while True:
            answer = self._http.get(
                f"{self.netgenium.base_url}/api/v1/tables/{table}/records",
                params=params,
                headers={"X-Api-Key": NETGENIUM_KEY},
            )
            answer.raise_for_status()
            page = answer.json()
            records.extend(page["records"])
            if not page.get("continuation"):
                return records
            params = {"top": "1000", "continuation": page["continuation"]}

    # ---- mail ----------------------------------------------------------------------------------

    def deliver(self, message: Mapping[str, Any] | bytes) -> dict[str, Any]:
        """Put one mail into the CRM mailbox (Graph JSON, or RFC 822 bytes), as Exchange would."""
        assert self.graph
        url = f"{self.graph.base_url}/_admin/users/{self.mailbox}/messages"
        if isinstance(message, bytes):
            answer = self._http.post(url, content=message, headers={"Content-Type": "message/rfc822"})
        else:
            answer = self._http.post(url, json=dict(message))
        if answer.status_code != 201:
            raise SandboxError(f"delivering a mail failed: {answer.status_code} {answer.text[:300]}")
        created: dict[str, Any] = answer.json()
        self.delivered.append(str(created.get("internetMessageId") or f"graph-id:{created['id']}").strip())
        return created

    def runner_status(self, runner: int = 0) -> SandboxStatus:
        status: SandboxStatus = self._http.get(f"{self.runners[runner].base_url}/admin/sandbox/status").json()
        return status

    def run_function(self, name: str, runner: int = 0) -> None:
        """Run a timer or queue function now, as the host's admin API does."""
        answer = self._http.post(f"{self.runners[runner].base_url}/admin/functions/{name}", json={"input": ""})
        if answer.status_code != 202:
            raise SandboxError(f"running {name} failed: {answer.status_code} {answer.text[:300]}")

    def ledger_entries(self) -> list[LedgerEntry]:
        assert self.azurite
        connection = self.azurite.connection_string

        async def read() -> list[LedgerEntry]:
            async with TableStorage.from_connection_string(connection) as storage:
                return await CaptureLedger(storage).entries()

        return asyncio.run(read())

    def mail_subscription(self) -> tuple[str, str]:
        """The id and clientState secret of the app's mail subscription, as the app stored them."""
        assert self.azurite
        connection = self.azurite.connection_string

        async def read() -> tuple[str, str]:
            async with TableStorage.from_connection_string(connection) as storage:
                records = [r for r in await SubscriptionStore(storage).all() if r.kind == "mail"]
            if len(records) != 1:
                raise SandboxError(f"expected one mail subscription, the app has {len(records)}")
            return records[0].id, records[0].client_state

        return asyncio.run(read())

    def change_notification(
        self, graph_id: str, *, client_state: str | None = None, subscription: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """A change notification for a mail of the CRM mailbox, as Graph would POST it (with the
        real clientState unless another is given, to forge one)."""
        subscription_id, secret = subscription or self.mail_subscription()
        return {
            "subscriptionId": subscription_id,
            "clientState": secret if client_state is None else client_state,
            "changeType": "created",
            "resource": f"Users/{self.mailbox}/Messages/{graph_id}",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": graph_id},
            "tenantId": "00000000-0000-0000-0000-000000000000",
        }

    def quiet(self) -> bool:
        """Nothing queued or running in any runner, and no notification waiting in Graph."""
        statuses = [self.runner_status(i) for i in range(len(self.runners))]
        if not all(status.get("idle", False) for status in statuses):
            return False
        return not self.graph_admin("GET", "stats").json().get("pendingNotifications", 0)

    def wait_quiet(self, timeout: float = 60.0, quiet: float = 1.5) -> None:
        """Wait until the system has been quiet for `quiet` seconds: whatever was posted to the app
        has been handled (for checks that nothing came of it)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.quiet():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet:
                    return
            else:
                quiet_since = None
            time.sleep(0.1)
        raise SandboxError(f"the sandbox did not become quiet within {timeout}s")

    def settle(self, timeout: float = 120.0, *, allow_missing: bool = False, quiet: float = 1.5) -> None:
        """Wait until every delivered mail has its outcome in the ledger, or failed for good (an item
        in a poison queue, nothing running). With `allow_missing`, also return once the system has
        been quiet for `quiet` seconds (nothing queued or running, no notification pending): for a
        caller that made notifications get lost on purpose."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            states = {e.message_id: e.state for e in self.ledger_entries()}
            if all(states.get(m, LedgerState.CLAIMED) is not LedgerState.CLAIMED for m in self.delivered):
                return
            statuses = [self.runner_status(i) for i in range(len(self.runners))]
            busy = not all(status.get("idle", False) for status in statuses)
            pending = self.graph_admin("GET", "stats").json().get("pendingNotifications", 0)
            if busy or pending:
                quiet_since = None
            else:
                poisoned = any(q.get("poison_message_count", 0) > 0 for st in statuses for q in st["queues"].values())
                if poisoned:
                    return
                quiet_since = quiet_since or time.monotonic()
                if allow_missing and time.monotonic() - quiet_since >= quiet:
                    return
            time.sleep(0.1)
        raise SandboxError(f"the sandbox did not settle within {timeout}s")

    def report(self, *, run_facts: bool = False) -> dict[str, Any]:
        """The replay document: the decisions (activities and skipped mails, by Message-ID), which
        must not depend on the order Graph returns mail in; with `run_facts`, also what this run's
        order made of them (the activity ids NET Genium gave, the requests served)."""
        activities, skipped, ids = [], [], {}
        for entry in sorted(self.ledger_entries(), key=lambda e: e.message_id):
            if entry.state is LedgerState.WRITTEN:
                activities.append(
                    {
                        "message_id": entry.message_id,
                        "direction": entry.direction,
                        "contacts": list(entry.contact_ids),
                        "users": list(entry.user_ids),
                        "order_id": entry.order_id,
                    }
                )
                ids[entry.message_id] = entry.activity_id
            elif entry.state is LedgerState.SKIPPED:
                skipped.append({"message_id": entry.message_id, "reasons": list(entry.reasons)})
        report: dict[str, Any] = {"activities": activities, "skipped": skipped}
        if run_facts:
            report["run"] = {"activity_ids": ids, "requests": self.request_counts()}
        return report
