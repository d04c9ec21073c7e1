"""crm_core.netgenium.retry: Retry-After parsing, full-jitter bounds, and the two bounds (attempts, total time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_core.domain.errors import ServiceRejected, ServiceUnavailable, parse_retry_after
from crm_core.netgenium.retry import RetryPolicy, next_delay, retry_async

NOW = datetime(2024, 5, 6, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0.5", 0.5),
        ("-5", 0.0),
        (format_datetime(NOW + timedelta(seconds=10), usegmt=True), 10.0),
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), 0.0),
        ("Mon, 06 May 2024 12:00:30 GMT", 30.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """Fails `failures` times with `error`, then answers "ok"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ServiceUnavailable)


def _hint(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, ServiceUnavailable) else None


async def _run(call: Flaky, policy: RetryPolicy, time: FakeTime) -> str:
    return await retry_async(
        call,
        policy=policy,
        is_retryable=_retryable,
        retry_after_of=_hint,
        sleep=time.sleep,
        clock=time.clock,
        rng=lambda: 1.0,
    )


async def test_succeeds_after_transient_failures_with_growing_waits() -> None:
    time = FakeTime()
    call = Flaky(3, ServiceUnavailable("busy"))
    assert await _run(call, RetryPolicy(max_attempts=5, base_delay=1, max_delay=3), time) == "ok"
    assert call.calls == 4
    assert time.sleeps == [1, 2, 3]  # capped at max_delay


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    time = FakeTime()
    error = ServiceUnavailable("down", retry_after=None)
    call = Flaky(100, error)
    with pytest.raises(ServiceUnavailable) as raised:
        await _run(call, RetryPolicy(max_attempts=3, base_delay=0.1), time)
    assert raised.value is error and call.calls == 3 and len(time.sleeps) == 2


async def test_gives_up_when_the_next_wait_would_cross_the_total_time() -> None:
    time = FakeTime()
    call = Flaky(100, ServiceUnavailable("down"))
    policy = RetryPolicy(max_attempts=100, base_delay=1, max_delay=4, max_total_seconds=10)
    with pytest.raises(ServiceUnavailable):
        await _run(call, policy, time)
    assert sum(time.sleeps) <= 10
    assert time.sleeps == [1, 2, 4]  # a fourth wait of 4 would end at 11


async def test_retry_after_is_obeyed_not_shortened() -> None:
    time = FakeTime()
    call = Flaky(1, ServiceUnavailable("throttled", retry_after=7))
    assert await _run(call, RetryPolicy(max_delay=1, max_total_seconds=60), time) == "ok"
    assert time.sleeps == [7]


async def test_a_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    time = FakeTime()
    call = Flaky(1, ServiceUnavailable("throttled", retry_after=600))
    with pytest.raises(ServiceUnavailable) as raised:
        await _run(call, RetryPolicy(max_total_seconds=60), time)
    assert raised.value.retry_after == 600 and call.calls == 1 and time.sleeps == []


async def test_a_non_retryable_error_is_raised_at_once() -> None:
    time = FakeTime()
    call = Flaky(1, ServiceRejected("bad request"))
    with pytest.raises(ServiceRejected):
        await _run(call, RetryPolicy(), time)
    assert call.calls == 1 and time.sleeps == []


def test_the_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


@given(
    attempt=st.integers(min_value=1, max_value=200),
    draw=st.floats(min_value=0, max_value=1),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=100),
)
def test_full_jitter_stays_between_zero_and_the_cap(attempt: int, draw: float, base: float, cap: float) -> None:
    policy = RetryPolicy(max_attempts=1000, base_delay=base, max_delay=cap, max_total_seconds=1e9)
    delay = next_delay(policy, attempt, 0.0, None, rng=lambda: draw)
    assert delay is not None
    assert 0 <= delay <= min(cap, policy.backoff_cap(attempt)) + 1e-9


@given(attempts=st.integers(min_value=1, max_value=20), elapsed=st.floats(min_value=0, max_value=100))
def test_no_wait_is_granted_past_either_bound(attempts: int, elapsed: float) -> None:
    policy = RetryPolicy(max_attempts=attempts, base_delay=1, max_delay=8, max_total_seconds=50)
    assert next_delay(policy, attempts, 0.0, None) is None
    delay = next_delay(policy, attempts - 1, elapsed, None) if attempts > 1 else None
    if delay is not None:
        assert elapsed + delay <= 50
