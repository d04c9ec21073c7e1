"""MailCapture: ledger claim → NET Genium lookups → decision → activity → ledger completion.

Every test runs twice: with the in-memory ledger and with the real CaptureLedger over Azurite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_core.domain.capture_decision import ConversationOrder
from crm_core.domain.directory import Order
from crm_core.domain.errors import ServiceRejected, ServiceUnavailable
from crm_core.domain.mail import GraphMessage
from crm_core.storage.ledger import LedgerState
from crm_core.storage.tables import StorageUnavailable
from crm_core.usecases.mail_capture import CaptureBusy, Outcome, ledger_id
from tests.unit.messages import BOTH, CRM, JANA, MALA, NOVAK, PETR, STRANGER, mail
from tests.usecases.conftest import WORKER, MakeCapture
from tests.usecases.fakes import (
    FakeActivityStore,
    FakeCorrespondents,
    FakeMailSource,
    FlakyLedger,
    activity_for,
    file,
)

LONG_AGO = datetime.now(UTC) - timedelta(hours=1)


def customer_mail(message_id: str = "<m1@zakaznik.example>", **kw: Any) -> dict[str, Any]:
    kw.setdefault("conversationId", "conv-1")
    kw.setdefault("receivedDateTime", "2024-05-01T08:30:00Z")
    return mail(sender=NOVAK, to=[JANA], cc=[CRM], message_id=message_id, **kw)


# ---- the happy paths ---------------------------------------------------------------------------


async def test_incoming_customer_mail_becomes_one_linked_activity(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    message = source.add(customer_mail(subject="Dotaz", body="Dobrý den"), "g1")

    result = await capture.capture(CRM, message)

    assert result.outcome is Outcome.WRITTEN
    stored = crm.activities[result.activity_id]
    activity = stored.activity
    assert (activity.direction, activity.contact_id, activity.company_id, activity.user_id) == ("incoming", 101, 11, 1)
    assert activity.message_id == "<m1@zakaznik.example>"
    assert activity.conversation_id == "conv-1"
    assert activity.subject == "Dotaz"
    assert "Dobrý den" in activity.body_text
    assert activity.date == datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    assert activity.order_id is None
    entry = await ledger.get("<m1@zakaznik.example>")
    assert entry.state is LedgerState.WRITTEN
    assert entry.activity_id == result.activity_id


async def test_outgoing_mail_with_crm_in_bcc_is_linked_to_the_contact(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    message = source.add(
        mail(
            sender=PETR,
            to=[MALA],
            cc=[],
            bcc=[CRM],
            message_id="<out@firma.example>",
            sentDateTime="2024-05-02T10:00:00Z",
        ),
        "g1",
    )

    result = await capture.capture(CRM, message)

    assert result.outcome is Outcome.WRITTEN
    activity = crm.activities[result.activity_id].activity
    assert (activity.direction, activity.user_id, activity.contact_id, activity.company_id) == ("outgoing", 2, 102, 12)
    assert activity.date == datetime(2024, 5, 2, 10, 0, tzinfo=UTC)


async def test_capture_by_id_reads_the_mail_once_from_graph(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    source.add(customer_mail(), "g1")

    result = await capture.capture_by_id(CRM, "g1")

    assert result.outcome is Outcome.WRITTEN
    assert source.calls == {"get_message": 1}
    assert len(crm.activities) == 1


# ---- exactly once --------------------------------------------------------------------------------


async def test_the_same_mail_forwarded_twice_is_one_activity(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    # Two employees forwarded (copied) the same mail to the CRM mailbox: two Graph ids, one Message-ID.
    source.add(customer_mail("<same@zakaznik.example>"), "g1")
    source.add(customer_mail("<same@zakaznik.example>"), "g2")

    first = await capture.capture_by_id(CRM, "g1")
    second = await capture.capture_by_id(CRM, "g2")
    third = await capture.capture_by_id(CRM, "g1")  # and a notification delivered again

    assert first.outcome is Outcome.WRITTEN
    assert (second.outcome, second.activity_id) == (Outcome.DUPLICATE, first.activity_id)
    assert (third.outcome, third.activity_id) == (Outcome.DUPLICATE, first.activity_id)
    assert len(crm.activities_for("<same@zakaznik.example>")) == 1
    assert crm.calls["create_email_activity"] == 1
    # A duplicate costs no NET Genium request at all.
    assert crm.requests == 3  # list_users, find_contacts_by_emails, create_email_activity


async def test_message_id_is_trimmed_so_copies_with_white_space_are_the_same_mail(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    first = await capture.capture(CRM, source.add(customer_mail("<x@zakaznik.example>"), "g1"))
    second = await capture.capture(CRM, source.add(customer_mail("  <x@zakaznik.example>\r\n"), "g2"))

    assert second.outcome is Outcome.DUPLICATE
    assert second.activity_id == first.activity_id
    assert len(crm.activities) == 1


async def test_a_second_worker_on_a_live_claim_is_told_to_retry(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    message = source.add(customer_mail(), "g1")
    await ledger.claim(ledger_id(message), "worker-b")  # worker b is capturing it right now

    with pytest.raises(CaptureBusy) as raised:
        await capture.capture(CRM, message)

    assert raised.value.retryable
    assert isinstance(raised.value, ServiceUnavailable)
    assert crm.calls["create_email_activity"] == 0
    entry = await ledger.get(ledger_id(message))
    assert (entry.state, entry.claimed_by) == (LedgerState.CLAIMED, "worker-b")


async def test_a_taken_over_claim_whose_activity_exists_is_not_written_again(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    message = source.add(customer_mail(), "g1")
    key = ledger_id(message)
    # Worker b claimed it long ago, wrote the activity, and died before completing the ledger row.
    await ledger.claim(key, "worker-b", now=LONG_AGO)
    existing = crm.seed_activity(activity_for(key))

    result = await capture.capture(CRM, message)

    assert (result.outcome, result.activity_id) == (Outcome.FOUND, existing)
    assert crm.calls["create_email_activity"] == 0
    assert crm.calls["find_activity_by_message_id"] == 1
    assert len(crm.activities) == 1
    entry = await ledger.get(key)
    assert (entry.state, entry.activity_id, entry.claimed_by) == (LedgerState.WRITTEN, existing, WORKER)


async def test_a_takeover_finishes_the_files_the_dead_worker_did_not_store(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    """Issue 10, item 2: the activity was written, one upload failed for good, the worker gave up."""
    files = [file("offer.pdf", b"offer"), file("terms.pdf", b"terms")]
    message = source.add(customer_mail(), "g1", files=files)
    key = ledger_id(message)
    crm.fail("add_missing_attachments", ServiceUnavailable("NET Genium 503"), message_id=key)
    await ledger.claim(key, "worker-b", now=LONG_AGO)
    existing = crm.seed_activity(activity_for(key))  # written, without its files

    with pytest.raises(ServiceUnavailable):  # the first takeover fails too: the row stays claimed
        await capture.capture(CRM, message)
    assert (await ledger.get(key)).state is LedgerState.CLAIMED
    result = await capture.capture(CRM, message)  # the retry (same worker) finishes the write

    assert (result.outcome, result.activity_id) == (Outcome.FOUND, existing)
    assert sorted(a.filename for a in crm.activities[existing].attachments) == ["offer.pdf", "terms.pdf"]
    assert crm.calls["create_email_activity"] == 0 and len(crm.activities) == 1
    assert (await ledger.get(key)).state is LedgerState.WRITTEN


async def test_a_taken_over_claim_without_an_activity_is_written(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    message = source.add(customer_mail(), "g1")
    await ledger.claim(ledger_id(message), "worker-b", now=LONG_AGO)  # died before writing

    result = await capture.capture(CRM, message)

    assert result.outcome is Outcome.WRITTEN
    assert crm.calls["find_activity_by_message_id"] == 1
    assert len(crm.activities_for(ledger_id(message))) == 1


async def test_a_new_claim_does_not_look_the_activity_up(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    await capture.capture(CRM, source.add(customer_mail(), "g1"))

    assert crm.calls["find_activity_by_message_id"] == 0


async def test_failed_ledger_update_after_the_write_does_not_double_the_activity(
    make_capture: MakeCapture, ledger: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    # The worker wrote to NET Genium, then could not record it; the queue delivers the mail again.
    flaky = FlakyLedger(ledger, StorageUnavailable("table storage down"))
    capture = make_capture(ledger_=flaky)
    message = source.add(customer_mail(), "g1")

    with pytest.raises(StorageUnavailable):
        await capture.capture(CRM, message)
    retried = await capture.capture(CRM, message)

    assert retried.outcome is Outcome.FOUND
    assert len(crm.activities_for(ledger_id(message))) == 1
    assert crm.calls["create_email_activity"] == 1
    assert (await ledger.get(ledger_id(message))).state is LedgerState.WRITTEN


async def test_netgenium_down_leaves_the_claim_and_a_retry_writes_once(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    message = source.add(customer_mail(), "g1")
    crm.fail("create_email_activity", ServiceUnavailable("NET Genium 503"))

    with pytest.raises(ServiceUnavailable):
        await capture.capture(CRM, message)
    assert (await ledger.get(ledger_id(message))).state is LedgerState.CLAIMED

    retried = await capture.capture(CRM, message)

    assert retried.outcome is Outcome.WRITTEN
    assert len(crm.activities) == 1


async def test_a_rejected_write_propagates_as_not_retryable(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    message = source.add(customer_mail(), "g1")
    crm.fail("create_email_activity", ServiceRejected("NET Genium 400"))

    with pytest.raises(ServiceRejected) as raised:
        await capture.capture(CRM, message)

    assert not raised.value.retryable
    assert crm.activities == {}
    assert (await ledger.get(ledger_id(message))).state is LedgerState.CLAIMED


@pytest.mark.parametrize("internet_message_id", [None, "", "   "])
async def test_mail_without_a_message_id_is_keyed_by_its_graph_id(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any, internet_message_id: str | None
) -> None:
    data = customer_mail()
    data["internetMessageId"] = internet_message_id
    message = source.add(data, "AAMkAD-7")

    first = await capture.capture(CRM, message)
    again = await capture.capture_by_id(CRM, "AAMkAD-7")

    assert first.message_id == "graph-id:AAMkAD-7"
    assert crm.activities[first.activity_id].activity.message_id == "graph-id:AAMkAD-7"
    assert (await ledger.get("graph-id:AAMkAD-7")).state is LedgerState.WRITTEN
    assert again.outcome is Outcome.DUPLICATE
    assert len(crm.activities) == 1


# ---- skipped mail -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (mail(sender=NOVAK, to=[JANA], headers={"Auto-Submitted": "auto-replied"}), "automated"),
        (mail(sender=JANA, to=[PETR]), "internal"),
        (mail(sender=NOVAK, to=[MALA]), "no recipient is a user"),
        (mail(sender=STRANGER, to=[JANA]), "sender not in address book"),
        (mail(odata_type="#microsoft.graph.eventMessageRequest"), "not a mail"),
        (mail(sender="news@newsletter.example"), "excluded sender"),
    ],
)
async def test_skipped_mail_is_recorded_with_its_reasons_and_not_written(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any, data: dict[str, Any], reason: str
) -> None:
    message = source.add(data, "g1")

    result = await capture.capture(CRM, message)

    assert result.outcome is Outcome.SKIPPED
    assert result.activity_id is None
    assert result.decision is not None and result.decision.reasons[0].startswith(reason)
    assert crm.calls["create_email_activity"] == 0
    assert crm.activities == {}
    entry = await ledger.get(ledger_id(message))
    assert entry.state is LedgerState.SKIPPED
    assert entry.reasons[0].startswith(reason)
    assert entry.activity_id is None
    # A skipped mail delivered again costs nothing and stays skipped.
    assert (await capture.capture(CRM, message)).outcome is Outcome.DUPLICATE


async def test_unknown_sender_is_counted_once_per_mail(
    capture: Any, source: FakeMailSource, correspondents: FakeCorrespondents
) -> None:
    await capture.capture(CRM, source.add(mail(sender=STRANGER, to=[JANA], message_id="<a@u>"), "g1"))
    await capture.capture(CRM, source.add(mail(sender=STRANGER, to=[JANA], message_id="<a@u>"), "g2"))  # copy
    await capture.capture_by_id(CRM, "g1")  # redelivered notification
    await capture.capture(CRM, source.add(mail(sender=STRANGER.upper(), to=[PETR], message_id="<b@u>"), "g3"))

    assert correspondents.counts == {STRANGER: 2}


async def test_other_skips_are_not_counted_as_unmatched_correspondents(
    capture: Any, source: FakeMailSource, correspondents: FakeCorrespondents
) -> None:
    skipped = [
        mail(sender=STRANGER, to=[JANA], headers={"Precedence": "bulk"}, message_id="<1@x>"),
        mail(sender=JANA, to=[PETR], message_id="<2@x>"),
        mail(sender=NOVAK, to=[MALA], message_id="<3@x>"),
        mail(sender="noreply@firma.example", to=[JANA], message_id="<4@x>"),
        mail(sender=JANA, to=[STRANGER], message_id="<5@x>"),
    ]
    for index, data in enumerate(skipped):
        result = await capture.capture(CRM, source.add(data, f"g{index}"))
        assert result.outcome is Outcome.SKIPPED

    assert correspondents.counts == {}


async def test_the_crm_mailbox_itself_is_never_an_unmatched_correspondent(
    capture: Any, source: FakeMailSource, correspondents: FakeCorrespondents
) -> None:
    # Sent from the CRM mailbox to a customer: nobody on the company side, so it is skipped; the
    # CRM address is not a participant and must not show up as "missing from the address book".
    result = await capture.capture(CRM, source.add(mail(sender=CRM, to=[NOVAK], cc=[]), "g1"))

    assert result.outcome is Outcome.SKIPPED
    assert correspondents.counts == {}


async def test_unknown_sender_retried_after_a_failed_completion_is_counted_once(
    make_capture: MakeCapture, ledger: Any, source: FakeMailSource, correspondents: FakeCorrespondents
) -> None:
    capture = make_capture(ledger_=FlakyLedger(ledger, StorageUnavailable("table storage down")))
    message = source.add(mail(sender=STRANGER, to=[JANA]), "g1")

    with pytest.raises(StorageUnavailable):
        await capture.capture(CRM, message)
    result = await capture.capture(CRM, message)

    assert result.outcome is Outcome.SKIPPED
    assert correspondents.counts == {STRANGER: 1}


# ---- orders ----------------------------------------------------------------------------------------


async def test_order_named_in_the_subject_is_looked_up_once_and_linked(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    result = await capture.capture(CRM, source.add(customer_mail(subject="Order:4 delivery date"), "g1"))

    assert result.outcome is Outcome.WRITTEN
    assert crm.order_queries == [4]
    assert crm.activities[result.activity_id].activity.order_id == 40
    assert "order 4 named in the subject" in result.decision.reasons
    assert await ledger.conversation_order("conv-1") == ConversationOrder(4, 40)
    assert (await ledger.get(result.message_id)).order_id == 40


async def test_unknown_order_is_captured_unlinked_with_the_reason(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore, ledger: Any
) -> None:
    result = await capture.capture(CRM, source.add(customer_mail(subject="Order:99 where is it"), "g1"))

    assert result.outcome is Outcome.WRITTEN
    assert crm.order_queries == [99]
    assert crm.activities[result.activity_id].activity.order_id is None
    assert "order 99 not found" in result.decision.reasons
    assert await ledger.conversation_order("conv-1") is None


async def test_a_found_order_is_remembered_a_missing_one_is_asked_again(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    await capture.capture(CRM, source.add(customer_mail("<a@z>", subject="Order:4"), "g1"))
    await capture.capture(CRM, source.add(customer_mail("<b@z>", subject="Re: Order:4"), "g2"))
    await capture.capture(CRM, source.add(customer_mail("<c@z>", subject="Order:77"), "g3"))
    crm.orders.append(Order(id=770, number=77))  # created in NET Genium meanwhile
    late = await capture.capture(CRM, source.add(customer_mail("<d@z>", subject="Order:77"), "g4"))

    assert crm.order_queries == [4, 77, 77]
    assert crm.activities[late.activity_id].activity.order_id == 770


async def test_reply_without_an_order_inherits_the_conversations_order(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    await capture.capture(CRM, source.add(customer_mail("<q@z>", subject="Order:7 question"), "g1"))
    reply = source.add(
        mail(sender=JANA, to=[NOVAK], cc=[CRM], subject="RE: question", message_id="<r@f>", conversationId="conv-1"),
        "g2",
    )

    result = await capture.capture(CRM, reply)

    assert result.outcome is Outcome.WRITTEN
    assert crm.activities[result.activity_id].activity.order_id == 70
    assert "order 7 inherited from the conversation" in result.decision.reasons
    assert crm.order_queries == [7]  # the reply's order came from the ledger, not NET Genium


async def test_mail_of_another_conversation_inherits_nothing(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    await capture.capture(CRM, source.add(customer_mail("<q@z>", subject="Order:7 question"), "g1"))

    result = await capture.capture(CRM, source.add(customer_mail("<o@z>", conversationId="conv-2"), "g2"))

    assert crm.activities[result.activity_id].activity.order_id is None


async def test_skipped_mail_naming_an_order_does_not_look_it_up(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    await capture.capture(CRM, source.add(mail(sender=STRANGER, to=[JANA], subject="Order:4"), "g1"))

    assert crm.order_queries == []


# ---- attachments -----------------------------------------------------------------------------------


async def test_attachments_inline_and_oversized_ones_are_left_out(
    make_capture: MakeCapture, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    capture = make_capture(max_attachment_bytes=1000)
    files = [
        file("offer.pdf", b"%PDF-1.7 offer"),
        file("logo.png", b"\x89PNG inline", inline=True, content_type="image/png"),
        file("scan.tiff", b"x" * 1001, content_type="image/tiff"),
        file("terms.txt", b"terms", content_type=None),  # type: ignore[arg-type]
    ]
    message = source.add(customer_mail(), "g1", files=files)

    result = await capture.capture(CRM, message)

    stored = crm.activities[result.activity_id].attachments
    assert [(a.filename, a.content, a.content_type) for a in stored] == [
        ("offer.pdf", b"%PDF-1.7 offer", "application/pdf"),
        ("terms.txt", b"terms", None),
    ]
    assert source.calls["list_file_attachments"] == 1
    # The reader of the activity learns what is missing; an inline logo is no loss worth a note.
    activity = crm.activities[result.activity_id].activity
    assert "attachment scan.tiff was not stored: over 1000 bytes" in activity.body_text
    assert "attachment scan.tiff was not stored" in activity.body_html
    assert "logo.png" not in activity.body_text


async def test_inline_attachments_are_kept_when_configured(
    make_capture: MakeCapture, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    capture = make_capture(include_inline_attachments=True)
    body = '<p>See the screenshot:</p><img src="cid:image001.png@01DA">'
    message = source.add(customer_mail(body=body, html=True), "g1", files=[file("logo.png", b"png", inline=True)])
    assert message.has_attachments is False  # Graph's answer for a mail with inline files only

    result = await capture.capture(CRM, message)

    assert [a.filename for a in crm.activities[result.activity_id].attachments] == ["logo.png"]


async def test_a_mail_without_inline_references_costs_no_attachment_request(
    make_capture: MakeCapture, source: FakeMailSource
) -> None:
    capture = make_capture(include_inline_attachments=True)
    await capture.capture(CRM, source.add(customer_mail(body="<p>plain</p>", html=True), "g1"))
    assert source.calls["list_file_attachments"] == 0


async def test_mail_without_attachments_does_not_ask_graph_for_them(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    result = await capture.capture(CRM, source.add(customer_mail(hasAttachments=False), "g1"))

    assert crm.activities[result.activity_id].attachments == []
    assert source.graph_requests == 0


async def test_attachments_of_skipped_mail_are_not_read(capture: Any, source: FakeMailSource) -> None:
    await capture.capture(CRM, source.add(mail(sender=STRANGER, to=[JANA]), "g1", files=[file("a.pdf", b"a")]))

    assert source.graph_requests == 0


# ---- what NET Genium is asked ---------------------------------------------------------------------


async def test_at_most_two_netgenium_requests_per_mail_once_users_are_cached(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    await capture.capture(CRM, source.add(customer_mail("<warm@z>"), "g0"))  # loads the user list
    before = crm.requests

    for n in range(1, 11):
        result = await capture.capture(CRM, source.add(customer_mail(f"<m{n}@z>", conversationId=f"c{n}"), f"g{n}"))
        assert result.outcome is Outcome.WRITTEN

    assert crm.calls["list_users"] == 1
    assert (crm.requests - before) / 10 <= 2
    assert len(crm.activities) == 11


async def test_only_this_mails_participants_are_looked_up(
    capture: Any, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    message = source.add(
        mail(sender=NOVAK, to=[JANA, BOTH], cc=[CRM, "noreply@firma.example", "x@newsletter.example"]), "g1"
    )

    await capture.capture(CRM, message)

    # Neither the CRM mailbox nor excluded addresses are sent to NET Genium.
    assert crm.contact_queries == [sorted([NOVAK, JANA, BOTH])]


async def test_users_are_listed_again_after_the_cache_time(
    make_capture: MakeCapture, source: FakeMailSource, crm: FakeActivityStore
) -> None:
    capture = make_capture(users_cache_seconds=-1.0)  # always stale

    await capture.capture(CRM, source.add(customer_mail("<1@z>"), "g1"))
    await capture.capture(CRM, source.add(customer_mail("<2@z>"), "g2"))

    assert crm.calls["list_users"] == 2


def test_ledger_id_prefers_the_internet_message_id() -> None:
    with_id = GraphMessage.model_validate({"id": "g1", "internetMessageId": " <a@b> "})
    without = GraphMessage.model_validate({"id": "g1"})

    assert (ledger_id(with_id), ledger_id(without)) == ("<a@b>", "graph-id:g1")
