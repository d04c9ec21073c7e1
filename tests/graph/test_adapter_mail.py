"""The mail operations of the adapter against the emulator over HTTP, read by the SDK's deserializers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from crm_core.domain.mail import GraphMessage
from crm_core.graph.client import MESSAGE_FIELDS
from crm_core.graph.errors import FullResyncNeeded, GraphAccessDenied, GraphNotFound
from crm_core.graph.factory import create_graph_adapter
from tests.graph.conftest import FAST, MAILBOX, TOKEN, Admin, graph_settings

CUSTOMER = {"emailAddress": {"name": "Jan Novák", "address": "jan.novak@zakaznik.example"}}
EMPLOYEE = {"emailAddress": {"name": "Jana", "address": "jana@company.example"}}


def _mail(subject: str, **extra: object) -> dict[str, object]:
    return {
        "subject": subject,
        "from": CUSTOMER,
        "toRecipients": [EMPLOYEE],
        "ccRecipients": [{"emailAddress": {"address": MAILBOX}}],
        "body": {"contentType": "html", "content": f"<p>{subject}</p><div>Order:4</div>"},
        "internetMessageHeaders": [{"name": "X-Test", "value": subject}],
        **extra,
    }


async def test_get_message_returns_the_core_model_with_headers_and_body(graph, admin: Admin) -> None:
    delivered = await admin.deliver(MAILBOX, _mail("Quote request", internetMessageId="<q1@zakaznik.example>"))
    message = await graph.get_message(MAILBOX, delivered["id"])
    assert isinstance(message, GraphMessage)
    assert message.id == delivered["id"]
    assert message.internet_message_id == "<q1@zakaznik.example>"
    assert message.sender_address == "jan.novak@zakaznik.example"
    assert message.recipient_addresses() == ["jana@company.example", MAILBOX]
    assert message.body is not None and message.body.is_html and "Order:4" in (message.body.content or "")
    assert message.header("x-test") == "Quote request"
    assert message.odata_type == "#microsoft.graph.message"
    assert message.received_date_time is not None and message.sent_date_time is not None


async def test_get_message_selects_exactly_the_core_fields_with_immutable_ids(graph_server, admin: Admin) -> None:
    delivered = await admin.deliver(MAILBOX, _mail("Select"))
    seen: list[httpx.Request] = []
    adapter = create_graph_adapter(graph_settings(graph_server.base_url), FAST)
    http = adapter.client.request_adapter._http_client

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    http.event_hooks["request"].append(record)
    try:
        await adapter.get_message(MAILBOX, delivered["id"])
    finally:
        await adapter.aclose()
    assert len(seen) == 1
    selected = seen[0].url.params["$select"].split(",")
    assert sorted(selected) == sorted(MESSAGE_FIELDS)
    assert 'IdType="ImmutableId"' in seen[0].headers["Prefer"]


async def test_an_eml_file_with_attachments_is_delivered_and_read_back(graph, admin: Admin) -> None:
    mail = EmailMessage()
    mail["From"] = "Jan Novák <jan.novak@zakaznik.example>"
    mail["To"] = "jana@company.example"
    mail["Cc"] = MAILBOX
    mail["Subject"] = "Order:7 drawings"
    mail["Message-ID"] = "<eml-1@zakaznik.example>"
    mail["Precedence"] = "bulk"
    mail.set_content("plain part")
    mail.add_alternative("<p>See <b>drawings</b></p>", subtype="html")
    small, large = b"%PDF-1.4 small", b"x" * 5000
    mail.add_attachment(small, maintype="application", subtype="pdf", filename="small.pdf")
    mail.add_attachment(large, maintype="application", subtype="octet-stream", filename="large.bin")
    answer = await admin.http.post(
        f"/users/{MAILBOX}/messages", content=mail.as_bytes(), headers={"Content-Type": "message/rfc822"}
    )
    assert answer.status_code == 201
    message_id = answer.json()["id"]

    message = await graph.get_message(MAILBOX, message_id)
    assert message.subject == "Order:7 drawings"
    assert message.internet_message_id == "<eml-1@zakaznik.example>"
    assert message.header("precedence") == "bulk"
    assert message.body is not None and message.body.is_html
    assert message.has_attachments is True

    files = await graph.list_file_attachments(MAILBOX, message_id, max_bytes=1000)
    by_name = {f.name: f for f in files}
    assert set(by_name) == {"small.pdf", "large.bin"}
    assert by_name["small.pdf"].content == small and by_name["small.pdf"].content_type == "application/pdf"
    assert by_name["large.bin"].skipped and by_name["large.bin"].size == len(large)


async def test_attachments_given_as_graph_json_keep_their_bytes(graph, admin: Admin) -> None:
    payload = "Ahoj, příloha".encode()
    delivered = await admin.deliver(MAILBOX, _mail("JSON attachment", attachments=[
        {"name": "note.txt", "contentType": "text/plain", "contentBytes": base64.b64encode(payload).decode()}
    ]))
    files = await graph.list_file_attachments(MAILBOX, delivered["id"])
    assert [(f.name, f.content, f.size) for f in files] == [("note.txt", payload, len(payload))]


@dataclass
class Round:
    """A whole delta round read page by page, as MailboxSync reads it."""

    messages: list[GraphMessage]
    hints: list[str]
    removed_ids: list[str]
    delta_link: str
    requests: int


async def read_round(graph: Any, link: str | None = None, *, page_size: int | None = None, **kwargs: Any) -> Round:
    out = Round([], [], [], "", 0)
    while True:
        page = await graph.message_delta_page(MAILBOX, "inbox", link, page_size=page_size, **kwargs)
        out.requests += 1
        out.messages += page.messages
        out.hints += page.hints
        out.removed_ids += page.removed_ids
        if page.delta_link:
            out.delta_link = page.delta_link
            return out
        link = page.next_link


async def test_message_delta_pages_to_a_delta_link_then_reports_created_mail_only(graph, admin: Admin) -> None:
    await admin.steady_tokens()  # a 410 in the middle is the product's business (tests/graph/test_profile_delta.py)
    ids = [(await admin.deliver(MAILBOX, _mail(f"m{i}")))["id"] for i in range(25)]
    first = await read_round(graph, page_size=10)
    assert first.requests == 3
    assert sorted(m.id for m in first.messages) == sorted(ids)
    assert first.removed_ids == []
    assert all(m.sender_address == "jan.novak@zakaznik.example" for m in first.messages)

    await admin.call("DELETE", f"/users/{MAILBOX}/messages/{ids[0]}")
    await admin.call("PATCH", f"/users/{MAILBOX}/messages/{ids[1]}", {"parentFolderId": "deleteditems"})
    await admin.call("PATCH", f"/users/{MAILBOX}/messages/{ids[2]}", {"isRead": True})
    new = await admin.deliver(MAILBOX, _mail("late"))

    second = await read_round(graph, first.delta_link, page_size=10)
    # A round asks for created items only (changeType=created): the deletion, the move out of the
    # inbox and the read flag are not in it, only the mail that arrived.
    assert [m.id for m in second.messages] == [new["id"]]
    assert second.removed_ids == [] and second.hints == []

    third = await read_round(graph, second.delta_link)
    assert third.messages == [] and third.removed_ids == [] and third.requests == 1


async def test_an_expired_delta_link_means_full_resync(graph, admin: Admin) -> None:
    await admin.deliver(MAILBOX, _mail("before"))
    first = await read_round(graph)
    await admin.call("POST", "/sync-states/expire")
    with pytest.raises(FullResyncNeeded) as caught:
        await read_round(graph, first.delta_link)
    assert caught.value.status == 410 and caught.value.code == "SyncStateNotFound"
    assert not caught.value.retryable
    again = await read_round(graph)
    assert [m.subject for m in again.messages] == ["before"]


async def test_missing_message_is_a_typed_not_found(graph, admin: Admin) -> None:
    with pytest.raises(GraphNotFound) as caught:
        await graph.get_message(MAILBOX, "AAMkAdoesnotexist=")
    assert caught.value.status == 404 and caught.value.code == "ErrorItemNotFound"
    assert not caught.value.retryable


async def test_wrong_token_is_access_denied(graph_server, admin: Admin) -> None:
    adapter = create_graph_adapter(graph_settings(graph_server.base_url, token="wrong"), FAST)
    try:
        with pytest.raises(GraphAccessDenied) as caught:
            await adapter.list_users()
    finally:
        await adapter.aclose()
    assert caught.value.status == 401 and caught.value.code == "InvalidAuthenticationToken"
    assert TOKEN not in str(caught.value)


async def test_list_users_returns_every_address_of_each_user(graph, admin: Admin) -> None:
    await admin.user("petr@company.example", ["SMTP:Petr.Novy@company.example", "smtp:petr@company.example",
                                              "X500:/o=ExchangeLabs/cn=petr"])
    users = {u.user_principal_name: u for u in await graph.list_users()}
    assert set(users) == {MAILBOX, "petr@company.example"}
    assert users["petr@company.example"].addresses() == ["petr@company.example", "petr.novy@company.example"]
