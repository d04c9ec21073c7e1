"""Mail through the whole path: Graph emulator → webhook → queue → capture → NET Genium emulator."""

from __future__ import annotations

import json
import random
import uuid
from email.message import EmailMessage
from typing import Any

import httpx

from crm_core.domain.capture_decision import CaptureRules, decide
from crm_core.domain.directory import Directory
from crm_core.domain.mail import GraphMessage
from sandbox.stack import SandboxStack
from tests.e2e.conftest import CONTACTS, CRM, DIRECTORY, USERS
from tests.unit.messages import mail

RULES = CaptureRules.build(DIRECTORY.crm_address, DIRECTORY.excluded, DIRECTORY.order_keywords)
INDEX = Directory(DIRECTORY.users, DIRECTORY.contacts, DIRECTORY.orders)


def unique_id(tag: str) -> str:
    return f"<{tag}-{uuid.uuid4().hex}@e2e.example>"


def mixed_mails(count: int, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        user = rng.choice(USERS).email
        contact = rng.choice(CONTACTS).email
        kind = rng.randrange(8)
        subject = f"Mail {n}" + (f" Order:{rng.randrange(1, 30)}" if rng.random() < 0.2 else "")
        body = "Hello\nregards" if rng.random() < 0.6 else "<p>Hello</p><div>Order: 3</div>"
        html = body.startswith("<")
        fields: dict[str, Any] = {"subject": subject, "body": body, "html": html, "message_id": unique_id(f"mix{n}")}
        if kind == 0:
            data = mail(sender=contact, to=[user], cc=[CRM], **fields)
        elif kind == 1:
            data = mail(sender=user, to=[contact], cc=[], bcc=[CRM], **fields)
        elif kind == 2:
            data = mail(sender=user, to=[rng.choice(USERS).email], cc=[CRM], **fields)
        elif kind == 3:
            data = mail(sender=f"stranger{n}@unknown.example", to=[user], cc=[CRM], **fields)
        elif kind == 4:
            data = mail(sender="offers@newsletter.example", to=[CRM], cc=[], **fields)
        elif kind == 5:
            data = mail(sender=contact, to=[user], cc=[CRM], headers={"Auto-Submitted": "auto-replied"}, **fields)
        elif kind == 6:
            data = mail(sender=contact, to=[CRM], cc=[], **fields)
        else:
            data = mail(sender=contact, to=[user], odata_type="#microsoft.graph.eventMessageRequest", **fields)
        data["conversationId"] = f"conv-{uuid.uuid4().hex}"
        out.append(data)
    return out


def activities_for(stack: SandboxStack, message_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.netgenium_records() if r.get("ng_message_id") == message_id]


def test_two_hundred_mixed_mails_give_exactly_the_expected_activities(stack: SandboxStack) -> None:
    mails = mixed_mails(200)
    for data in mails:
        stack.deliver(data)
    stack.settle(timeout=180)
    report = stack.report()
    stored = {a["message_id"]: a for a in report["activities"]}
    skipped = {s["message_id"]: s for s in report["skipped"]}
    expected_captured = 0
    for data in mails:
        decision = decide(GraphMessage.model_validate(data), INDEX, RULES)
        message_id = data["internetMessageId"]
        if decision.capture:
            expected_captured += 1
            activity = stored[message_id]
            assert activity["direction"] == decision.direction
            assert activity["contacts"] == decision.contact_ids
            assert activity["users"] == decision.user_ids
            assert activity["order_id"] == decision.order_id
        else:
            assert skipped[message_id]["reasons"] == decision.reasons
    ours = {d["internetMessageId"] for d in mails}
    records = [r for r in stack.netgenium_records() if r.get("ng_message_id") in ours]
    assert len(records) == expected_captured
    assert len({r["ng_message_id"] for r in records}) == expected_captured
    assert 40 <= expected_captured <= 120  # the mix really is mixed


def test_stored_activity_holds_the_mail_sanitized(stack: SandboxStack) -> None:
    contact, user = CONTACTS[0], USERS[0]
    message_id = unique_id("content")
    body = (
        '<p onclick="steal()">Dear <b>Jana</b>,</p><script>alert(1)</script>'
        '<a href="javascript:alert(2)">click</a><img src="https://tracker.example/p.gif" onerror="x()">'
        "<div>Objednávka: 7</div>"
    )
    stack.deliver(
        mail(sender=contact.email, to=[user.email], subject="Delivery", body=body, html=True, message_id=message_id)
    )
    stack.settle()
    [record] = activities_for(stack, message_id)
    assert record["ng_subject"] == "Delivery"
    assert record["ng_direction"] == "incoming"
    assert (record["ng_contact_id"], record["ng_company_id"], record["ng_user_id"]) == (
        contact.id,
        contact.company_id,
        user.id,
    )
    assert record["ng_order_id"] == 1007
    html = record["ng_body_html"].lower()
    for dangerous in ("<script", "onclick", "javascript:", "onerror", "tracker.example"):
        assert dangerous not in html
    assert "<b>jana</b>" in html
    assert "Objednávka: 7" in record["ng_body"]


def test_reply_inherits_the_order_of_its_conversation(stack: SandboxStack) -> None:
    contact, user = CONTACTS[1], USERS[1]
    conversation = f"conv-{uuid.uuid4().hex}"
    first, reply = unique_id("first"), unique_id("reply")
    stack.deliver(
        {
            **mail(sender=contact.email, to=[user.email], subject="Order:5", message_id=first),
            "conversationId": conversation,
        }
    )
    stack.settle()
    stack.deliver(
        {
            **mail(sender=user.email, to=[contact.email], subject="Re: x", message_id=reply),
            "conversationId": conversation,
        }
    )
    stack.settle()
    [record] = activities_for(stack, reply)
    assert record["ng_order_id"] == 1005


def test_same_mail_three_times_is_one_activity(stack: SandboxStack) -> None:
    message_id = unique_id("thrice")
    data = mail(sender=CONTACTS[2].email, to=[USERS[2].email], subject="Forwarded by three", message_id=message_id)
    for _ in range(3):
        stack.deliver(data)
    stack.settle()
    assert len(activities_for(stack, message_id)) == 1


def test_every_notification_three_times_is_still_one_activity(stack: SandboxStack) -> None:
    message_id = unique_id("renotified")
    created = stack.deliver(mail(sender=CONTACTS[3].email, to=[USERS[3].email], message_id=message_id))
    stack.settle()
    note = stack.change_notification(created["id"])
    url = f"{stack.runners[0].base_url}/api/notifications"
    stack.wait_quiet()
    before = stack.runner_status()["invocations"]["capture"]["succeeded"]
    for _ in range(3):
        answer = httpx.post(url, json={"value": [note, note]}, timeout=10)
        assert answer.status_code == 202
    stack.wait_quiet()
    assert stack.runner_status()["invocations"]["capture"]["succeeded"] == before + 3
    assert len(activities_for(stack, message_id)) == 1


def test_forged_notifications_are_not_processed(stack: SandboxStack) -> None:
    stack.wait_quiet()
    _, secret = stack.mail_subscription()
    before = stack.runner_status()["invocations"]["capture"]["succeeded"]
    url = f"{stack.runners[0].base_url}/api/notifications"
    forged = [
        stack.change_notification("AAMkForged1", client_state=secret + "x"),
        stack.change_notification("AAMkForged2", client_state=""),
        {**stack.change_notification("AAMkForged3"), "subscriptionId": "11111111-2222-3333-4444-555555555555"},
    ]
    answer = httpx.post(url, json={"value": forged}, timeout=10)
    assert answer.status_code == 202
    stack.wait_quiet()
    assert stack.runner_status()["invocations"]["capture"]["succeeded"] == before
    assert stack.runner_status()["queues"]["capture-tasks"]["poison_message_count"] == 0


def test_bad_notification_bodies_are_4xx(stack: SandboxStack) -> None:
    url = f"{stack.runners[0].base_url}/api/notifications"
    assert httpx.post(url, content=b"not json", timeout=10).status_code == 400
    assert httpx.post(url, json={"value": [{"changeType": "created"}]}, timeout=10).status_code == 400
    assert httpx.post(url, json={"value": [{}] * 10_000}, timeout=10).status_code == 413
    huge = json.dumps({"value": [{"subscriptionId": "x" * 5_000_000}]})
    assert httpx.post(url, content=huge, timeout=30).status_code == 413


def test_validation_token_is_echoed_unchanged_as_plain_text(stack: SandboxStack) -> None:
    token = "Validation: <b>Token</b> & 'quotes' \"here\""
    for path in ("notifications", "lifecycle"):
        answer = httpx.post(f"{stack.runners[0].base_url}/api/{path}", params={"validationToken": token}, timeout=10)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.text == token


def test_eml_with_attachment_and_unknown_charset(stack: SandboxStack) -> None:
    message = EmailMessage()
    message["From"] = CONTACTS[4].email
    message["To"] = USERS[4].email
    message["Cc"] = CRM
    message["Subject"] = "Price list"
    message["Message-ID"] = unique_id("eml")
    message.set_content("See the attached price list.\nOrder: 2\n")
    message.add_attachment(b"%PDF-1.4 price list", maintype="application", subtype="pdf", filename="prices.pdf")
    odd = EmailMessage()
    odd["From"] = CONTACTS[5].email
    odd["To"] = USERS[0].email
    odd["Subject"] = "Strange charset"
    odd["Message-ID"] = unique_id("charset")
    odd.set_content("Dobrý den".encode(), maintype="text", subtype="plain", cte="8bit")
    raw = odd.as_bytes().replace(b"Content-Type: text/plain", b"Content-Type: text/plain; charset=x-unknown-42")
    stack.deliver(message.as_bytes())
    stack.deliver(raw)
    stack.settle()
    [with_file] = activities_for(stack, message["Message-ID"])
    assert with_file["ng_order_id"] == 1002
    assert [f["filename"] for f in with_file["ng_attachments"]] == ["prices.pdf"]
    [strange] = activities_for(stack, odd["Message-ID"])
    assert strange["ng_subject"] == "Strange charset"


def test_ten_megabyte_body_is_stored_cut_with_a_note(stack: SandboxStack) -> None:
    message_id = unique_id("huge")
    body = "<div>" + "<p>line of a very long mail</p>" * 330_000 + "</div>"
    assert len(body) > 10_000_000
    stack.deliver(mail(sender=CONTACTS[6].email, to=[USERS[1].email], body=body, html=True, message_id=message_id))
    stack.settle(timeout=120)
    [record] = activities_for(stack, message_id)
    assert "the body was cut to 1000000 characters" in record["ng_body"]
    assert len(record["ng_body_html"]) < 1_200_000
