"""The backfill's reading: a folder's messages by received time, oldest first, and their count;
the adapter against the emulator, and the emulator's answers to what Graph documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from crm_core.graph.client import GraphAdapter
from tests.graph.conftest import MAILBOX, TOKEN, Admin

CUSTOMER = {"emailAddress": {"address": "jan.novak@zakaznik.example"}}
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _at(day: int) -> str:
    return (T0 + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _history(admin: Admin, tag: str, days: list[int]) -> list[str]:
    ids = []
    for day in days:
        message_id = f"<{tag}-{day}@zakaznik.example>"
        await admin.deliver(
            MAILBOX,
            {
                "internetMessageId": message_id,
                "subject": f"day {day}",
                "from": CUSTOMER,
                "toRecipients": [{"emailAddress": {"address": MAILBOX}}],
                "receivedDateTime": _at(day),
            },
        )
        ids.append(message_id)
    return ids


async def test_list_pages_oldest_first_within_the_range_and_counts_it(graph: GraphAdapter, admin: Admin) -> None:
    await _history(admin, "range", [9, 3, 5, 1, 7, 11, 2, 40])
    since, until = T0 + timedelta(days=2), T0 + timedelta(days=11)

    assert await graph.message_count(MAILBOX, received_from=since, received_before=until) == 5
    seen: list[Any] = []
    page = await graph.message_list_page(MAILBOX, received_from=since, received_before=until, page_size=2)
    pages = 1
    seen += page.messages
    while page.next_link:
        page = await graph.message_list_page(MAILBOX, link=page.next_link)
        seen += page.messages
        pages += 1
    assert pages == 3
    assert [m.received_date_time for m in seen] == [_at(d) for d in (2, 3, 5, 7, 9)]  # [since, until), oldest first
    assert all(m.internet_message_id and m.from_ for m in seen)


async def test_the_emulator_answers_filter_orderby_and_count_as_graph_documents(
    graph_server: Any, admin: Admin
) -> None:
    await _history(admin, "odata", [1, 2, 3])
    url = f"{graph_server.base_url}/v1.0/users/{MAILBOX}/mailFolders/inbox/messages"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        newest = await client.get(url, params={"$select": "receivedDateTime", "$top": "1"})
        assert newest.json()["value"][0]["receivedDateTime"] == _at(3)  # newest first without $orderby
        ranged = await client.get(
            url,
            params={
                "$filter": f"receivedDateTime ge {_at(2)} and receivedDateTime le {_at(3)}",
                "$orderby": "receivedDateTime asc",
                "$count": "true",
                "$top": "1",
            },
        )
        body = ranged.json()
        assert ranged.status_code == 200 and body["@odata.count"] == 2
        assert "$filter=" in body["@odata.nextLink"] and "$orderby=" in body["@odata.nextLink"]
        follow = (await client.get(body["@odata.nextLink"])).json()
        assert [m["receivedDateTime"] for m in body["value"] + follow["value"]] == [_at(2), _at(3)]
        assert "@odata.nextLink" not in follow

        inefficient = await client.get(url, params={"$filter": f"receivedDateTime ge {_at(2)}", "$orderby": "subject"})
        assert inefficient.status_code == 400 and inefficient.json()["error"]["code"] == "InefficientFilter"
        unsupported = await client.get(url, params={"$filter": "isRead eq false"})
        assert unsupported.status_code == 400
