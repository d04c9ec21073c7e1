"""The use cases behind `crmservice check` and `crmservice subscriptions`, with fakes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_core.domain.errors import ServiceUnavailable
from crm_core.usecases.preflight import CheckFailed, Probes, mask, run_checks, settings_result
from crm_core.usecases.subscription_upkeep import (
    SubscriptionUpkeep,
    delete_subscriptions,
    subscription_overview,
)
from tests.unit.messages import CRM
from tests.usecases.fakes import FakeSubscriptionApi, FakeSubscriptionRecords

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = "s3cret-api-key"


class Probe:
    """Every probe of `run_checks`; `fail` names the one that raises and with what."""

    def __init__(self, fail: Mapping[str, BaseException] = {}) -> None:
        self.fail = dict(fail)
        self.asked: list[str] = []

    def _maybe(self, name: str) -> None:
        self.asked.append(name)
        if name in self.fail:
            raise self.fail[name]

    async def token(self) -> None:
        self._maybe("token")

    async def mailbox_user(self, mailbox: str) -> str:
        self._maybe("user")
        return "user-id-1"

    async def read_inbox(self, mailbox: str) -> None:
        self._maybe("inbox")

    async def health(self) -> dict[str, Any]:
        self._maybe("health")
        return {"status": "ok"}

    async def schema_problems(self) -> Sequence[str]:
        self._maybe("schema")
        return []

    async def tables(self) -> None:
        self._maybe("tables")

    async def queue_lengths(self) -> dict[str, int | None]:
        self._maybe("queues")
        return {"capture-tasks": 0, "lifecycle-tasks": None}


def probes(probe: Probe) -> Probes:
    return Probes(mailbox=CRM, graph=probe, netgenium=probe, storage=probe)


async def test_every_check_passes_with_healthy_systems() -> None:
    results = await run_checks(probes(Probe()))
    assert [r.check for r in results] == [
        "graph token",
        "graph mailbox",
        "graph inbox",
        "netgenium health",
        "netgenium schema map",
        "storage tables",
        "storage queues",
    ]
    assert all(r.ok for r in results)
    assert "lifecycle-tasks: not created yet" in results[-1].detail


async def test_a_failed_token_skips_the_graph_checks_after_it_and_says_what_to_fix() -> None:
    probe = Probe({"token": ServiceUnavailable("no token from the client_secret credential")})
    results = {r.check: r for r in await run_checks(probes(probe))}
    assert not results["graph token"].ok
    assert "GRAPH_CLIENT_ID" in results["graph token"].detail
    assert results["graph mailbox"].detail == "not checked: graph token failed"
    assert "user" not in probe.asked and "inbox" not in probe.asked
    assert results["netgenium health"].ok and results["storage queues"].ok


async def test_schema_problems_fail_the_schema_check_and_secrets_are_masked() -> None:
    class Broken(Probe):
        async def schema_problems(self) -> Sequence[str]:
            return [f"table ng_activities is missing (key {KEY})"]

    results = {r.check: r for r in await run_checks(probes(Broken()), secrets=[KEY])}
    schema = results["netgenium schema map"]
    assert not schema.ok and "ng_activities" in schema.detail
    assert KEY not in schema.detail and "***" in schema.detail
    assert "NETGENIUM_SCHEMA_MAP" in schema.detail


async def test_a_refused_metadata_request_points_at_the_key() -> None:
    probe = Probe({"schema": ServiceUnavailable("NET Genium answered 401 unauthorized")})
    results = {r.check: r for r in await run_checks(probes(probe))}
    assert not results["netgenium schema map"].ok
    assert "NETGENIUM_API_KEY" in results["netgenium schema map"].detail


async def test_an_unexpected_error_is_a_failed_check_not_a_crash() -> None:
    results = {r.check: r for r in await run_checks(probes(Probe({"queues": RuntimeError("boom")})))}
    assert not results["storage queues"].ok
    assert results["storage queues"].detail.startswith("RuntimeError: boom; check AzureWebJobsStorage")
    assert results["storage tables"].ok


async def test_a_health_answer_that_is_not_ok_fails() -> None:
    class Sick(Probe):
        async def health(self) -> dict[str, Any]:
            return {"status": "degraded"}

    results = {r.check: r for r in await run_checks(probes(Sick()))}
    assert not results["netgenium health"].ok
    assert results["netgenium schema map"].detail == "not checked: netgenium health failed"
    assert isinstance(CheckFailed("x"), Exception)


def test_settings_line_and_mask() -> None:
    assert settings_result(None).ok
    wrong = settings_result("CRM_MAILBOX is invalid: expected an e-mail address")
    assert wrong.as_json() == {"check": "settings", "ok": False, "detail": wrong.detail}
    assert mask("key=abcd and abcdef", ["abcd", "abcdef", ""]) == "key=*** and ***"


def upkeep(graph: FakeSubscriptionApi, records: FakeSubscriptionRecords) -> SubscriptionUpkeep:
    async def reconcile() -> None:
        return None

    return SubscriptionUpkeep(
        graph,
        records,
        mailbox=CRM,
        notification_url="https://crm.example/api/notifications",
        lifecycle_url="https://crm.example/api/lifecycle",
        lifetime=timedelta(minutes=4200),
        reconcile=reconcile,
    )


async def test_overview_says_whether_graph_and_the_records_agree() -> None:
    graph, records = FakeSubscriptionApi(lambda: T0), FakeSubscriptionRecords()
    assert await subscription_overview(graph, records) == []
    (sub_id,) = (await upkeep(graph, records).run(now=T0)).created
    [view] = await subscription_overview(graph, records)
    assert (view.id, view.in_graph, view.stored, view.agree) == (sub_id, True, True, True)
    assert view.expires_at is not None and CRM in view.resource
    assert view.as_json()["expires_at"] == view.expires_at.isoformat()

    stale = replace(records.rows[sub_id], id="gone-1")
    await records.save(stale)
    records.rows[sub_id] = replace(records.rows[sub_id], expires_at=T0)
    views = {v.id: v for v in await subscription_overview(graph, records)}
    assert not views["gone-1"].in_graph and not views["gone-1"].agree
    assert not views[sub_id].agree and "stored expiry" in views[sub_id].note


async def test_delete_removes_in_graph_and_in_storage() -> None:
    graph, records = FakeSubscriptionApi(lambda: T0), FakeSubscriptionRecords()
    (sub_id,) = (await upkeep(graph, records).run(now=T0)).created
    [unknown] = await delete_subscriptions(graph, records, ["nope"])
    assert (unknown.in_graph, unknown.stored) == (False, False)
    [deleted] = await delete_subscriptions(graph, records, None)
    assert deleted.as_json() == {"id": sub_id, "deleted_in_graph": True, "deleted_record": True}
    assert graph.live == {} and records.rows == {}
