"""Subscriptions like Graph's: validation handshake, expiry limits, renewal, change and lifecycle notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_core.domain.mailbox import event_resource, mail_resource
from crm_core.domain.notifications import ChangeType, LifecycleEvent, client_state_matches
from crm_core.graph.client import MAX_OUTLOOK_SUBSCRIPTION_MINUTES
from crm_core.graph.errors import GraphNotFound, GraphRejected
from tests.graph.conftest import MAILBOX, Admin, Subscriber

SECRET = "a-client-state-secret"


async def _subscribe(graph, hook: Subscriber, *, resource: str | None = None, minutes: int = 60,
                     lifecycle: bool = True):
    return await graph.create_subscription(
        resource=resource or mail_resource(MAILBOX),
        notification_url=f"{hook.url}/hook",
        lifecycle_notification_url=f"{hook.url}/lifecycle" if lifecycle else None,
        client_state=SECRET,
        expiration=datetime.now(UTC) + timedelta(minutes=minutes),
    )


async def test_a_subscriber_that_echoes_the_token_is_accepted(graph, admin: Admin, subscriber: Subscriber) -> None:
    created = await _subscribe(graph, subscriber)
    assert subscriber.validations == 2  # notificationUrl and lifecycleNotificationUrl
    assert created.resource == mail_resource(MAILBOX)
    assert created.client_state == SECRET
    assert [s.id for s in await graph.list_subscriptions()] == [created.id]


@pytest.mark.parametrize("mode", ["html", "raw", "empty", "refuse", "slow"])
async def test_a_subscriber_that_does_not_echo_the_plain_token_is_refused(
    graph, admin: Admin, subscriber: Subscriber, mode: str
) -> None:
    subscriber.mode = mode
    with pytest.raises(GraphRejected) as caught:
        await _subscribe(graph, subscriber)
    assert caught.value.status == 400 and caught.value.code == "ValidationError"
    assert await graph.list_subscriptions() == []


async def test_expiry_beyond_graphs_maximum_is_refused(graph, admin: Admin, subscriber: Subscriber) -> None:
    with pytest.raises(GraphRejected) as caught:
        await _subscribe(graph, subscriber, minutes=MAX_OUTLOOK_SUBSCRIPTION_MINUTES + 5)
    assert caught.value.code == "ExtensionError"
    ok = await _subscribe(graph, subscriber, minutes=MAX_OUTLOOK_SUBSCRIPTION_MINUTES - 1)
    assert ok.expiration_date_time > datetime.now(UTC) + timedelta(days=6)


async def test_renew_reauthorize_and_delete(graph, admin: Admin, subscriber: Subscriber) -> None:
    created = await _subscribe(graph, subscriber)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    renewed = await graph.renew_subscription(created.id, later)
    assert renewed.id == created.id and renewed.expiration_date_time == later
    await graph.reauthorize_subscription(created.id)
    assert await graph.delete_subscription(created.id) is True
    assert await graph.delete_subscription(created.id) is False
    with pytest.raises(GraphNotFound):
        await graph.renew_subscription(created.id, later)


async def test_changes_close_together_arrive_in_one_post_with_graphs_fields(
    graph, admin: Admin, subscriber: Subscriber
) -> None:
    created = await _subscribe(graph, subscriber, resource=mail_resource(MAILBOX))
    body = {"messages": [{"subject": f"n{i}", "from": {"emailAddress": {"address": "a@b.example"}}}
                         for i in range(3)]}
    delivered = await admin.call("POST", f"/users/{MAILBOX}/messages", body)
    batch = await subscriber.next_batch()
    assert batch.lifecycle == []
    assert [n.item_id for n in batch.changes] == [m["id"] for m in delivered["value"]]
    users = {u["userPrincipalName"]: u["id"] for u in (await admin.call("GET", "/users"))["value"]}
    for note in batch.changes:
        assert note.subscription_id == created.id
        assert note.change_type is ChangeType.CREATED
        assert client_state_matches(note.client_state, SECRET)
        assert note.tenant_id and note.subscription_expiration_date_time is not None
        assert note.user_id == users[MAILBOX]
        assert note.resource_data is not None and note.resource_data.odata_etag
    assert subscriber.posts == 1


async def test_sent_items_changes_do_not_reach_an_inbox_subscription(
    graph, admin: Admin, subscriber: Subscriber
) -> None:
    await _subscribe(graph, subscriber, resource=mail_resource(MAILBOX))
    await admin.deliver(MAILBOX, {"subject": "sent"}, folder="sentitems")
    inbox = await admin.deliver(MAILBOX, {"subject": "received"})
    batch = await subscriber.next_batch()
    assert [n.item_id for n in batch.changes] == [inbox["id"]]


async def test_event_changes_are_notified(graph, admin: Admin, subscriber: Subscriber) -> None:
    await _subscribe(graph, subscriber, resource=event_resource(MAILBOX))
    event = await admin.call("POST", f"/users/{MAILBOX}/events", {
        "subject": "Call", "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"}})
    first = await subscriber.next_batch()
    await admin.call("DELETE", f"/users/{MAILBOX}/events/{event['id']}")
    second = await subscriber.next_batch()
    assert [(n.change_type, n.item_id) for n in first.changes + second.changes] == [
        (ChangeType.CREATED, event["id"]), (ChangeType.DELETED, event["id"])]
    assert first.changes[0].resource_data is not None
    assert first.changes[0].resource_data.odata_type == "#Microsoft.Graph.Event"


async def test_nothing_is_sent_after_expiry(graph, admin: Admin, subscriber: Subscriber) -> None:
    created = await _subscribe(graph, subscriber)
    await admin.call("POST", f"/subscriptions/{created.id}/expire")
    await admin.deliver(MAILBOX, {"subject": "too late"})
    stats = await admin.wait_stats(lambda s: s["notifications"].get("suppressedExpired", 0) >= 1)
    assert stats["notifications"].get("changePosts", 0) == 0
    assert subscriber.posts == 0
    with pytest.raises(GraphNotFound):
        await graph.renew_subscription(created.id, datetime.now(UTC) + timedelta(hours=1))


async def test_a_failed_delivery_is_retried(graph, admin: Admin, subscriber: Subscriber) -> None:
    await _subscribe(graph, subscriber)
    subscriber.fail_next = 2
    message = await admin.deliver(MAILBOX, {"subject": "retry me"})
    batch = await subscriber.next_batch()
    assert [n.item_id for n in batch.changes] == [message["id"]]
    assert subscriber.posts == 3
    stats = await admin.stats()
    assert stats["notifications"]["failedAttempts"] == 2 and stats["notifications"]["changeDelivered"] == 1


async def test_a_delivery_slower_than_the_limit_is_retried(graph, admin: Admin, subscriber: Subscriber) -> None:
    await _subscribe(graph, subscriber)
    subscriber.slow_next = 1
    message = await admin.deliver(MAILBOX, {"subject": "slow subscriber"})
    batch = await subscriber.next_batch()
    assert [n.item_id for n in batch.changes] == [message["id"]]
    assert subscriber.posts == 2
    stats = await admin.stats()
    assert stats["notifications"]["failedAttempts"] == 1 and stats["notifications"]["changeDelivered"] == 1


async def test_redelivery_gives_up_within_its_window(graph, admin: Admin, subscriber: Subscriber) -> None:
    await _subscribe(graph, subscriber)
    subscriber.always_fail = True
    await admin.deliver(MAILBOX, {"subject": "never"})
    stats = await admin.wait_stats(lambda s: s["notifications"].get("abandoned", 0) == 1)
    assert 2 <= stats["notifications"]["failedAttempts"] <= 5
    assert stats["notifications"].get("changeDelivered", 0) == 0


async def test_dropped_notifications_never_arrive(graph, admin: Admin, subscriber: Subscriber) -> None:
    await _subscribe(graph, subscriber)
    await admin.faults(dropNotificationsNext=1)
    await admin.deliver(MAILBOX, {"subject": "lost"})
    kept = await admin.deliver(MAILBOX, {"subject": "kept"})
    batch = await subscriber.next_batch()
    assert [n.item_id for n in batch.changes] == [kept["id"]]
    assert (await admin.stats())["notifications"]["dropped"] == 1


@pytest.mark.parametrize("event", list(LifecycleEvent))
async def test_lifecycle_notifications_on_demand(
    graph, admin: Admin, subscriber: Subscriber, event: LifecycleEvent
) -> None:
    created = await _subscribe(graph, subscriber)
    answer = await admin.call("POST", f"/subscriptions/{created.id}/lifecycle", {"lifecycleEvent": event.value})
    assert answer == {"sent": True}
    batch = await subscriber.next_batch()
    assert batch.changes == []
    [note] = batch.lifecycle
    assert note.lifecycle_event is event and note.subscription_id == created.id
    assert client_state_matches(note.client_state, SECRET)
    remaining = [s.id for s in await graph.list_subscriptions()]
    assert remaining == ([] if event is LifecycleEvent.SUBSCRIPTION_REMOVED else [created.id])
