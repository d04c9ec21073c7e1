"""Message and event delta under the real profile (the default) and the ideal one, over HTTP.

Each behaviour of the real profile follows a documentation page cited in docs/GRAPH.md: items in no
particular order across a round's pages, updated items with only what changed, `changeType` and
`$filter` as message delta documents them, `$top` capping the round, pages that take time, and sync
states that expire.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.graph.conftest import MAILBOX, SEED, TOKEN, Admin

DELTA = f"/users/{MAILBOX}/mailFolders/inbox/messages/delta"
CUSTOMER = {"emailAddress": {"address": "jan.novak@zakaznik.example"}}


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


async def read_round(
    http: httpx.AsyncClient, url: str, params: dict[str, str] | None = None, page_size: int | None = None
) -> tuple[list[list[dict[str, Any]]], str]:
    """Every page of one round, and its delta link."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    pages = []
    answer = await http.get(url, params=params, headers=headers)
    while True:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return pages, body["@odata.deltaLink"]
        answer = await http.get(body["@odata.nextLink"], headers=headers)


def flat(pages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [item for page in pages for item in page]


async def deliver(admin: Admin, count: int, prefix: str = "m", **extra: Any) -> list[dict[str, Any]]:
    body = {"messages": [{"subject": f"{prefix}{n:02}", "from": CUSTOMER, **extra} for n in range(count)]}
    delivered = await admin.call("POST", f"/users/{MAILBOX}/messages", body)
    return [delivered] if count == 1 else list(delivered["value"])


async def test_real_delta_shuffles_a_round_across_its_pages_the_same_way_for_the_same_seed(
    http: httpx.AsyncClient, admin: Admin
) -> None:
    await admin.steady_tokens()
    await deliver(admin, 30)
    pages, _ = await read_round(http, DELTA, {"$select": "subject"}, page_size=7)
    subjects = [item["subject"] for item in flat(pages)]
    assert sorted(subjects) == [f"m{n:02}" for n in range(30)] and len(pages) == 5
    assert subjects != sorted(subjects)
    assert {item["subject"] for item in pages[0]} != {f"m{n:02}" for n in range(7)}  # across pages too

    await admin.call("POST", "/reset")  # the random streams start again from the seed
    await admin.user(MAILBOX)
    await admin.steady_tokens()
    await deliver(admin, 30)
    again, _ = await read_round(http, DELTA, {"$select": "subject"}, page_size=7)
    assert [item["subject"] for item in flat(again)] == subjects


async def test_ideal_delta_keeps_the_order_of_arrival(ideal_http: httpx.AsyncClient, ideal_admin: Admin) -> None:
    await deliver(ideal_admin, 12)
    pages, _ = await read_round(ideal_http, DELTA, {"$select": "subject"}, page_size=5)
    assert [item["subject"] for item in flat(pages)] == [f"m{n:02}" for n in range(12)]


async def _updated_round(http: httpx.AsyncClient, admin: Admin) -> dict[str, dict[str, Any]]:
    a, b = await deliver(admin, 2)
    _, link = await read_round(http, DELTA)
    await admin.call("PATCH", f"/users/{MAILBOX}/messages/{a['id']}", {"isRead": True})
    await admin.call("PATCH", f"/users/{MAILBOX}/messages/{b['id']}", {"categories": ["Customer"]})
    [c] = await deliver(admin, 1, prefix="new")
    pages, _ = await read_round(http, link)
    items = {item["id"]: item for item in flat(pages)}
    assert set(items) == {a["id"], b["id"], c["id"]}
    return {"a": items[a["id"]], "b": items[b["id"]], "c": items[c["id"]]}


async def test_real_updated_items_carry_only_what_changed_and_created_items_are_whole(
    http: httpx.AsyncClient, admin: Admin
) -> None:
    await admin.steady_tokens()
    items = await _updated_round(http, admin)
    assert set(items["a"]) == {"@odata.type", "@odata.etag", "id", "isRead"} and items["a"]["isRead"] is True
    assert set(items["b"]) == {"@odata.type", "@odata.etag", "id", "categories"}
    assert items["b"]["categories"] == ["Customer"]
    assert items["c"]["subject"] == "new00" and items["c"]["from"] == CUSTOMER and items["c"]["internetMessageId"]


async def test_ideal_updated_items_are_whole(ideal_http: httpx.AsyncClient, ideal_admin: Admin) -> None:
    items = await _updated_round(ideal_http, ideal_admin)
    assert items["a"]["isRead"] is True and items["a"]["subject"] == "m00" and items["a"]["internetMessageId"]
    assert items["b"]["categories"] == ["Customer"] and items["b"]["from"] == CUSTOMER


async def test_change_type_selects_created_updated_or_deleted_and_carries_into_the_links(
    http: httpx.AsyncClient, admin: Admin
) -> None:
    await admin.steady_tokens()
    old = await deliver(admin, 4)
    links = {}
    for change_type in ("created", "updated", "deleted"):
        pages, links[change_type] = await read_round(http, DELTA, {"changeType": change_type}, page_size=1)
        expected = {m["id"] for m in old} if change_type == "created" else set()
        assert {item["id"] for item in flat(pages)} == expected  # the initial round: what exists now
    await admin.call("PATCH", f"/users/{MAILBOX}/messages/{old[0]['id']}", {"isRead": True})
    await admin.call("PATCH", f"/users/{MAILBOX}/messages/{old[1]['id']}", {"subject": "changed"})
    await admin.call("DELETE", f"/users/{MAILBOX}/messages/{old[2]['id']}")
    await admin.call("PATCH", f"/users/{MAILBOX}/messages/{old[3]['id']}", {"parentFolderId": "archive"})
    new = await deliver(admin, 3, prefix="late")

    created, _ = await read_round(http, links["created"], page_size=1)
    assert sorted(item["id"] for item in flat(created)) == sorted(m["id"] for m in new)
    assert all(item["internetMessageId"] and item["from"] == CUSTOMER for item in flat(created))
    assert len(created) == 3  # one item a page: the next links carried changeType=created
    updated, _ = await read_round(http, links["updated"], page_size=1)
    assert {item["id"]: set(item) - {"@odata.type", "@odata.etag", "id"} for item in flat(updated)} == {
        old[0]["id"]: {"isRead"},
        old[1]["id"]: {"subject"},
    }
    deleted, _ = await read_round(http, links["deleted"], page_size=1)
    assert sorted(item["id"] for item in flat(deleted)) == sorted([old[2]["id"], old[3]["id"]])
    assert all(item["@removed"] == {"reason": "deleted"} for item in flat(deleted))


async def test_a_received_date_filter_on_the_initial_request_holds_for_the_rounds_after(
    http: httpx.AsyncClient, admin: Admin
) -> None:
    await admin.steady_tokens()
    await deliver(admin, 1, prefix="old", receivedDateTime="2020-01-01T08:00:00Z")
    await deliver(admin, 1, prefix="edge", receivedDateTime="2026-11-01T00:00:00Z")
    await deliver(admin, 1, prefix="now")
    since = "receivedDateTime ge 2026-11-01T00:00:00Z"
    pages, link = await read_round(http, DELTA, {"$filter": since, "$select": "subject"})
    assert sorted(item["subject"] for item in flat(pages)) == ["edge00", "now00"]
    after, _ = await read_round(http, DELTA, {"$filter": "receivedDateTime gt 2026-11-01T00:00:00Z"})
    assert [item["subject"] for item in flat(after)] == ["now00"]

    await deliver(admin, 1, prefix="late-old", receivedDateTime="2021-05-05T00:00:00Z")
    await deliver(admin, 1, prefix="late-new")
    later, _ = await read_round(http, link)
    assert [item["subject"] for item in flat(later)] == ["late-new00"]

    for bad in ("subject eq 'x'", "receivedDateTime le 2026-11-01T00:00:00Z", "receivedDateTime ge yesterday"):
        answer = await http.get(DELTA, params={"$filter": bad})
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["code"] in ("ErrorInvalidUrlQueryFilter", "BadRequest")


async def test_real_top_caps_the_whole_round_and_ideal_top_is_a_page(
    http: httpx.AsyncClient, admin: Admin, ideal_http: httpx.AsyncClient, ideal_admin: Admin
) -> None:
    await admin.steady_tokens()
    await deliver(admin, 25)
    pages, link = await read_round(http, DELTA, {"$top": "5"}, page_size=2)
    assert [len(page) for page in pages] == [2, 2, 1, 0]  # then the round ends: the rest is not reported
    [late] = await deliver(admin, 1, prefix="late")
    following, _ = await read_round(http, link, page_size=2)
    assert [item["id"] for item in flat(following)] == [late["id"]]

    await deliver(ideal_admin, 25)
    ideal_pages, _ = await read_round(ideal_http, DELTA, {"$top": "5"})
    assert [len(page) for page in ideal_pages] == [5] * 5


async def test_pages_take_time_in_proportion_to_their_size(
    http: httpx.AsyncClient, admin: Admin, ideal_admin: Admin
) -> None:
    real, ideal = await admin.call("GET", "/faults"), await ideal_admin.call("GET", "/faults")
    assert (real["pageLatencyMs"], real["itemLatencyMs"], real["syncStateExpiryRate"]) == (20, 1.5, 0.02)
    assert (ideal["pageLatencyMs"], ideal["itemLatencyMs"], ideal["syncStateExpiryRate"]) == (0, 0, 0)
    await admin.steady_tokens()
    await deliver(admin, 10)
    await admin.faults(pageLatencyMs=100, itemLatencyMs=30)
    started = time.monotonic()
    answer = await http.get(DELTA, headers={"Prefer": "odata.maxpagesize=10"})
    assert len(answer.json()["value"]) == 10
    assert time.monotonic() - started >= 0.1 + 10 * 0.03
    cleared = await admin.call("DELETE", "/faults")
    assert (cleared["pageLatencyMs"], cleared["itemLatencyMs"]) == (20, 1.5)  # the profile's values again


async def test_real_sync_states_expire_at_a_seeded_rate_and_stay_expired(
    http: httpx.AsyncClient, admin: Admin
) -> None:
    await deliver(admin, 3)
    first = (await http.get(DELTA, headers={"Prefer": "odata.maxpagesize=1"})).json()
    await admin.faults(syncStateExpiryRate=1)
    gone = await http.get(first["@odata.nextLink"])
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"
    await admin.steady_tokens()
    assert (await http.get(first["@odata.nextLink"])).status_code == 410  # evicted for good
    assert (await http.get(DELTA)).status_code == 200  # a new round starts

    async def outcomes() -> list[int]:
        await admin.call("POST", "/reset")
        await admin.user(MAILBOX)
        await admin.faults(syncStateExpiryRate=0.5)
        _, link = await read_round(http, DELTA)
        statuses = []
        for _ in range(24):
            answer = await http.get(link)
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                link = answer.json()["@odata.deltaLink"]
            else:  # that link is dead for good: a new round gives a fresh one
                _, link = await read_round(http, DELTA)
        return statuses

    seen = await outcomes()
    assert set(seen) == {200, 410}, f"seed {SEED}: {seen}"
    assert await outcomes() == seen  # the same seed, the same expiries


async def test_ideal_sync_states_do_not_expire(ideal_http: httpx.AsyncClient, ideal_admin: Admin) -> None:
    await deliver(ideal_admin, 2)
    _, link = await read_round(ideal_http, DELTA)
    assert all([(await ideal_http.get(link)).status_code == 200 for _ in range(60)])


async def test_real_event_delta_shuffles_too(http: httpx.AsyncClient, admin: Admin) -> None:
    await admin.steady_tokens()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    for n in range(12):
        moment = start + timedelta(hours=n)
        await admin.call("POST", f"/users/{MAILBOX}/events", {
            "subject": f"e{n:02}", "start": {"dateTime": moment.isoformat(), "timeZone": "UTC"},
            "end": {"dateTime": (moment + timedelta(minutes=30)).isoformat(), "timeZone": "UTC"}})
    window = {"startDateTime": start.isoformat(), "endDateTime": (start + timedelta(days=2)).isoformat()}
    pages, _ = await read_round(http, f"/users/{MAILBOX}/calendarView/delta", window, page_size=5)
    subjects = [item["subject"] for item in flat(pages)]
    assert sorted(subjects) == [f"e{n:02}" for n in range(12)] and subjects != sorted(subjects)
