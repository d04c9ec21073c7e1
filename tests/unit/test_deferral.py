"""A task stopped by a server that asked us to wait goes back to the queue for later (issue 10, item 8)."""

from __future__ import annotations

import pytest

from crm_core.domain.errors import ServiceRejected, ServiceUnavailable, Throttled
from crm_core.domain.tasks import MAX_DEFERRALS, CaptureTask, deferral

TASK = CaptureTask(
    subscription_id="s", kind="mail", mailbox="crm@firma.example", item_ids=["g1"], change_type="created"
)


def test_a_throttled_task_waits_what_the_server_asked_and_keeps_its_content() -> None:
    later = deferral(TASK, Throttled("429", retry_after=7))
    assert later is not None
    task, delay = later
    assert delay == 7
    assert task.deferrals == 1
    assert task.model_dump(exclude={"deferrals"}) == TASK.model_dump(exclude={"deferrals"})


def test_each_deferral_waits_longer_up_to_five_minutes() -> None:
    delays = []
    task = TASK
    for _ in range(12):
        later = deferral(task, Throttled("429", retry_after=0))
        assert later is not None
        task, delay = later
        delays.append(delay)
    assert delays[:4] == [1, 2, 4, 8]
    assert delays == sorted(delays) and delays[-1] == 300


def test_a_huge_retry_after_is_capped_at_an_hour() -> None:
    later = deferral(TASK, Throttled("429", retry_after=10**9))
    assert later is not None and later[1] == 3600


@pytest.mark.parametrize(
    "error",
    [
        ServiceUnavailable("503 without a hint"),  # an outage: an ordinary failed attempt
        ServiceUnavailable("503", retry_after=5),  # an outage with a hint: still the host's retries
        Throttled("429 without a hint"),
        ServiceRejected("400", retry_after=5),  # not retryable, whatever the header says
        ValueError("a bug"),
    ],
)
def test_errors_without_a_servers_wait_are_ordinary_failures(error: Exception) -> None:
    assert deferral(TASK, error) is None


def test_deferrals_end_so_a_task_cannot_wait_forever() -> None:
    spent = TASK.model_copy(update={"deferrals": MAX_DEFERRALS})
    assert deferral(spent, Throttled("429", retry_after=1)) is None


def test_an_old_queue_item_without_the_counter_still_parses() -> None:
    old = '{"subscription_id":"s","kind":"mail","mailbox":"m","item_ids":["g"],"change_type":"created"}'
    assert CaptureTask.model_validate_json(old).deferrals == 0


def test_the_adapters_mark_a_429_as_throttling_and_a_503_as_an_outage() -> None:
    from crm_core.graph.errors import GraphUnavailable
    from crm_core.netgenium.errors import NetGeniumUnavailable

    assert deferral(TASK, GraphUnavailable("429", retry_after=2, status=429)) is not None
    assert deferral(TASK, GraphUnavailable("503", retry_after=2, status=503)) is None
    assert deferral(TASK, NetGeniumUnavailable("429", retry_after=2, status=429)) is not None
    assert deferral(TASK, NetGeniumUnavailable("503", retry_after=2, status=503)) is None
