"""The emulator as an HTTP server: auth, error bodies, $select, $top, $batch, subscription URL rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.graph.conftest import MAILBOX, TOKEN, Admin


@pytest.fixture
async def http(graph_server) -> Any:
    async with httpx.AsyncClient(base_url=graph_server.base_url + "/v1.0",
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield client


def _error(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]  # type: ignore[no-any-return]


async def test_requests_without_the_token_get_401_in_graphs_shape(graph_server, admin: Admin) -> None:
    async with httpx.AsyncClient(base_url=graph_server.base_url + "/v1.0") as anonymous:
        answer = await anonymous.get("/users")
    assert answer.status_code == 401
    assert _error(answer)["code"] == "InvalidAuthenticationToken"


async def test_unknown_select_and_unknown_items_answer_graph_errors(http, admin: Admin) -> None:
    message = await admin.deliver(MAILBOX, {"subject": "x"})
    bad_select = await http.get(f"/users/{MAILBOX}/messages/{message['id']}", params={"$select": "subject,nope"})
    assert bad_select.status_code == 400
    assert "nope" in _error(bad_select)["message"]
    missing = await http.get(f"/users/{MAILBOX}/messages/AAMkAmissing=")
    assert missing.status_code == 404 and _error(missing)["code"] == "ErrorItemNotFound"
    no_user = await http.get("/users/nobody@company.example/messages/x")
    assert no_user.status_code == 404 and _error(no_user)["code"] == "Request_ResourceNotFound"


async def test_select_returns_only_the_selected_fields_plus_id_and_etag(http, admin: Admin) -> None:
    message = await admin.deliver(MAILBOX, {"subject": "only this"})
    answer = await http.get(f"/users/{MAILBOX}/messages/{message['id']}", params={"$select": "subject"})
    body = answer.json()
    assert set(body) == {"@odata.context", "@odata.etag", "id", "subject"}
    assert body["@odata.context"].endswith("/messages(subject)/$entity")


async def test_top_pages_users_with_a_next_link(http, admin: Admin) -> None:
    for i in range(4):
        await admin.user(f"user{i}@company.example")
    seen: list[str] = []
    url: str | None = "/users?$top=2&$select=id,userPrincipalName"
    pages = 0
    while url:
        body = (await http.get(url)).json()
        pages += 1
        seen += [u["userPrincipalName"] for u in body["value"]]
        assert all(set(u) == {"id", "userPrincipalName"} for u in body["value"])
        url = body.get("@odata.nextLink")
    assert pages == 3 and len(seen) == 5 and len(set(seen)) == 5


async def test_batch_runs_up_to_twenty_requests_and_refuses_more(http, admin: Admin) -> None:
    message = await admin.deliver(MAILBOX, {"subject": "batched"})
    requests = [{"id": str(i), "method": "GET", "url": f"/users/{MAILBOX}/messages/{message['id']}?$select=subject"}
                for i in range(19)]
    requests.append({"id": "missing", "method": "GET", "url": f"/users/{MAILBOX}/messages/AAMkAmissing="})
    answer = await http.post("/$batch", json={"requests": requests})
    assert answer.status_code == 200
    responses = {r["id"]: r for r in answer.json()["responses"]}
    assert len(responses) == 20
    assert responses["0"]["status"] == 200 and responses["0"]["body"]["subject"] == "batched"
    assert responses["missing"]["status"] == 404
    assert responses["missing"]["body"]["error"]["code"] == "ErrorItemNotFound"

    extra = {"id": "21", "method": "GET", "url": "/users"}
    too_many = await http.post("/$batch", json={"requests": [*requests, extra]})
    assert too_many.status_code == 400 and "20" in _error(too_many)["message"]


async def test_the_sdk_reads_a_batch_answer_body(http, admin: Admin) -> None:
    # msgraph-core's own batch client imports the `deprecated` package it does not declare, so the
    # adapter does not use it; the SDK's deserializer must still read what a batch item carries.
    import json

    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph.generated.models.message import Message

    message = await admin.deliver(MAILBOX, {"subject": "via batch"})
    answer = await http.post("/$batch", json={"requests": [
        {"id": "one", "method": "GET", "url": f"/users/{MAILBOX}/messages/{message['id']}"}]})
    [item] = answer.json()["responses"]
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(item["body"]).encode())
    assert node.get_object_value(Message).subject == "via batch"


async def test_subscriptions_need_https_except_on_loopback(http, admin: Admin) -> None:
    answer = await http.post("/subscriptions", json={
        "changeType": "created", "notificationUrl": "http://example.com/hook", "resource": f"users/{MAILBOX}/messages",
        "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "clientState": "s"})
    assert answer.status_code == 400 and "https" in _error(answer)["message"]


async def test_faults_can_be_read_back_and_cleared(http, admin: Admin) -> None:
    await admin.faults(throttleRate=0.5, retryAfter=3, operations=["getMessage"])
    assert (await admin.call("GET", "/faults"))["throttleRate"] == 0.5
    cleared = await admin.call("DELETE", "/faults")
    assert cleared["throttleRate"] == 0 and cleared["mailboxConcurrency"] == 4
    bad = await admin.http.post("/faults", json={"throttleRate": 2})
    assert bad.status_code == 400
