"""accept_changes / accept_lifecycle: parse, check clientState against the stored secret, enqueue."""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_core.domain.notifications import MAX_BODY_BYTES, NotificationRejected
from crm_core.domain.tasks import CaptureTask, LifecycleTask
from crm_core.storage.subscriptions import SubscriptionRecord, SubscriptionStore
from crm_core.usecases.notification_intake import MAX_SUBSCRIPTIONS_PER_POST, accept_changes, accept_lifecycle
from crm_core.usecases.subscription_upkeep import mail_resource
from tests.unit.messages import CRM
from tests.usecases.fakes import FakeSubscriptionRecords, notification_body

SECRET = "s3cr3t-" + "x" * 40
OURS = SubscriptionRecord(
    id="sub-ours",
    resource=mail_resource(CRM),
    kind="mail",
    mailbox=CRM,
    client_state=SECRET,
    expires_at=datetime.now(UTC) + timedelta(days=2),
    created_at=datetime.now(UTC),
)


@pytest.fixture(params=["memory", "table"])
def lookup(request: pytest.FixtureRequest) -> FakeSubscriptionRecords | SubscriptionStore:
    if request.param == "memory":
        return FakeSubscriptionRecords()
    # No cache: every lookup reads the table, as a cold webhook instance does.
    return SubscriptionStore(request.getfixturevalue("storage"), cache_seconds=0)


@pytest.fixture
async def subscriptions(lookup: FakeSubscriptionRecords | SubscriptionStore) -> Any:
    await lookup.save(OURS)
    return lookup


def change(
    item_id: str = "AAMkAD-1",
    *,
    subscription_id: str = OURS.id,
    client_state: str | None = SECRET,
    change_type: str = "created",
    resource_data: bool = True,
) -> dict[str, Any]:
    note: dict[str, Any] = {
        "subscriptionId": subscription_id,
        "changeType": change_type,
        "clientState": client_state,
        "resource": f"Users/{CRM}/Messages/{item_id}",
        "tenantId": "tenant-1",
    }
    if resource_data:
        note["resourceData"] = {"@odata.type": "#Microsoft.Graph.Message", "id": item_id}
    return note


def lifecycle(event: str, *, subscription_id: str = OURS.id, client_state: str | None = SECRET) -> dict[str, Any]:
    return {
        "subscriptionId": subscription_id,
        "lifecycleEvent": event,
        "clientState": client_state,
        "subscriptionExpirationDateTime": "2024-05-03T12:00:00Z",
    }


async def test_a_valid_notification_becomes_a_capture_task(subscriptions: Any) -> None:
    intake = await accept_changes(notification_body(change("AAMkAD-1")), subscriptions)

    assert intake.dropped == 0
    (raw,) = intake.tasks
    assert CaptureTask.model_validate_json(raw) == CaptureTask(
        subscription_id=OURS.id, kind="mail", mailbox=CRM, item_ids=["AAMkAD-1"], change_type="created"
    )


async def test_the_item_id_comes_from_the_resource_when_resource_data_is_missing(subscriptions: Any) -> None:
    intake = await accept_changes(notification_body(change("AAMkAD-9", resource_data=False)), subscriptions)

    assert CaptureTask.model_validate_json(intake.tasks[0]).item_ids == ["AAMkAD-9"]


@pytest.mark.parametrize(
    "client_state",
    [None, "", "wrong", SECRET[:-1], SECRET + "x", SECRET.upper(), "žluťoučký kůň " + SECRET],
    ids=["missing", "empty", "wrong", "prefix", "longer", "case", "non-ascii"],
)
async def test_a_forged_client_state_is_dropped(subscriptions: Any, client_state: str | None) -> None:
    intake = await accept_changes(notification_body(change(client_state=client_state)), subscriptions)

    assert (intake.tasks, intake.dropped) == ([], 1)


@pytest.mark.parametrize("subscription_id", ["sub-unknown", "../sub-ours", "sub-ours#x"])
async def test_a_notification_of_an_unknown_subscription_is_dropped(subscriptions: Any, subscription_id: str) -> None:
    # Even with the right secret: it is not a subscription we own.
    intake = await accept_changes(notification_body(change(subscription_id=subscription_id)), subscriptions)

    assert (intake.tasks, intake.dropped) == ([], 1)


async def test_a_mixed_batch_keeps_only_the_genuine_ones(subscriptions: Any) -> None:
    body = notification_body(
        change("g1"),
        change("g2", client_state="forged"),
        change("g3", subscription_id="someone-elses"),
        change("g4", change_type="deleted"),
        change("g5", client_state=None),
        change("g6"),
    )

    intake = await accept_changes(body, subscriptions)

    tasks = [CaptureTask.model_validate_json(t) for t in intake.tasks]
    assert [(t.item_ids, t.change_type) for t in tasks] == [(["g1", "g6"], "created"), (["g4"], "deleted")]
    assert intake.dropped == 3


async def test_a_big_post_is_few_queue_items_each_id_once(subscriptions: Any) -> None:
    body = notification_body(*(change(f"g{n % 230}") for n in range(460)))

    intake = await accept_changes(body, subscriptions)

    tasks = [CaptureTask.model_validate_json(t) for t in intake.tasks]
    assert [len(t.item_ids) for t in tasks] == [100, 100, 30]
    assert [i for t in tasks for i in t.item_ids] == [f"g{n}" for n in range(230)]
    assert all(len(raw.encode()) < 64 * 1024 for raw in intake.tasks)


async def test_the_client_state_is_compared_in_constant_time(
    subscriptions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)

    intake = await accept_changes(notification_body(change(), change(client_state="forged")), subscriptions)

    assert len(intake.tasks) == 1
    assert compared == [(SECRET.encode(), SECRET.encode()), (b"forged", SECRET.encode())]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"value": "x"}', 400),
        (b'{"value": []}', 400),
        (json.dumps({"value": [{"subscriptionId": "s", "resource": "r"}]}).encode(), 400),  # no changeType
        (json.dumps({"value": [{**change(), "changeType": "exploded"}]}).encode(), 400),
        (b'{"value": [' + b"1," * (MAX_BODY_BYTES // 2) + b"1]}", 413),
    ],
    ids=["empty", "not-json", "array", "value-not-list", "value-empty", "no-change-type", "bad-change-type", "huge"],
)
async def test_a_bad_body_is_rejected_with_a_4xx(subscriptions: Any, body: bytes, status: int) -> None:
    with pytest.raises(NotificationRejected) as raised:
        await accept_changes(body, subscriptions)

    assert raised.value.status == status


# ---- lifecycle --------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
async def test_a_valid_lifecycle_notification_becomes_a_task(subscriptions: Any, event: str) -> None:
    intake = await accept_lifecycle(notification_body(lifecycle(event)), subscriptions)

    assert intake.dropped == 0
    assert [LifecycleTask.model_validate_json(t) for t in intake.tasks] == [
        LifecycleTask(subscription_id=OURS.id, event=event)  # type: ignore[arg-type]
    ]


async def test_forged_or_unknown_lifecycle_notifications_are_dropped(subscriptions: Any) -> None:
    body = notification_body(
        lifecycle("subscriptionRemoved", client_state="forged"),
        lifecycle("missed", subscription_id="not-ours"),
        lifecycle("missed", client_state=None),
        lifecycle("missed"),
    )

    intake = await accept_lifecycle(body, subscriptions)

    assert [LifecycleTask.model_validate_json(t).event for t in intake.tasks] == ["missed"]
    assert intake.dropped == 3


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"value": [{"subscriptionId": "sub-ours"}]}', notification_body(lifecycle("deleted"))],
    ids=["broken-json", "no-event", "unknown-event"],
)
async def test_a_bad_lifecycle_body_is_rejected_with_400(subscriptions: Any, body: bytes) -> None:
    with pytest.raises(NotificationRejected) as raised:
        await accept_lifecycle(body, subscriptions)

    assert raised.value.status == 400


class _SlowLookup:
    """Subscription lookups that each take a while, counting how many run at once."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def get(self, subscription_id: str) -> SubscriptionRecord | None:
        self.calls.append(subscription_id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            return await self._inner.get(subscription_id)
        finally:
            self.in_flight -= 1


async def test_a_post_of_a_thousand_unknown_subscriptions_reads_a_bounded_few_at_once(subscriptions: Any) -> None:
    lookup = _SlowLookup(subscriptions)
    notes = [change(f"AAMkAD-{n}", subscription_id=f"forged-{n}") for n in range(1000)]
    intake = await accept_changes(json.dumps({"value": notes}).encode(), lookup)
    assert len(lookup.calls) == MAX_SUBSCRIPTIONS_PER_POST  # not 1,000 reads
    assert len(set(lookup.calls)) == len(lookup.calls)  # each subscription once, however often named
    assert 1 < lookup.most_in_flight <= 16  # in parallel, and bounded
    assert intake.dropped == 1000


async def test_a_subscription_named_by_many_notifications_is_read_once(subscriptions: Any) -> None:
    lookup = _SlowLookup(subscriptions)
    notes = [change(f"AAMkAD-{n}") for n in range(50)]
    intake = await accept_changes(json.dumps({"value": notes}).encode(), lookup)
    assert lookup.calls == [OURS.id]
    assert intake.dropped == 0
    assert sum(len(CaptureTask.model_validate_json(t).item_ids) for t in intake.tasks) == 50
