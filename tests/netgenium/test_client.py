"""The client against the emulator over real HTTP: every operation, paging, retries, keys, fitting."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import crm_core.netgenium
from crm_core.netgenium import (
    Attachment,
    CalendarActivity,
    EmailActivity,
    NetGeniumAuthError,
    NetGeniumClient,
    NetGeniumNotFound,
    NetGeniumRejected,
    NetGeniumUnavailable,
    NgContact,
    NgOrder,
    NgUser,
    default_schema_map,
)
from crm_core.netgenium import filters as f
from crm_core.netgenium.fit import utf16_len
from crm_core.netgenium.retry import RetryPolicy
from crm_core.netgenium.schema_map import load_schema_map
from sandbox.launch import ServerProcess
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER, FAST_RETRY, MAX_FILE_BYTES, Admin

WHEN = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def _activity(message_id: str = "<m1@firma.example>", **changes: object) -> EmailActivity:
    data: dict[str, object] = {
        "subject": "Order:4 delivery",
        "body_text": "Hello\nworld",
        "body_html": "<p>Hello</p><p>world</p>",
        "direction": "incoming",
        "date": WHEN,
        "message_id": message_id,
        "conversation_id": "AAQkAGI2",
        "contact_id": 11,
        "company_id": 3,
        "user_id": 7,
        "order_id": 40,
    }
    data.update(changes)
    return EmailActivity.model_validate(data)


class SleepRecorder:
    """Records the waits the client asks for, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_health_and_table_metadata(client: NetGeniumClient) -> None:
    assert (await client.health())["status"] == "ok"
    info = await client.get_table("ng_contacts")
    columns = {column.name: column for column in info.columns}
    assert {"id", "pid", "pform", "userid", "system", "ng_email", "ng_company_id"} <= set(columns)
    assert columns["ng_email"].type == "text" and columns["ng_email"].max_length == 255
    with pytest.raises(NetGeniumNotFound):
        await client.get_table("ng_nothing")


async def test_find_contacts_by_emails_is_case_insensitive_and_escapes_quotes(
    client: NetGeniumClient, admin: Admin
) -> None:
    admin.seed(
        "ng_contacts",
        [
            {"id": 5, "ng_email": "O'Brien@Firma.example", "ng_company_id": 3},
            {"id": 6, "ng_email": "jana@firma.example", "ng_company_id": None},
            {"id": 7, "ng_email": "other@firma.example", "ng_company_id": 3},
        ],
    )
    found = await client.find_contacts_by_emails(
        ["<o'brien@firma.example>", " JANA@firma.example", "jana@firma.example", "nobody@x.example", ""]
    )
    assert found == [
        NgContact(id=5, email="o'brien@firma.example", company_id=3),
        NgContact(id=6, email="jana@firma.example", company_id=None),
    ]
    assert admin.counts()["query"] == 1  # one request with `in`
    assert await client.find_contacts_by_emails([]) == []
    assert await client.find_contacts_by_emails(["x' or 1=1 --@firma.example"]) == []


async def test_find_contacts_chunks_many_addresses_and_finds_all(client: NetGeniumClient, admin: Admin) -> None:
    admin.seed(
        "ng_contacts",
        [{"id": n, "ng_email": f"customer.number.{n}@firma.example"} for n in range(1, 301)],
    )
    wanted = [f"customer.number.{n}@firma.example" for n in range(1, 301)]
    found = await client.find_contacts_by_emails(wanted)
    assert [contact.id for contact in found] == list(range(1, 301))
    requests = admin.counts()["query"]
    assert 3 <= requests <= 20  # chunked to fit the URL, not one request per address


async def test_users_by_email_and_all_users(client: NetGeniumClient, admin: Admin) -> None:
    admin.seed(
        "ng_users",
        [
            {"id": 1, "ng_email": "Petr@Company.example", "ng_name": "Petr"},
            {"id": 2, "ng_email": "eva@company.example", "ng_name": "Eva"},
            {"id": 3, "ng_email": None, "ng_name": "Service account"},
        ],
    )
    assert await client.find_users_by_emails(["petr@company.example"]) == [
        NgUser(id=1, email="petr@company.example", name="Petr")
    ]
    everyone = await client.list_users()
    assert [(user.id, user.email) for user in everyone] == [
        (1, "petr@company.example"),
        (2, "eva@company.example"),
        (3, ""),
    ]


async def test_find_order_by_number(client: NetGeniumClient, admin: Admin) -> None:
    admin.seed("ng_orders", [{"id": 40, "ng_number": 4}, {"id": 41, "ng_number": 5}])
    assert await client.find_order_by_number(4) == NgOrder(id=40, number=4)
    assert await client.find_order_by_number(6) is None


async def test_create_email_activity_stores_every_field_and_attachments(client: NetGeniumClient, admin: Admin) -> None:
    attachments = [
        Attachment(filename="offer.pdf", content=b"%PDF-1.7 offer"),
        Attachment(filename="image001.png", content=b"\x89PNG one"),
        Attachment(filename="IMAGE001.png", content=b"\x89PNG two"),
        Attachment(filename="../../etc/passwd", content=b"not a path"),
    ]
    activity_id = await client.create_email_activity(_activity(), attachments)
    record = await client.get_record("ng_activities", activity_id)
    assert record["ng_kind"] == "email"
    assert record["ng_subject"] == "Order:4 delivery"
    assert record["ng_body"] == "Hello\nworld"
    assert record["ng_body_html"] == "<p>Hello</p><p>world</p>"
    assert record["ng_direction"] == "incoming"
    assert record["ng_date"] == "2024-05-06T07:08:09.123Z"
    assert record["ng_message_id"] == "<m1@firma.example>"
    assert (record["ng_contact_id"], record["ng_company_id"], record["ng_user_id"], record["ng_order_id"]) == (
        11,
        3,
        7,
        40,
    )
    files = {item["filename"]: item for item in record["ng_attachments"]}
    assert set(files) == {"offer.pdf", "image001.png", "IMAGE001 (2).png", "_.._etc_passwd"}
    answer = admin.api(
        "GET", f"/api/v1/tables/ng_activities/records/{activity_id}/files/{files['IMAGE001 (2).png']['file_id']}"
    )
    assert answer.content == b"\x89PNG two"
    assert await client.find_activity_by_message_id("<m1@firma.example>") == activity_id
    assert await client.find_activity_by_message_id("<other@firma.example>") is None


async def test_subject_longer_than_the_column_is_cut_on_purpose(client: NetGeniumClient) -> None:
    subject = "Re: " + "😀" * 10 + "x" * 400
    activity_id = await client.create_email_activity(_activity(subject=subject))
    stored = (await client.get_record("ng_activities", activity_id))["ng_subject"]
    assert utf16_len(stored) <= 255
    assert stored.endswith("…")
    assert subject.startswith(stored[:-1])
    # Without the cut, NET Genium (and the emulator) refuses the value rather than truncating it.
    with pytest.raises(NetGeniumRejected) as refused:
        await client.insert("ng_activities", {"ng_subject": subject})
    assert refused.value.code == "value_too_long" and not refused.value.retryable


async def test_long_message_id_is_fitted_and_found_again(client: NetGeniumClient) -> None:
    long_id = "<" + "a" * 300 + "@firma.example>"
    other = "<" + "a" * 300 + "@other.example>"  # same first 255 characters
    first = await client.create_email_activity(_activity(long_id))
    second = await client.create_email_activity(_activity(other))
    assert first != second
    stored = (await client.get_record("ng_activities", first))["ng_message_id"]
    assert len(stored) == 255
    assert stored.endswith("~" + hashlib.sha256(long_id.encode()).hexdigest()[:16])
    assert await client.find_activity_by_message_id(long_id) == first
    assert await client.find_activity_by_message_id(other) == second


async def test_creating_the_same_mail_twice_returns_the_first_activity(client: NetGeniumClient, admin: Admin) -> None:
    first = await client.create_email_activity(_activity(), [Attachment(filename="a.txt", content=b"a")])
    again = await client.create_email_activity(
        _activity(),
        [Attachment(filename="a.txt", content=b"a"), Attachment(filename="b.txt", content=b"b")],
    )
    assert again == first
    records = await client.query("ng_activities", f.eq("ng_kind", "email"), columns=["id", "ng_attachments"])
    assert [r["id"] for r in records] == [first]
    assert sorted(item["filename"] for item in records[0]["ng_attachments"]) == ["a.txt", "b.txt"]
    assert admin.counts()["attach_file"] == 2  # a.txt was not uploaded again


async def test_a_lost_answer_to_an_insert_does_not_duplicate_the_mail(client: NetGeniumClient, admin: Admin) -> None:
    admin.faults(lose_next=1, operations=["insert"])
    activity_id = await client.create_email_activity(_activity())
    records = await client.query("ng_activities", f.eq("ng_kind", "email"), columns=["id"])
    assert [r["id"] for r in records] == [activity_id]
    assert admin.counts()["insert"] == 2  # repeated, and the 409 resolved to the stored one


async def test_an_insert_without_a_unique_key_is_not_repeated_after_a_lost_answer(
    client: NetGeniumClient, admin: Admin
) -> None:
    admin.faults(lose_next=1, operations=["insert"])
    activity = CalendarActivity(subject="No event id", start=WHEN, end=WHEN + timedelta(hours=1))
    with pytest.raises(NetGeniumUnavailable) as failed:
        await client.upsert_calendar_activity(activity)
    assert failed.value.ambiguous and failed.value.retryable
    assert admin.counts()["insert"] == 1


async def test_continuation_paging_over_2500_records(client: NetGeniumClient, admin: Admin) -> None:
    admin.seed("ng_contacts", [{"id": n, "ng_email": f"c{n}@x.example"} for n in range(1, 2501)])
    ids = [r["id"] async for r in client.iter_records("ng_contacts", columns=["id"], page_size=1000)]
    assert ids == list(range(1, 2501))
    assert admin.counts()["query"] == 3
    descending = await client.query("ng_contacts", f.le("id", 1200), columns=["ng_email"], orderby="ng_email desc")
    assert len(descending) == 1200
    emails = [r["ng_email"] for r in descending]
    # The order of text is the database's collation (Firebird's UNICODE_CI puts "@" before digits,
    # as SQL Server's does; SQLite's NOCASE orders by code point): descending reverses ascending.
    ascending = await client.query("ng_contacts", f.le("id", 1200), columns=["ng_email"], orderby="ng_email")
    assert emails == [r["ng_email"] for r in reversed(ascending)]
    assert set(emails) == {f"c{n}@x.example" for n in range(1, 1201)}


async def test_retries_503_and_then_succeeds(client: NetGeniumClient, admin: Admin) -> None:
    admin.seed("ng_orders", [{"id": 40, "ng_number": 4}])
    admin.faults(fail_next=2, retry_after=None)
    assert await client.find_order_by_number(4) == NgOrder(id=40, number=4)
    assert admin.counts()["query"] == 3


@pytest.mark.parametrize(("retry_after", "low", "high"), [("2", 2.0, 2.0), ("date:3", 1.0, 3.0)])
async def test_429_waits_as_long_as_retry_after_says(
    emulator: ServerProcess, admin: Admin, retry_after: str, low: float, high: float
) -> None:
    admin.seed("ng_orders", [{"id": 40, "ng_number": 4}])
    admin.faults(throttle_next=1, retry_after=retry_after)
    sleep = SleepRecorder()
    async with NetGeniumClient(
        emulator.base_url, API_KEY, api_key_header=API_KEY_HEADER, retry=FAST_RETRY, sleep=sleep
    ) as ng:
        assert await ng.find_order_by_number(4) == NgOrder(id=40, number=4)
    assert len(sleep.waits) == 1 and low <= sleep.waits[0] <= high
    assert admin.counts()["query"] == 2


async def test_gives_up_after_the_attempt_bound(emulator: ServerProcess, admin: Admin) -> None:
    admin.faults(outage_seconds=60)
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01, max_total_seconds=600)
    async with NetGeniumClient(
        emulator.base_url, API_KEY, api_key_header=API_KEY_HEADER, retry=policy, sleep=sleep
    ) as ng:
        with pytest.raises(NetGeniumUnavailable) as failed:
            await ng.find_order_by_number(4)
    assert failed.value.retryable and failed.value.status == 503
    assert failed.value.retry_after is not None and failed.value.retry_after > 30
    assert admin.counts()["query"] == 3
    assert len(sleep.waits) == 2


async def test_gives_up_at_once_when_retry_after_exceeds_the_time_bound(emulator: ServerProcess, admin: Admin) -> None:
    admin.faults(throttle_next=5, retry_after="120")
    policy = RetryPolicy(max_attempts=10, base_delay=0.01, max_total_seconds=30)
    async with NetGeniumClient(emulator.base_url, API_KEY, api_key_header=API_KEY_HEADER, retry=policy) as ng:
        with pytest.raises(NetGeniumUnavailable) as failed:
            await ng.list_users()
    assert failed.value.status == 429 and failed.value.retry_after == 120
    assert admin.counts()["query"] == 1


async def test_no_retry_on_400(client: NetGeniumClient, admin: Admin) -> None:
    with pytest.raises(NetGeniumRejected) as refused:
        await client.query("ng_contacts", f.eq("ng_no_such_column", "x"))
    assert refused.value.status == 400 and refused.value.code == "unknown_column"
    assert not refused.value.retryable
    assert admin.counts()["query"] == 1


async def test_connection_refused_is_retried_then_unavailable() -> None:
    from sandbox.launch import free_port

    sleep = SleepRecorder()
    async with NetGeniumClient(
        f"http://127.0.0.1:{free_port()}", "k", retry=FAST_RETRY, sleep=sleep, connect_timeout=1
    ) as ng:
        with pytest.raises(NetGeniumUnavailable) as failed:
            await ng.list_users()
    assert failed.value.status is None and not failed.value.ambiguous
    assert len(sleep.waits) == FAST_RETRY.max_attempts - 1


async def test_a_wrong_key_or_header_is_a_clear_error(emulator: ServerProcess, admin: Admin) -> None:
    async with NetGeniumClient(emulator.base_url, "wrong", api_key_header=API_KEY_HEADER) as ng:
        with pytest.raises(NetGeniumAuthError) as wrong_key:
            await ng.list_users()
    async with NetGeniumClient(emulator.base_url, API_KEY) as ng:  # the key in X-Api-Key
        with pytest.raises(NetGeniumAuthError) as wrong_header:
            await ng.list_users()
    for failure in (wrong_key, wrong_header):
        assert failure.value.status == 401 and not failure.value.retryable
        assert "NETGENIUM_API_KEY" in str(failure.value)
    assert "'X-Api-Key' header" in str(wrong_header.value)
    assert admin.counts()["query"] == 2  # neither was retried


async def test_calendar_upsert_list_and_delete(client: NetGeniumClient, admin: Admin) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    event = CalendarActivity(
        subject="Visit",
        start=WHEN,
        end=WHEN + timedelta(hours=2),
        location="Brno",
        body="Agenda",
        user_id=7,
        event_id="AAMkAD-event-1",
    )
    created = await client.upsert_calendar_activity(event)
    # Same Outlook event again (no activity id known): the same activity is updated.
    again = await client.upsert_calendar_activity(event.model_copy(update={"subject": "Visit (moved)"}))
    assert again == created
    by_id = await client.upsert_calendar_activity(
        event.model_copy(update={"id": created, "subject": "Visit (moved)", "all_day": True, "location": "Praha"})
    )
    assert by_id == created
    await client.create_email_activity(_activity())  # shares the table; must not be listed
    changed = await client.list_calendar_activities_modified_since(before)
    assert len(changed) == 1
    activity = changed[0]
    assert (activity.id, activity.subject, activity.location, activity.all_day) == (
        created,
        "Visit (moved)",
        "Praha",
        True,
    )
    assert (activity.start, activity.end, activity.user_id, activity.event_id) == (
        WHEN,
        WHEN + timedelta(hours=2),
        7,
        "AAMkAD-event-1",
    )
    assert activity.modified is not None and activity.modified >= before
    assert await client.list_calendar_activities_modified_since(datetime.now(UTC) + timedelta(hours=1)) == []
    assert await client.delete_calendar_activity(created) is True
    assert await client.delete_calendar_activity(created) is False
    with pytest.raises(NetGeniumNotFound):
        await client.upsert_calendar_activity(event.model_copy(update={"id": created}))


async def test_deleting_a_calendar_activity_never_deletes_an_email_activity(client: NetGeniumClient) -> None:
    mail = await client.create_email_activity(_activity())
    with pytest.raises(NetGeniumRejected):
        await client.delete_calendar_activity(mail)
    assert await client.find_activity_by_message_id("<m1@firma.example>") == mail


async def test_system_records_may_not_be_deleted(client: NetGeniumClient, admin: Admin) -> None:
    admin.seed("ng_activities", [{"id": 9, "ng_kind": "calendar", "system": True}])
    with pytest.raises(NetGeniumRejected) as refused:
        await client.delete_calendar_activity(9)
    assert refused.value.status == 409


async def test_too_large_attachments_are_skipped_not_fatal(
    emulator: ServerProcess, admin: Admin, client: NetGeniumClient
) -> None:
    big = Attachment(filename="big.bin", content=b"x" * (MAX_FILE_BYTES + 10))
    small = Attachment(filename="small.txt", content=b"ok")
    activity_id = await client.create_email_activity(_activity(), [big, small])
    record = await client.get_record("ng_activities", activity_id, columns=["ng_attachments"])
    assert [item["filename"] for item in record["ng_attachments"]] == ["small.txt"]
    assert admin.counts()["attach_file"] == 2  # the server said 413 for big.bin
    async with NetGeniumClient(
        emulator.base_url, API_KEY, api_key_header=API_KEY_HEADER, max_attachment_bytes=10
    ) as ng:
        other = await ng.create_email_activity(_activity("<m2@x>"), [big])
    assert (await client.get_record("ng_activities", other))["ng_attachments"] == []
    assert admin.counts()["attach_file"] == 2  # skipped before sending


async def test_https_is_required_off_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        NetGeniumClient("http://netgenium.example.com", "k")
    remote = NetGeniumClient("https://netgenium.example.com", "k", schema_map=default_schema_map())
    assert remote.base_url == "https://netgenium.example.com"
    await remote.aclose()


async def test_message_ids_that_differ_only_in_case_are_two_activities_each_with_its_own_files(
    client: NetGeniumClient, admin: Admin
) -> None:
    """Issue 10, item 1: NET Genium compares text case-insensitively; a Message-ID is exact."""
    first = await client.create_email_activity(
        _activity("<Quote-2026-ABC@x>", contact_id=11), [Attachment(filename="quote.pdf", content=b"A")]
    )
    second = await client.create_email_activity(
        _activity("<quote-2026-abc@x>", contact_id=12), [Attachment(filename="quote.pdf", content=b"B")]
    )
    assert second != first
    assert await client.find_activity_by_message_id("<Quote-2026-ABC@x>") == first
    assert await client.find_activity_by_message_id("<quote-2026-abc@x>") == second
    assert await client.find_activity_by_message_id("<QUOTE-2026-ABC@X>") is None
    columns = ["id", "ng_message_id", "ng_contact_id", "ng_attachments"]
    records = {r["id"]: r for r in await client.query("ng_activities", f.eq("ng_kind", "email"), columns=columns)}
    assert records[first]["ng_message_id"] == "<Quote-2026-ABC@x>" and records[first]["ng_contact_id"] == 11
    assert records[second]["ng_message_id"] == "<quote-2026-abc@x>" and records[second]["ng_contact_id"] == 12
    for activity_id, content in ((first, b"A"), (second, b"B")):
        [stored] = records[activity_id]["ng_attachments"]
        answer = admin.api("GET", f"/api/v1/tables/ng_activities/records/{activity_id}/files/{stored['file_id']}")
        assert answer.content == content


async def test_a_conflict_on_a_record_of_another_message_id_is_refused_and_attaches_nothing(
    tmp_path: Path,
) -> None:
    """An installation whose Message-ID column is still unique (case-insensitive): the second mail
    is refused with a reason an administrator can act on, and no file lands on the first mail."""
    source = Path(crm_core.netgenium.__file__).with_name("schema_map.toml")
    text = source.read_text("utf-8").replace(
        'columns.message_id = { name = "ng_message_id", type = "text", max_length = 255, indexed = true }',
        'columns.message_id = { name = "ng_message_id", type = "text", max_length = 255, unique = true }',
    )
    assert "max_length = 255, unique = true }" in text
    schema = tmp_path / "old_unique.toml"
    schema.write_text(text, "utf-8")
    server = ServerProcess(
        "sandbox.netgenium",
        ["--db", ":memory:", "--api-key", API_KEY, "--api-key-header", API_KEY_HEADER, "--schema-map", str(schema)],
        health_path="/api/v1/health",
    )
    with server:
        options = {"api_key_header": API_KEY_HEADER, "retry": FAST_RETRY, "schema_map": load_schema_map(str(schema))}
        async with NetGeniumClient(server.base_url, API_KEY, **options) as ng:
            first = await ng.create_email_activity(_activity("<Quote-2026-ABC@x>"))
            with pytest.raises(NetGeniumRejected, match="not this mail's") as refused:
                await ng.create_email_activity(
                    _activity("<quote-2026-abc@x>"), [Attachment(filename="evil.exe", content=b"x")]
                )
            assert refused.value.status == 409 and not refused.value.retryable
            record = await ng.get_record("ng_activities", first, columns=["id", "ng_attachments"])
            assert not record.get("ng_attachments")


async def test_a_conversations_unlinked_activities_are_linked_and_others_keep_their_order(
    client: NetGeniumClient,
) -> None:
    reply = await client.create_email_activity(_activity("<r@x>", conversation_id="conv-a", order_id=None))
    corrected = await client.create_email_activity(_activity("<c@x>", conversation_id="conv-a", order_id=70))
    elsewhere = await client.create_email_activity(_activity("<e@x>", conversation_id="conv-b", order_id=None))

    assert await client.link_conversation_activities("conv-a", 40) == [reply]

    orders = {
        r["id"]: r["ng_order_id"]
        for r in await client.query("ng_activities", f.eq("ng_kind", "email"), columns=["id", "ng_order_id"])
    }
    assert orders == {reply: 40, corrected: 70, elsewhere: None}


async def test_event_ids_are_looked_up_in_batches_and_a_second_create_updates_the_first(
    client: NetGeniumClient, admin: Admin
) -> None:
    long_id = "AAMkAD" + "x" * 300  # longer than the column: stored fitted, found by the id as given
    made = {}
    for event_id in ("AAMkAD-one", "AAMkAD-two", long_id):
        made[event_id] = await client.create_calendar_activity(
            CalendarActivity(subject="Visit", start=WHEN, end=WHEN + timedelta(hours=1), user_id=7, event_id=event_id)
        )
    asked = [f"AAMkAD-missing-{n}" for n in range(150)] + ["AAMkAD-ONE", *made]
    before = admin.counts().get("query", 0)
    assert await client.find_calendar_activities_by_event_ids(asked) == made  # not "AAMkAD-ONE": ids are exact
    assert 2 <= admin.counts()["query"] - before <= 4  # 154 ids: 100 a query at most, 1,500 filter characters
    again = await client.create_calendar_activity(
        CalendarActivity(subject="Moved", start=WHEN, end=WHEN + timedelta(hours=2), user_id=7, event_id="AAMkAD-two")
    )
    assert again == made["AAMkAD-two"]
    assert (await client.calendar_activity(again)).subject == "Moved"  # type: ignore[union-attr]


async def test_the_sweep_reads_the_mirrored_activities_of_one_user_in_the_window(client: NetGeniumClient) -> None:
    def visit(hours: int, user: int, event_id: str | None) -> CalendarActivity:
        start = WHEN + timedelta(hours=hours)
        return CalendarActivity(
            subject="V", start=start, end=start + timedelta(hours=1), user_id=user, event_id=event_id
        )

    inside = await client.create_calendar_activity(visit(2, 7, "AAMkAD-in"))
    await client.create_calendar_activity(visit(2, 8, "AAMkAD-other-user"))
    await client.create_calendar_activity(visit(2, 7, None))  # never synced: the watermark's business
    await client.create_calendar_activity(visit(24 * 40, 7, "AAMkAD-later"))  # after the window
    await client.create_email_activity(_activity())  # shares the table
    found = await client.calendar_event_ids_in_window(7, WHEN, WHEN + timedelta(days=30))
    assert found == {inside: "AAMkAD-in"}
