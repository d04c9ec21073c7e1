"""Injected faults apply only after the API key check, and only to requests that passed it.

A request without a valid key is a 401 whatever faults are set (an outage, a 503 or 429 rate or
count, latency, a lost answer), and it consumes none of them: a `fail_next=1` or `lose_next=1`
meant for the service's next authorized request is still there for it. The health check needs no
key and still shows an outage.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.netgenium.ng_helpers import API_KEY_HEADER, Admin

RECORDS = "/api/v1/tables/ng_contacts/records"
NO_KEY: list[dict[str, str]] = [{}, {API_KEY_HEADER: "wrong"}, {API_KEY_HEADER: ""}, {"X-Api-Key": "wrong"}]


def _unauthorized(admin: Admin, headers: dict[str, str], method: str = "GET", **kwargs: Any) -> None:
    answer = admin.http.request(method, RECORDS, headers=headers, **kwargs)
    assert answer.status_code == 401, f"{answer.status_code}: {answer.text[:200]}"
    assert answer.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        ({"error_rate": 1.0}, 503),
        ({"throttle_rate": 1.0}, 429),
        ({"outage_seconds": 30}, 503),
        ({"fail_next": 1}, 503),
        ({"throttle_next": 1}, 429),
        ({"fail_next": 1, "operations": ["query"]}, 503),
    ],
)
def test_without_a_key_it_is_401_whatever_the_faults(admin: Admin, faults: dict[str, Any], status: int) -> None:
    admin.faults(**faults)
    for headers in NO_KEY:
        _unauthorized(admin, headers)
    assert admin.api("GET", RECORDS).status_code == status  # the fault is still there for the service


def test_unauthorized_requests_consume_no_count(admin: Admin) -> None:
    admin.faults(fail_next=1, throttle_next=1)
    for headers in NO_KEY * 3:
        _unauthorized(admin, headers)
    assert [admin.api("GET", RECORDS).status_code for _ in range(3)] == [429, 503, 200]
    injected = admin.http.get("/_admin/counts").json()["injected"]
    assert injected == {"429": 1, "503": 1}
    assert admin.counts()["query"] == 3 + 3 * len(NO_KEY)  # every request is still counted


def test_an_unauthorized_write_does_not_take_a_lost_answer(admin: Admin) -> None:
    admin.faults(lose_next=1, operations=["insert"])
    for headers in NO_KEY:
        _unauthorized(admin, headers, "POST", json={"ng_email": "a@x.example"})
    assert admin.api("GET", RECORDS).json()["records"] == []
    with pytest.raises(httpx.HTTPError):
        admin.api("POST", RECORDS, json={"ng_email": "b@x.example"})  # carried out, answer lost
    written = admin.api("GET", RECORDS).json()["records"]
    assert [r["ng_email"] for r in written] == ["b@x.example"]
    assert admin.api("POST", RECORDS, json={"ng_email": "c@x.example"}).status_code == 201


def test_an_unauthorized_request_is_not_slowed(admin: Admin) -> None:
    admin.faults(latency_ms=4000)
    started = time.monotonic()
    _unauthorized(admin, {})
    assert time.monotonic() - started < 2.0


def test_the_health_check_needs_no_key_and_still_shows_an_outage(admin: Admin) -> None:
    admin.faults(fail_next=1)
    assert admin.http.get("/api/v1/health").status_code == 200  # health does not take the fault
    admin.faults(outage_seconds=30)
    assert admin.http.get("/api/v1/health").status_code == 503
    _unauthorized(admin, {})
