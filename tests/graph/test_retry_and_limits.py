"""Throttling, outages and the per-mailbox limit: retried with Retry-After, then a typed error."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from crm_core.graph.errors import GraphUnavailable
from crm_core.graph.factory import create_graph_adapter
from crm_core.graph.options import GraphOptions
from tests.graph.conftest import MAILBOX, TOKEN, Admin, graph_settings


async def test_one_429_with_retry_after_then_success(graph, admin: Admin) -> None:
    message = await admin.deliver(MAILBOX, {"subject": "throttled once"})
    await admin.faults(throttleNext=1, retryAfter=1, operations=["getMessage"])
    read = await graph.get_message(MAILBOX, message["id"])
    assert read.subject == "throttled once"
    stats = await admin.stats()
    assert stats["requests"]["getMessage"] == 2
    assert stats["faults"]["throttled"] == 1


async def test_a_429_storm_gives_up_after_the_retry_bound(graph_server, admin: Admin) -> None:
    message = await admin.deliver(MAILBOX, {"subject": "storm"})
    await admin.faults(throttleRate=1.0, retryAfter=1, operations=["getMessage"])
    adapter = create_graph_adapter(graph_settings(graph_server.base_url), GraphOptions(max_retries=1))
    try:
        with pytest.raises(GraphUnavailable) as caught:
            await adapter.get_message(MAILBOX, message["id"])
    finally:
        await adapter.aclose()
    assert caught.value.retryable and caught.value.retry_after == 1.0 and caught.value.status == 429
    assert (await admin.stats())["requests"]["getMessage"] == 2  # the first attempt and one retry


async def test_a_503_outage_is_retryable(graph_server, admin: Admin) -> None:
    await admin.faults(unavailableRate=1.0, retryAfter=0, operations=["listUsers"])
    adapter = create_graph_adapter(graph_settings(graph_server.base_url),
                                   GraphOptions(max_retries=0, retry_base_delay=0))
    try:
        with pytest.raises(GraphUnavailable) as caught:
            await adapter.list_users()
    finally:
        await adapter.aclose()
    assert caught.value.status == 503 and caught.value.retryable


async def test_an_operation_deadline_bounds_a_slow_graph(graph_server, admin: Admin) -> None:
    await admin.faults(latencyMs=1500, operations=["listUsers"])
    adapter = create_graph_adapter(graph_settings(graph_server.base_url), GraphOptions(operation_timeout=0.3))
    try:
        with pytest.raises(GraphUnavailable) as caught:
            await adapter.list_users()
    finally:
        await adapter.aclose()
    assert "no answer" in str(caught.value)


async def test_the_adapter_keeps_at_most_four_requests_per_mailbox(graph, admin: Admin) -> None:
    message = await admin.deliver(MAILBOX, {"subject": "busy"})
    await admin.faults(latencyMs=150)
    results = await asyncio.gather(*(graph.get_message(MAILBOX, message["id"]) for _ in range(12)))
    assert [r.subject for r in results] == ["busy"] * 12
    stats = await admin.stats()
    assert stats["faults"].get("mailboxConcurrency", 0) == 0
    assert max(stats["maxInFlightPerMailbox"].values()) == 4
    assert stats["requests"]["getMessage"] == 12


async def test_the_emulator_answers_mailbox_concurrency_like_graph(graph_server, admin: Admin) -> None:
    message = await admin.deliver(MAILBOX, {"subject": "busy"})
    await admin.faults(latencyMs=300)
    url = f"{graph_server.base_url}/v1.0/users/{MAILBOX}/messages/{message['id']}"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        answers = await asyncio.gather(*(http.get(url) for _ in range(8)))
    throttled = [a for a in answers if a.status_code == 429]
    assert sum(a.status_code == 200 for a in answers) == 4 and len(throttled) == 4
    error = throttled[0].json()["error"]
    assert error["code"] == "ApplicationThrottled" and "MailboxConcurrency" in error["message"]
    assert throttled[0].headers["Retry-After"].isdigit()


async def test_the_client_keeps_the_sdks_retry_and_redirect_middleware(graph_server) -> None:
    from kiota_http.middleware import RedirectHandler, RetryHandler

    adapter = create_graph_adapter(graph_settings(graph_server.base_url))
    try:
        transport = adapter.client.request_adapter._http_client._transport
        kinds = set()
        middleware = transport.pipeline._first_middleware
        while middleware is not None:
            kinds.add(type(middleware))
            middleware = middleware.next
        assert {RetryHandler, RedirectHandler} <= kinds
        assert adapter.client.request_adapter.base_url == graph_server.base_url + "/v1.0"
    finally:
        await adapter.aclose()
