"""Direct mode (NETGENIUM_DATABASE_URL): the client on the bridge's store in this process, on a real
Firebird server, passing the same client tests as over HTTP.

The emulator is started on the same database only for its admin API (reset, seed, reading files
back over HTTP): what direct mode writes, the bridge serves, and the other way round. Its request
counts show that direct mode never went through it. Tests that inject HTTP faults or count HTTP
requests have no meaning without HTTP and are not among the shared ones; direct mode's own
failure (a database that cannot be reached) is tested here instead.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from crm_core.domain.settings import SettingsError, load_settings
from crm_core.netgenium import NetGeniumClient, NetGeniumNotFound, NetGeniumRejected, NetGeniumUnavailable
from crm_core.netgenium import filters as f
from crm_core.netgenium.direct import StoreTransport, open_store
from crm_core.netgenium.retry import RetryPolicy
from crm_core.netgenium.schema_map import load_schema_map
from crm_core.runtime import secret_values
from sandbox.launch import ServerProcess
from sandbox.netgenium.firebird import FirebirdServer
from tests.netgenium import test_client as over_http
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER, FAST_RETRY, Admin

ROOT = Path(__file__).resolve().parents[2]

# The client tests of test_client.py that hold in both modes: every capture and calendar operation,
# fitting, conflicts on Message-IDs that differ in case, files, system records.
SHARED: list[Callable[..., Awaitable[None]]] = [
    over_http.test_health_and_table_metadata,
    over_http.test_users_by_email_and_all_users,
    over_http.test_find_order_by_number,
    over_http.test_create_email_activity_stores_every_field_and_attachments,
    over_http.test_subject_longer_than_the_column_is_cut_on_purpose,
    over_http.test_long_message_id_is_fitted_and_found_again,
    over_http.test_calendar_upsert_list_and_delete,
    over_http.test_deleting_a_calendar_activity_never_deletes_an_email_activity,
    over_http.test_system_records_may_not_be_deleted,
    over_http.test_message_ids_that_differ_only_in_case_are_two_activities_each_with_its_own_files,
    over_http.test_a_conflict_on_a_record_of_another_message_id_is_refused_and_attaches_nothing,
    over_http.test_a_conversations_unlinked_activities_are_linked_and_others_keep_their_order,
]


@pytest.fixture(scope="module")
def database(firebird_server: FirebirdServer) -> Iterator[tuple[str, Admin]]:
    """A fresh Firebird database with NET Genium-like tables, and the emulator's admin API on it."""
    url = firebird_server.create_database("direct")
    server = ServerProcess(
        "sandbox.netgenium",
        ["--db", url, "--time-zone", "Europe/Prague", "--api-key", API_KEY, "--api-key-header", API_KEY_HEADER],
        health_path="/api/v1/health",
    )
    with server:
        admin = Admin(server.base_url)
        yield url, admin
        admin.close()


@pytest.fixture
async def direct(database: tuple[str, Admin]) -> AsyncIterator[NetGeniumClient]:
    url, admin = database
    admin.reset()
    schema_map = load_schema_map(None)
    opener = partial(open_store, url, schema_map, time_zone="Europe/Prague", files_folder="")
    async with NetGeniumClient.over(StoreTransport(opener, name="direct:test", retry=FAST_RETRY)) as client:
        yield client


@pytest.mark.parametrize("case", SHARED, ids=[case.__name__.removeprefix("test_") for case in SHARED])
async def test_the_client_tests_hold_in_direct_mode(
    case: Callable[..., Awaitable[None]], direct: NetGeniumClient, database: tuple[str, Admin], tmp_path: Path
) -> None:
    _url, admin = database
    given = {"client": direct, "admin": admin, "tmp_path": tmp_path}
    await case(**{name: given[name] for name in inspect.signature(case).parameters})
    counts = admin.counts()
    writes = sum(counts.get(op, 0) for op in ("insert", "update", "delete", "attach_file"))
    assert writes == 0  # everything was written in this process, none through the emulator


async def test_the_same_mail_twice_is_one_activity_with_every_file(direct: NetGeniumClient) -> None:
    """The unique Message-ID key turns the second insert into a conflict that the client resolves."""
    first = await direct.create_email_activity(
        over_http._activity(), [over_http.Attachment(filename="a.txt", content=b"a")]
    )
    again = await direct.create_email_activity(
        over_http._activity(),
        [over_http.Attachment(filename="a.txt", content=b"a"), over_http.Attachment(filename="b.txt", content=b"b")],
    )
    assert again == first
    records = await direct.query("ng_activities", f.eq("ng_kind", "email"), columns=["id", "ng_attachments"])
    assert [r["id"] for r in records] == [first]
    assert sorted(item["filename"] for item in records[0]["ng_attachments"]) == ["a.txt", "b.txt"]


async def test_paging_and_the_contracts_refusals(direct: NetGeniumClient, database: tuple[str, Admin]) -> None:
    _url, admin = database
    admin.seed("ng_contacts", [{"id": n, "ng_email": f"c{n}@x.example"} for n in range(1, 1203)])
    ids = [r["id"] async for r in direct.iter_records("ng_contacts", columns=["id"], page_size=500)]
    assert ids == list(range(1, 1203))
    with pytest.raises(NetGeniumRejected) as unknown:
        await direct.query("ng_secrets")
    assert unknown.value.code == "unknown_table" and not unknown.value.retryable
    with pytest.raises(NetGeniumRejected) as column:
        await direct.query("ng_contacts", f.eq("password", "x"))
    assert column.value.status == 400
    with pytest.raises(NetGeniumRejected) as too_long:
        await direct.insert("ng_contacts", {"ng_email": "x" * 300})
    assert too_long.value.code == "value_too_long"
    with pytest.raises(NetGeniumNotFound):
        await direct.get_record("ng_contacts", 999_999)
    assert [r["id"] async for r in direct.iter_records("ng_contacts", f.eq("ng_email", "x" * 300))] == []


async def test_a_database_that_cannot_be_reached_is_unavailable_and_retried(firebird_server: FirebirdServer) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    closed = firebird_server.url("direct").replace(f":{firebird_server.port}/", ":9/")
    opener = partial(open_store, closed, load_schema_map(None), time_zone="Europe/Prague", files_folder="")
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01, max_total_seconds=1.0)
    async with NetGeniumClient.over(StoreTransport(opener, name="direct:closed", retry=retry, sleep=sleep)) as client:
        with pytest.raises(NetGeniumUnavailable) as failed:
            await client.find_activity_by_message_id("<a@b.example>")
    assert failed.value.status == 503 and failed.value.retryable and not failed.value.ambiguous
    assert len(waits) == 2  # three attempts
    assert firebird_server.password not in str(failed.value)


# --- the settings of direct mode -----------------------------------------------------------------

BASE = {
    "CRM_MAILBOX": "crm@firma.example",
    "CRM_NOTIFICATION_URL": "http://127.0.0.1:7071/api/notifications",
    "CRM_LIFECYCLE_URL": "http://127.0.0.1:7071/api/lifecycle",
    "GRAPH_AUTH": "static_token",
    "GRAPH_STATIC_TOKEN": "t0ken",
    "GRAPH_BASE_URL": "http://127.0.0.1:9/v1.0",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}
DATABASE_URL = "firebird+firebird://SYSDBA:s3cret-pass@10.0.0.4:3050//data/netgenium.fdb?charset=UTF8"


def _settings(monkeypatch: pytest.MonkeyPatch, **values: str) -> Any:
    for name in ("NETGENIUM_BASE_URL", "NETGENIUM_API_KEY", "NETGENIUM_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**BASE, **values}.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_direct_mode_is_chosen_by_the_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, NETGENIUM_DATABASE_URL=DATABASE_URL)
    client = NetGeniumClient.from_settings(settings)
    assert isinstance(client.transport, StoreTransport)
    assert client.base_url == "direct:firebird+firebird://SYSDBA:***@10.0.0.4:3050//data/netgenium.fdb?charset=UTF8"
    assert "s3cret-pass" in secret_values(settings)  # masked in whatever an operator command prints


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"NETGENIUM_DATABASE_URL": DATABASE_URL, "NETGENIUM_BASE_URL": "https://ng.firma.example"}, "both set"),
        ({}, "NETGENIUM_BASE_URL is missing"),
        ({"NETGENIUM_BASE_URL": "https://ng.firma.example"}, "NETGENIUM_API_KEY is missing"),
        ({"NETGENIUM_DATABASE_URL": "postgresql://u:s3cret-pass@h/db"}, "NETGENIUM_DATABASE_URL is invalid"),
    ],
)
def test_a_wrong_netgenium_setting_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as stopped:
        _settings(monkeypatch, **values)
    assert named in str(stopped.value)
    assert "s3cret-pass" not in str(stopped.value)


def test_the_default_deployment_never_loads_the_bridge_or_sqlalchemy() -> None:
    """Over HTTP, building and using the client imports neither (cold start, package size)."""
    script = (
        "import sys\n"
        "from crm_core.domain.settings import load_settings\n"
        "from crm_core.netgenium import NetGeniumClient\n"
        "client = NetGeniumClient.from_settings(load_settings())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bridge', 'sqlalchemy', 'firebird')))\n"
    )
    env = {**os.environ, **BASE, "NETGENIUM_BASE_URL": "https://ng.firma.example", "NETGENIUM_API_KEY": "k3y-value"}
    env.pop("NETGENIUM_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_netgenium_check_reads_the_databases_catalog_in_direct_mode(database: tuple[str, Admin]) -> None:
    """`crmservice netgenium check` with NETGENIUM_DATABASE_URL and no base URL: the real columns,
    and the password never printed."""
    url, _admin = database
    env = {name: value for name, value in os.environ.items() if not name.startswith("NETGENIUM_")}
    env["NETGENIUM_DATABASE_URL"] = url
    done = subprocess.run(  # the installed command, as an administrator runs it
        [sys.executable, "-m", "crm_core.cli", "netgenium", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: every table and column")
    password = url.split(":")[2].split("@")[0]
    assert password not in done.stdout + done.stderr
