"""SubscriptionUpkeep: the CRM mailbox always has a live mail subscription; lifecycle events heal it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_core.domain.tasks import LifecycleTask
from crm_core.storage.subscriptions import SubscriptionRecord
from crm_core.usecases.subscription_upkeep import SubscriptionUpkeep, mail_resource
from tests.unit.messages import CRM
from tests.usecases.fakes import FakeSubscriptionApi, FakeSubscriptionRecords

LIFETIME = timedelta(minutes=4200)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOTIFY = "https://crm.example/api/notifications"
LIFECYCLE = "https://crm.example/api/lifecycle"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Reconciler:
    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self) -> None:
        self.runs += 1


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def graph(clock: Clock) -> FakeSubscriptionApi:
    return FakeSubscriptionApi(clock)


@pytest.fixture
def records() -> FakeSubscriptionRecords:
    return FakeSubscriptionRecords()


@pytest.fixture
def reconcile() -> Reconciler:
    return Reconciler()


@pytest.fixture
def upkeep(graph: FakeSubscriptionApi, records: FakeSubscriptionRecords, reconcile: Reconciler) -> SubscriptionUpkeep:
    return SubscriptionUpkeep(
        graph,
        records,
        mailbox=CRM,
        notification_url=NOTIFY,
        lifecycle_url=LIFECYCLE,
        lifetime=LIFETIME,
        reconcile=reconcile,
    )


async def subscribed(
    upkeep: SubscriptionUpkeep, records: FakeSubscriptionRecords, reconcile: Reconciler | None = None
) -> SubscriptionRecord:
    """The first upkeep run's subscription; with `reconcile`, its count starts again from zero
    (the first creation reconciles), so a test counts only what it causes."""
    report = await upkeep.run(now=T0)
    (sub_id,) = report.created
    if reconcile is not None:
        reconcile.runs = 0
    return records.rows[sub_id]


async def test_a_missing_subscription_is_created_with_a_fresh_secret(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords, reconcile: Reconciler
) -> None:
    report = await upkeep.run(now=T0)

    assert len(report.created) == 1 and report.renewed == report.dropped == []
    live = graph.live[report.created[0]]
    assert live.resource == mail_resource(CRM) == f"users/{CRM}/mailFolders('inbox')/messages"
    assert (live.notification_url, live.lifecycle_url, live.change_type) == (NOTIFY, LIFECYCLE, "created")
    assert live.expires_at == T0 + LIFETIME
    record = records.rows[live.id]
    assert (record.kind, record.mailbox, record.resource) == ("mail", CRM, live.resource)
    assert record.client_state == live.client_state and len(record.client_state) >= 32
    assert (record.expires_at, record.created_at) == (T0 + LIFETIME, T0)
    assert reconcile.runs == 1  # what arrived before the record was saved is picked up


async def test_every_subscription_gets_its_own_secret(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords
) -> None:
    first = await subscribed(upkeep, records)
    await upkeep.handle(LifecycleTask(subscription_id=first.id, event="subscriptionRemoved"))

    (second,) = records.rows.values()
    assert second.id != first.id
    assert second.client_state != first.client_state


async def test_a_young_subscription_is_left_alone(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords
) -> None:
    record = await subscribed(upkeep, records)
    graph.calls.clear()

    report = await upkeep.run(now=T0 + LIFETIME / 2 - timedelta(minutes=1))

    assert (report.created, report.renewed, report.dropped) == ([], [], [])
    assert graph.calls == {"list": 1}  # only asked Graph what it still has
    assert records.rows == {record.id: record}


async def test_a_subscription_past_half_its_life_is_renewed(
    upkeep: SubscriptionUpkeep,
    graph: FakeSubscriptionApi,
    records: FakeSubscriptionRecords,
    clock: Clock,
    reconcile: Reconciler,
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    later = clock.now = T0 + LIFETIME / 2 + timedelta(minutes=1)

    report = await upkeep.run(now=later)

    assert (report.renewed, report.created, report.dropped) == ([record.id], [], [])
    assert graph.live[record.id].expires_at == later + LIFETIME
    assert records.rows[record.id].expires_at == later + LIFETIME
    assert records.rows[record.id].client_state == record.client_state
    assert reconcile.runs == 0
    # Renewed: the next run at the same time does nothing.
    graph.calls.clear()
    assert (await upkeep.run(now=later)).renewed == []
    assert graph.calls == {"list": 1}


async def test_a_renewal_graph_refuses_is_replaced_and_reconciled(
    upkeep: SubscriptionUpkeep,
    graph: FakeSubscriptionApi,
    records: FakeSubscriptionRecords,
    clock: Clock,
    reconcile: Reconciler,
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    del graph.live[record.id]  # Graph removed it without telling us
    later = clock.now = T0 + LIFETIME * 0.75

    report = await upkeep.run(now=later)

    assert report.dropped == [record.id]
    (new_id,) = report.created
    assert list(records.rows) == [new_id]
    assert new_id in graph.live
    assert reconcile.runs == 1


async def test_an_expired_subscription_is_dropped_recreated_and_reconciled(
    upkeep: SubscriptionUpkeep,
    graph: FakeSubscriptionApi,
    records: FakeSubscriptionRecords,
    clock: Clock,
    reconcile: Reconciler,
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    graph.calls.clear()
    later = clock.now = T0 + LIFETIME + timedelta(hours=1)  # the timer did not run for days

    report = await upkeep.run(now=later)

    assert report.dropped == [record.id]
    assert graph.calls == {"list": 1, "create": 1}  # no renewal attempt of the dead one
    (new_id,) = report.created
    assert records.rows[new_id].expires_at == later + LIFETIME
    assert record.id not in records.rows
    assert reconcile.runs == 1


async def test_another_mailboxs_subscription_does_not_count_as_ours(
    upkeep: SubscriptionUpkeep, records: FakeSubscriptionRecords
) -> None:
    other = SubscriptionRecord(
        id="foreign",
        resource=mail_resource("old-crm@firma.example"),
        kind="mail",
        mailbox="old-crm@firma.example",
        client_state="s" * 40,
        expires_at=T0 + LIFETIME,
        created_at=T0,
    )
    await records.save(other)

    report = await upkeep.run(now=T0)

    assert len(report.created) == 1
    assert records.rows[report.created[0]].resource == mail_resource(CRM)


# ---- lifecycle notifications ----------------------------------------------------------------


async def test_reauthorization_required_reauthorizes_and_renews(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords, reconcile: Reconciler
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    graph.calls.clear()
    before = datetime.now(UTC)

    await upkeep.handle(LifecycleTask(subscription_id=record.id, event="reauthorizationRequired"))

    assert graph.calls == {"reauthorize": 1, "renew": 1}
    assert records.rows[record.id].expires_at >= before + LIFETIME
    assert records.rows[record.id].client_state == record.client_state
    assert reconcile.runs == 1  # Graph paused delivery until now: what the pause hid is read


async def test_refused_reauthorization_replaces_the_subscription(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords, reconcile: Reconciler
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    graph.refuse_reauthorize = True

    await upkeep.handle(LifecycleTask(subscription_id=record.id, event="reauthorizationRequired"))

    (replacement,) = records.rows.values()
    assert replacement.id != record.id
    assert list(graph.live) == [replacement.id]
    assert reconcile.runs == 1


async def test_refused_renewal_after_reauthorization_leaves_a_live_subscription(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords, reconcile: Reconciler
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    graph.refuse_renewal = True  # reauthorized, then removed before the renewal

    await upkeep.handle(LifecycleTask(subscription_id=record.id, event="reauthorizationRequired"))

    (replacement,) = records.rows.values()
    assert replacement.id != record.id and replacement.id in graph.live
    assert reconcile.runs == 1


async def test_subscription_removed_is_recreated_and_reconciled(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords, reconcile: Reconciler
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    del graph.live[record.id]  # Graph removed it, and says so

    await upkeep.handle(LifecycleTask(subscription_id=record.id, event="subscriptionRemoved"))

    (replacement,) = records.rows.values()
    assert replacement.id != record.id
    assert replacement.resource == mail_resource(CRM)
    assert list(graph.live) == [replacement.id]
    assert reconcile.runs == 1


async def test_missed_reconciles_without_touching_the_subscription(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords, reconcile: Reconciler
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    graph.calls.clear()

    await upkeep.handle(LifecycleTask(subscription_id=record.id, event="missed"))

    assert reconcile.runs == 1
    assert graph.calls == {}
    assert records.rows == {record.id: record}


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
async def test_lifecycle_for_an_unknown_subscription_does_nothing(
    upkeep: SubscriptionUpkeep,
    graph: FakeSubscriptionApi,
    records: FakeSubscriptionRecords,
    reconcile: Reconciler,
    event: str,
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    graph.calls.clear()

    await upkeep.handle(LifecycleTask(subscription_id="not-ours", event=event))  # type: ignore[arg-type]

    assert graph.calls == {}
    assert reconcile.runs == 0
    assert records.rows == {record.id: record}


async def test_a_subscription_graph_dropped_silently_is_recreated_and_reconciled(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords, reconcile: Reconciler
) -> None:
    record = await subscribed(upkeep, records, reconcile)
    del graph.live[record.id]  # gone in Graph, and no lifecycle notification reached us

    report = await upkeep.run(now=T0 + timedelta(minutes=5))

    assert report.dropped == [record.id]
    [created] = report.created
    assert created != record.id
    assert set(records.rows) == {created}
    assert set(graph.live) == {created}
    assert reconcile.runs == 1


async def test_duplicate_subscriptions_from_two_processes_are_reduced_to_one(
    upkeep: SubscriptionUpkeep, graph: FakeSubscriptionApi, records: FakeSubscriptionRecords
) -> None:
    first = await subscribed(upkeep, records)
    # A second process created one too, a minute later (so it lives a minute longer).
    second_report = await upkeep._create(T0 + timedelta(minutes=1))
    report = await upkeep.run(now=T0 + timedelta(minutes=2))
    assert report.dropped == [first.id]
    assert set(records.rows) == {second_report.id}
    assert set(graph.live) == {second_report.id}
