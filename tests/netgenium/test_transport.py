"""The transport on its own (no schema map), the pure value mapping, and the client's delegation.

The client tests cover both halves together; these pin each half's own promise, so a change to one
cannot lean on the other without a test noticing.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import httpx
import pytest

from crm_core.netgenium import (
    CalendarActivity,
    NetGeniumClient,
    NetGeniumNotFound,
    NetGeniumProtocolError,
    NetGeniumUnavailable,
    default_schema_map,
)
from crm_core.netgenium import filters as f
from crm_core.netgenium.mapping import calendar_activity_values, calendar_from_record, record_values
from crm_core.netgenium.transport import NetGeniumTransport
from sandbox.launch import ServerProcess
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER, FAST_RETRY, Admin

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
RECORD_OPERATIONS = (
    "health",
    "get_table",
    "iter_records",
    "query",
    "get_record",
    "insert",
    "update",
    "delete",
    "attach_file",
)


async def _no_wait(_seconds: float) -> None:
    return None


async def test_the_transport_alone_reads_and_writes_records(emulator: ServerProcess, admin: Admin) -> None:
    async with NetGeniumTransport(
        emulator.base_url, API_KEY, api_key_header=API_KEY_HEADER, retry=FAST_RETRY, page_size=2
    ) as transport:
        assert (await transport.health())["status"] == "ok"
        ids = [await transport.insert("ng_contacts", {"ng_email": f"c{n}@x.example"}) for n in range(5)]
        await transport.update("ng_contacts", ids[0], {"ng_email": "first@x.example"})
        assert (await transport.get_record("ng_contacts", ids[0]))["ng_email"] == "first@x.example"
        listed = await transport.query("ng_contacts", f.ge("id", 1), columns=["id"], orderby="id")
        assert [r["id"] for r in listed] == sorted(ids)
        assert admin.counts()["query"] == 3  # five records, pages of two
        await transport.delete("ng_contacts", ids[0])
        with pytest.raises(NetGeniumNotFound):
            await transport.get_record("ng_contacts", ids[0])


async def test_an_answer_outside_the_contract_is_a_protocol_error() -> None:
    pages = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>a login page</html>"))
    async with NetGeniumTransport("http://127.0.0.1:9", "k", transport=pages) as transport:
        with pytest.raises(NetGeniumProtocolError) as failed:
            await transport.get_table("ng_contacts")
    assert failed.value.status == 200 and not failed.value.retryable


@pytest.mark.parametrize(("repeatable", "attempts"), [(False, 1), (True, FAST_RETRY.max_attempts)])
async def test_an_insert_after_a_gateway_error_is_repeated_only_when_repeatable(
    repeatable: bool, attempts: int
) -> None:
    seen: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return httpx.Response(502, json={"error": {"code": "bad_gateway", "message": "upstream"}})

    async with NetGeniumTransport(
        "http://127.0.0.1:9", "k", retry=FAST_RETRY, sleep=_no_wait, transport=httpx.MockTransport(gateway)
    ) as transport:
        with pytest.raises(NetGeniumUnavailable) as failed:
            await transport.insert("ng_contacts", {"ng_email": "a@x.example"}, repeatable=repeatable)
    assert failed.value.ambiguous and failed.value.status == 502
    assert seen == ["POST"] * attempts


def test_values_carry_the_fixed_kind_and_skip_columns_netgenium_fills() -> None:
    entity = default_schema_map().calendar_activities
    activity = CalendarActivity(subject="Visit", start=WHEN, end=WHEN, event_id="e" * 300)
    values = calendar_activity_values(entity, activity)
    assert values["ng_kind"] == "calendar"
    assert "ng_modified" not in values
    assert len(values["ng_event_id"]) == 255  # fitted like the lookup fits it
    assert record_values(entity, {"modified": WHEN}) == {"ng_kind": "calendar"}


def test_a_calendar_record_without_a_valid_start_is_refused() -> None:
    entity = default_schema_map().calendar_activities
    with pytest.raises(NetGeniumProtocolError):
        calendar_from_record(entity, {"id": 4, "ng_start": "not a date", "ng_end": "2024-05-06T07:08:09Z"})
    read = calendar_from_record(entity, {"id": 4, "ng_start": "2024-05-06T07:08:09", "ng_end": "2024-05-06T08:00:00Z"})
    assert read.start == WHEN  # a naive time is UTC


def test_the_client_offers_every_record_operation_of_the_transport() -> None:
    for name in RECORD_OPERATIONS:
        assert inspect.signature(getattr(NetGeniumClient, name)) == inspect.signature(
            getattr(NetGeniumTransport, name)
        ), name
