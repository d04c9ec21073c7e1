"""Subscriptions, notifications and `$batch` under the real profile (the default) and the ideal one.

The real profile requires `clientState` and never reads it back, pauses change notifications after
`reauthorizationRequired` until the app reauthorizes or renews, and answers a batch in any order;
every notification names its message as `Users/{user id}/Messages/{message id}`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crm_core.domain.mailbox import mail_resource
from crm_core.domain.notifications import parse_change_notifications
from crm_core.graph.client import GraphAdapter
from crm_core.graph.factory import create_graph_adapter
from tests.graph.conftest import FAST, MAILBOX, TOKEN, Admin, Subscriber, graph_settings

SECRET = "a-client-state-secret"


def _body(hook: Subscriber, **extra: Any) -> dict[str, Any]:
    return {
        "changeType": "created",
        "notificationUrl": f"{hook.url}/hook",
        "lifecycleNotificationUrl": f"{hook.url}/lifecycle",
        "resource": f"users/{MAILBOX}/messages",
        "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        **extra,
    }


async def _client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=base_url + "/v1.0", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def http(graph_server: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(graph_server.base_url):
        yield client


@pytest.fixture
async def ideal_http(ideal_server: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(ideal_server.base_url):
        yield client


@pytest.fixture
async def ideal_graph(ideal_server: Any, ideal_admin: Admin) -> AsyncIterator[GraphAdapter]:
    adapter = create_graph_adapter(graph_settings(ideal_server.base_url), FAST)
    try:
        yield adapter
    finally:
        await adapter.aclose()


async def test_a_notification_names_its_message_as_users_id_messages_id(
    graph: GraphAdapter, admin: Admin, subscriber: Subscriber
) -> None:
    await graph.create_subscription(
        resource=mail_resource(MAILBOX), notification_url=f"{subscriber.url}/hook",
        lifecycle_notification_url=None, client_state=SECRET, expiration=datetime.now(UTC) + timedelta(hours=1))
    message = await admin.deliver(MAILBOX, {"subject": "named"})
    await subscriber.next_batch()
    [raw] = subscriber.raw[0]["value"]
    [user] = [u for u in (await admin.call("GET", "/users"))["value"] if u["userPrincipalName"] == MAILBOX]
    assert raw["resource"] == f"Users/{user['id']}/Messages/{message['id']}"
    assert raw["resourceData"]["@odata.id"] == raw["resource"]
    [note] = parse_change_notifications(json.dumps(subscriber.raw[0])).value  # what the webhook reads of it
    assert note.item_id == message["id"] and note.user_id == user["id"]


async def test_real_client_state_is_required_and_never_read_back(
    http: httpx.AsyncClient, admin: Admin, subscriber: Subscriber
) -> None:
    missing = await http.post("/subscriptions", json=_body(subscriber))
    assert missing.status_code == 400 and "clientState" in missing.json()["error"]["message"]
    created = await http.post("/subscriptions", json=_body(subscriber, clientState=SECRET))
    assert created.status_code == 201 and created.json()["clientState"] == SECRET
    subscription_id = created.json()["id"]
    read = (await http.get(f"/subscriptions/{subscription_id}")).json()
    listed = (await http.get("/subscriptions")).json()["value"]
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    renewed = (await http.patch(f"/subscriptions/{subscription_id}", json={"expirationDateTime": later})).json()
    assert read["clientState"] is None and renewed["clientState"] is None
    assert [item["clientState"] for item in listed] == [None]


async def test_ideal_client_state_is_optional_and_read_back(
    ideal_http: httpx.AsyncClient, ideal_admin: Admin, subscriber: Subscriber
) -> None:
    assert (await ideal_http.post("/subscriptions", json=_body(subscriber))).status_code == 201
    created = (await ideal_http.post("/subscriptions", json=_body(subscriber, clientState=SECRET))).json()
    assert (await ideal_http.get(f"/subscriptions/{created['id']}")).json()["clientState"] == SECRET


async def _reauthorization_required(graph: GraphAdapter, admin: Admin, hook: Subscriber) -> str:
    created = await graph.create_subscription(
        resource=mail_resource(MAILBOX), notification_url=f"{hook.url}/hook",
        lifecycle_notification_url=f"{hook.url}/lifecycle", client_state=SECRET,
        expiration=datetime.now(UTC) + timedelta(hours=1))
    await admin.call("POST", f"/subscriptions/{created.id}/lifecycle", {"lifecycleEvent": "reauthorizationRequired"})
    lifecycle = await hook.next_batch()
    assert [n.lifecycle_event.value for n in lifecycle.lifecycle] == ["reauthorizationRequired"]
    return created.id


@pytest.mark.parametrize("action", ["reauthorize", "renew"])
async def test_real_notifications_pause_after_reauthorization_required_until_the_app_acts(
    graph: GraphAdapter, admin: Admin, subscriber: Subscriber, action: str
) -> None:
    subscription_id = await _reauthorization_required(graph, admin, subscriber)
    await admin.deliver(MAILBOX, {"subject": "during the pause"})
    stats = await admin.wait_stats(lambda s: s["notifications"].get("pausedUntilReauthorized", 0) == 1)
    assert stats["notifications"].get("changePosts", 0) == 0
    if action == "reauthorize":
        await graph.reauthorize_subscription(subscription_id)
    else:
        await graph.renew_subscription(subscription_id, datetime.now(UTC) + timedelta(hours=2))
    after = await admin.deliver(MAILBOX, {"subject": "after"})
    batch = await subscriber.next_batch()
    assert [n.item_id for n in batch.changes] == [after["id"]]  # what changed during the pause is lost


async def test_ideal_notifications_go_on_after_reauthorization_required(
    ideal_graph: GraphAdapter, ideal_admin: Admin, subscriber: Subscriber
) -> None:
    await _reauthorization_required(ideal_graph, ideal_admin, subscriber)
    during = await ideal_admin.deliver(MAILBOX, {"subject": "no pause"})
    batch = await subscriber.next_batch()
    assert [n.item_id for n in batch.changes] == [during["id"]]


async def _batch_ids(http: httpx.AsyncClient, admin: Admin) -> list[str]:
    message = await admin.deliver(MAILBOX, {"subject": "batched"})
    requests = [{"id": str(n), "method": "GET", "url": f"/users/{MAILBOX}/messages/{message['id']}?$select=subject"}
                for n in range(12)]
    answer = (await http.post("/$batch", json={"requests": requests})).json()
    assert all(item["status"] == 200 and item["body"]["subject"] == "batched" for item in answer["responses"])
    return [item["id"] for item in answer["responses"]]


async def test_real_batch_answers_in_any_order_and_ideal_in_order(
    http: httpx.AsyncClient, admin: Admin, ideal_http: httpx.AsyncClient, ideal_admin: Admin
) -> None:
    real = await _batch_ids(http, admin)
    assert sorted(real, key=int) == [str(n) for n in range(12)] and real != sorted(real, key=int)
    assert await _batch_ids(ideal_http, ideal_admin) == [str(n) for n in range(12)]


async def test_dropped_notifications_and_mailbox_limit_still_apply_under_the_real_profile(
    graph: GraphAdapter, admin: Admin, subscriber: Subscriber
) -> None:
    await graph.create_subscription(
        resource=mail_resource(MAILBOX), notification_url=f"{subscriber.url}/hook",
        lifecycle_notification_url=None, client_state=SECRET, expiration=datetime.now(UTC) + timedelta(hours=1))
    await admin.faults(dropNotificationsNext=1, latencyMs=200)
    await admin.deliver(MAILBOX, {"subject": "lost"})
    kept = await admin.deliver(MAILBOX, {"subject": "kept"})
    batch = await subscriber.next_batch()
    assert [n.item_id for n in batch.changes] == [kept["id"]]
    reads = await asyncio.gather(*(graph.get_message(MAILBOX, kept["id"]) for _ in range(8)))
    assert {r.subject for r in reads} == {"kept"}
    stats = await admin.stats()
    assert stats["notifications"]["dropped"] == 1 and max(stats["maxInFlightPerMailbox"].values()) == 4
