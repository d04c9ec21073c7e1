"""Graph's documented sample payloads: the SDK and our models read them, and the emulator answers alike.

The fixtures are written from the samples in Microsoft Graph's documentation (message, event, delta
pages, change and lifecycle notifications). If the emulator's answers drifted from these shapes, the
adapter tests would prove only that the adapter agrees with the emulator, not with Graph.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory

from crm_core.domain.mail import GraphMessage
from crm_core.domain.mailbox import mail_resource
from crm_core.domain.notifications import parse_change_notifications, parse_lifecycle_notifications
from crm_core.graph.models import GraphEvent, MessageDeltaPage
from tests.graph.conftest import MAILBOX, TOKEN, Admin, Subscriber, fixture_json


def sdk_read(payload: dict[str, Any], factory: Any) -> Any:
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(payload).encode())
    return node.get_object_value(factory)


def test_the_sdk_and_the_core_read_the_documented_message() -> None:
    from msgraph.generated.models.message import Message

    sample = fixture_json("message.json")
    message = sdk_read(sample, Message)
    assert message.subject == "Update your contact info" and message.from_.email_address.address
    core = GraphMessage.model_validate(sample)
    assert core.sender_address == "alexw@contoso.example"
    assert core.recipient_addresses() == ["meganb@contoso.example", "crm@contoso.example"]
    headers = GraphMessage.model_validate(fixture_json("message_headers.json"))
    assert headers.header("auto-submitted") == "auto-generated"


def test_the_sdk_and_our_model_read_the_documented_event() -> None:
    from msgraph.generated.models.event import Event

    sample = fixture_json("event.json")
    event = sdk_read(sample, Event)
    assert event.transaction_id == "7E163156-7762-4BEB-A1C6-729EA81755A7"
    ours = GraphEvent.model_validate(sample)
    assert ours.start is not None and ours.start.as_utc() == datetime(2017, 4, 15, 12, tzinfo=UTC)
    assert ours.location_name == "Harry's Bar" and ours.activity_id is None


def test_the_sdk_reads_the_documented_delta_pages() -> None:
    from msgraph.generated.users.item.calendar_view.delta.delta_get_response import DeltaGetResponse as EventPage
    from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_get_response import (
        DeltaGetResponse as MessagePage,
    )

    messages = sdk_read(fixture_json("message_delta_page.json"), MessagePage)
    assert messages.odata_next_link and len(messages.value) == 2
    assert "@removed" in messages.value[1].additional_data
    events = sdk_read(fixture_json("event_delta_page.json"), EventPage)
    assert events.odata_delta_link and events.value[1].additional_data["@removed"] == {"reason": "deleted"}
    # The adapter reads event delta pages as JSON, not through the SDK: the same page, the same reading.
    ours = MessageDeltaPage.model_validate(fixture_json("event_delta_page.json"))
    assert ours.delta_link == events.odata_delta_link and len(ours.value) == len(events.value)
    assert "@removed" in ours.value[1] and GraphEvent.model_validate(ours.value[0]).id == events.value[0].id


def _keys(items: list[dict[str, Any]]) -> set[str]:
    return set().union(*(item.keys() for item in items))


async def test_emulator_message_and_delta_answers_have_the_documented_shape(graph_server, admin: Admin) -> None:
    await admin.steady_tokens()
    first = await admin.deliver(MAILBOX, {"subject": "a", "from": {"emailAddress": {"address": "x@y.example"}}})
    await admin.deliver(MAILBOX, {"subject": "b"})
    base = f"{graph_server.base_url}/v1.0/users/{MAILBOX}"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        message = (await http.get(f"{base}/messages/{first['id']}")).json()
        headers_only = (await http.get(f"{base}/messages/{first['id']}",
                                       params={"$select": "internetMessageHeaders"})).json()
        page = await http.get(f"{base}/mailFolders/inbox/messages/delta",
                              params={"$select": "subject,sender,from,toRecipients,isRead,receivedDateTime"},
                              headers={"Prefer": "odata.maxpagesize=1"})
        assert page.headers["Preference-Applied"] == "odata.maxpagesize=1"
        next_page = (await http.get(page.json()["@odata.nextLink"])).json()
        await admin.call("DELETE", f"/users/{MAILBOX}/messages/{first['id']}")
        removed = (await http.get(next_page["@odata.deltaLink"])).json()
    sample = fixture_json("message.json")
    assert set(sample) <= set(message)
    assert set(fixture_json("message_headers.json")) == set(headers_only)
    documented = fixture_json("message_delta_page.json")
    assert set(page.json()) == set(documented)
    assert _keys([page.json()["value"][0]]) == set(documented["value"][0])
    assert set(next_page) == {"@odata.context", "value", "@odata.deltaLink"}
    assert removed["value"] == [{"@odata.type": "#microsoft.graph.message", "id": first["id"],
                                 "@removed": {"reason": "deleted"}}]


async def test_emulator_event_answers_have_the_documented_shape(graph_server, admin: Admin) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    event = {"subject": "e", "transactionId": "t-1",
             "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
             "end": {"dateTime": (start + timedelta(hours=1)).isoformat(), "timeZone": "UTC"}}
    base = f"{graph_server.base_url}/v1.0/users/{MAILBOX}"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        created = await http.post(f"{base}/events", json=event)
        assert created.status_code == 201
        read = (await http.get(f"{base}/events/{created.json()['id']}")).json()
        window = {"startDateTime": datetime.now(UTC).isoformat(),
                  "endDateTime": (datetime.now(UTC) + timedelta(days=2)).isoformat()}
        delta = (await http.get(f"{base}/calendarView/delta", params=window)).json()
    assert set(fixture_json("event.json")) == set(read)
    documented = fixture_json("event_delta_page.json")
    assert set(delta) == set(documented)
    assert set(documented["value"][0]) <= set(delta["value"][0])


async def test_emulator_notifications_have_the_documented_shape(graph, admin: Admin, subscriber: Subscriber) -> None:
    created = await graph.create_subscription(
        resource=mail_resource(MAILBOX), notification_url=f"{subscriber.url}/hook",
        lifecycle_notification_url=f"{subscriber.url}/lifecycle", client_state="s",
        expiration=datetime.now(UTC) + timedelta(hours=1))
    await admin.deliver(MAILBOX, {"subject": "n"})
    await subscriber.next_batch()
    await admin.call("POST", f"/subscriptions/{created.id}/lifecycle", {"lifecycleEvent": "reauthorizationRequired"})
    await subscriber.next_batch()
    change, lifecycle = subscriber.raw
    documented = fixture_json("change_notification.json")
    assert set(change) == set(documented)
    assert set(change["value"][0]) == set(documented["value"][0])
    assert set(change["value"][0]["resourceData"]) == set(documented["value"][0]["resourceData"])
    assert set(lifecycle["value"][0]) == set(fixture_json("lifecycle_notification.json")["value"][0])
    parse_change_notifications(json.dumps(change))
    parse_lifecycle_notifications(json.dumps(lifecycle))
