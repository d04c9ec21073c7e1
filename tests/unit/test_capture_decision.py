"""Every rule and every reason of docs/DESIGN.md section 3, in the order the design lists them."""

from __future__ import annotations

import pytest

from crm_core.domain.capture_decision import ConversationOrder, Skip
from tests.unit.messages import BOTH, CRM, JANA, MALA, NOVAK, PETR, STRANGER, decide_json, mail

# --- 1. not a mail -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "odata_type",
    [
        "#microsoft.graph.eventMessage",
        "#microsoft.graph.eventMessageRequest",
        "#microsoft.graph.eventMessageResponse",
        "#Microsoft.Graph.EventMessageRequest",
    ],
)
def test_meeting_requests_and_responses_are_not_mail(odata_type: str) -> None:
    decision = decide_json(mail(odata_type=odata_type))
    assert not decision.capture
    assert decision.skip is Skip.NOT_A_MAIL
    assert decision.reasons[0].startswith("not a mail")


def test_meeting_check_comes_before_automated() -> None:
    decision = decide_json(
        mail(odata_type="#microsoft.graph.eventMessageRequest", headers={"Auto-Submitted": "auto-generated"})
    )
    assert decision.skip is Skip.NOT_A_MAIL


def test_plain_message_type_is_mail() -> None:
    assert decide_json(mail(odata_type="#microsoft.graph.message")).capture


def test_missing_odata_type_is_mail() -> None:
    data = mail()
    del data["@odata.type"]
    assert decide_json(data).capture


# --- 2. automated --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Auto-Submitted", "auto-replied"),
        ("Auto-Submitted", "auto-generated"),
        ("auto-submitted", "Auto-Replied; owner-email=x@y.example"),
        ("AUTO-SUBMITTED", ""),
        ("Precedence", "bulk"),
        ("precedence", " Junk "),
        ("PRECEDENCE", "LIST"),
        ("Content-Type", 'multipart/report; report-type="delivery-status"; boundary=x'),
        ("content-type", "Multipart/Report"),
    ],
)
def test_automated_headers(name: str, value: str) -> None:
    decision = decide_json(mail(headers={name: value}))
    assert not decision.capture
    assert decision.skip is Skip.AUTOMATED
    assert decision.reasons[0].startswith("automated")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Auto-Submitted", "no"),
        ("Auto-Submitted", " No "),
        ("Precedence", "first-class"),
        ("Content-Type", "multipart/mixed"),
        ("X-Auto-Submitted", "auto-replied"),
    ],
)
def test_headers_that_are_not_automated(name: str, value: str) -> None:
    assert decide_json(mail(headers={name: value})).capture


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@zakaznik.example", "postmaster@firma.example"])
def test_daemon_senders_are_automated(sender: str) -> None:
    decision = decide_json(mail(sender=sender))
    assert decision.skip is Skip.AUTOMATED
    assert "mailer-daemon" in decision.reasons[0] or "postmaster" in decision.reasons[0]


def test_daemon_in_sender_field_when_from_missing() -> None:
    data = mail(sender=None)
    data["sender"] = {"emailAddress": {"address": "mailer-daemon@mx.example"}}
    assert decide_json(data).skip is Skip.AUTOMATED


def test_automated_comes_before_excluded() -> None:
    decision = decide_json(mail(sender="info@newsletter.example", headers={"Precedence": "bulk"}))
    assert decision.skip is Skip.AUTOMATED


# --- 3. excluded sender --------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["NoReply@Firma.example", "offers@newsletter.example", " <x@NEWSLETTER.example> "])
def test_excluded_sender(sender: str) -> None:
    decision = decide_json(mail(sender=sender))
    assert decision.skip is Skip.EXCLUDED_SENDER
    assert decision.reasons[0].startswith("excluded sender")


def test_domain_exclusion_does_not_cover_other_domains() -> None:
    decision = decide_json(mail(sender="someone@newsletter.example.org"))
    assert decision.skip is Skip.SENDER_UNKNOWN


def test_excluded_recipient_does_not_count_as_participant() -> None:
    # A user writes to an excluded address only: no customer, so nothing to store.
    decision = decide_json(mail(sender=JANA, to=["noreply@firma.example"], cc=[CRM]))
    assert decision.skip is Skip.INTERNAL
    # The same with an unknown address too: not internal, and no contact among recipients.
    decision = decide_json(mail(sender=JANA, to=["noreply@firma.example", STRANGER]))
    assert decision.skip is Skip.NO_CONTACT_RECIPIENT


def test_excluded_check_comes_before_internal() -> None:
    decision = decide_json(mail(sender="noreply@firma.example", to=[JANA]))
    assert decision.skip is Skip.EXCLUDED_SENDER


# --- 4. internal ---------------------------------------------------------------------------


def test_user_to_user_is_internal() -> None:
    decision = decide_json(mail(sender=JANA, to=[PETR], cc=[CRM]))
    assert decision.skip is Skip.INTERNAL
    assert decision.reasons == ["internal: every participant is a user"]


def test_address_that_is_user_and_contact_counts_as_user() -> None:
    # BOTH is user 3 and contact 103: to JANA it is internal, not an incoming customer mail.
    assert decide_json(mail(sender=BOTH, to=[JANA])).skip is Skip.INTERNAL
    # As a recipient of a contact, it is a user: incoming, linked to user 3.
    decision = decide_json(mail(sender=NOVAK, to=[BOTH]))
    assert decision.direction == "incoming"
    assert decision.user_ids == [3]
    assert decision.contact_ids == [101]
    # As the sender to a contact, it is a user: outgoing from user 3.
    decision = decide_json(mail(sender=BOTH, to=[NOVAK]))
    assert decision.direction == "outgoing"
    assert decision.user_ids == [3]
    assert 103 not in decision.contact_ids


def test_crm_address_alone_is_not_a_participant() -> None:
    # Only the CRM mailbox and a user: internal.
    assert decide_json(mail(sender=JANA, to=[CRM], cc=[])).skip is Skip.INTERNAL


# --- 5. direction --------------------------------------------------------------------------


def test_incoming_contact_to_user() -> None:
    decision = decide_json(mail(sender=NOVAK, to=[JANA], cc=[CRM]))
    assert decision.capture
    assert decision.direction == "incoming"
    assert decision.contact_ids == [101]
    assert decision.company_ids == [11]
    assert decision.user_ids == [1]
    assert decision.reasons[0].startswith("incoming")


def test_incoming_links_every_user_recipient_in_address_order_once() -> None:
    decision = decide_json(mail(sender=NOVAK, to=[PETR, STRANGER], cc=[JANA, CRM], bcc=[PETR]))
    assert decision.user_ids == [2, 1]


def test_outgoing_with_crm_in_bcc() -> None:
    decision = decide_json(mail(sender=JANA, to=[NOVAK], cc=[], bcc=[CRM]))
    assert decision.capture
    assert decision.direction == "outgoing"
    assert decision.user_ids == [1]
    assert decision.contact_ids == [101]
    assert decision.reasons[0].startswith("outgoing")


def test_outgoing_with_crm_in_cc() -> None:
    decision = decide_json(mail(sender=PETR, to=[MALA], cc=[CRM]))
    assert (decision.direction, decision.contact_ids, decision.user_ids) == ("outgoing", [102], [2])


def test_outgoing_contacts_in_address_order_with_their_companies() -> None:
    decision = decide_json(
        mail(sender=JANA, to=[MALA, STRANGER], cc=[NOVAK, PETR, CRM], bcc=["no.company@zakaznik.example", MALA])
    )
    assert decision.contact_ids == [102, 101, 104]
    assert decision.company_ids == [12, 11]


def test_sender_not_in_address_book() -> None:
    decision = decide_json(mail(sender=STRANGER, to=[JANA]))
    assert not decision.capture
    assert decision.skip is Skip.SENDER_UNKNOWN
    assert decision.reasons == ["sender not in address book"]
    assert decision.sender == STRANGER


def test_contact_writing_only_to_crm_address() -> None:
    decision = decide_json(mail(sender=NOVAK, to=[CRM], cc=[]))
    assert decision.reasons == ["no recipient is a user"]


def test_contact_writing_to_other_contacts_and_strangers() -> None:
    decision = decide_json(mail(sender=NOVAK, to=[MALA, STRANGER], cc=[CRM]))
    assert decision.skip is Skip.NO_USER_RECIPIENT


def test_user_writing_to_no_known_customer() -> None:
    decision = decide_json(mail(sender=JANA, to=[STRANGER], cc=[CRM]))
    assert decision.reasons == ["no recipient in address book"]


def test_no_sender_at_all() -> None:
    decision = decide_json(mail(sender=None, to=[STRANGER]))
    assert decision.skip is Skip.SENDER_UNKNOWN


def test_sender_field_used_when_from_missing() -> None:
    data = mail(sender=None, to=[JANA])
    data["sender"] = {"emailAddress": {"address": NOVAK}}
    assert decide_json(data).direction == "incoming"


def test_from_wins_over_sender() -> None:
    data = mail(sender=NOVAK, to=[JANA])
    data["sender"] = {"emailAddress": {"address": "assistant@zakaznik.example"}}
    assert decide_json(data).contact_ids == [101]


def test_crm_mailbox_as_sender_is_not_a_participant() -> None:
    decision = decide_json(mail(sender=CRM, to=[NOVAK]))
    assert decision.skip is Skip.SENDER_UNKNOWN


# --- address rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "Jan.Novak@Zakaznik.EXAMPLE",
        "  jan.novak@zakaznik.example\t",
        "<jan.novak@zakaznik.example>",
        " < JAN.NOVAK@zakaznik.example > ",
        "mailto:jan.novak@zakaznik.example",
        "MAILTO:<jan.novak@zakaznik.example>",
    ],
)
def test_addresses_compare_in_normal_form(written: str) -> None:
    decision = decide_json(mail(sender=written, to=[JANA.upper()], cc=[" <CRM@FIRMA.example> "]))
    assert decision.direction == "incoming"
    assert decision.contact_ids == [101]


def test_crm_address_in_other_case_and_padding_is_still_the_crm_address() -> None:
    decision = decide_json(mail(sender=JANA, to=["  Crm@Firma.Example "], cc=[]))
    assert decision.skip is Skip.INTERNAL


def test_null_address_fields_are_ignored() -> None:
    data = mail(sender=NOVAK, to=[JANA])
    data["toRecipients"].append({"emailAddress": {"name": "No address", "address": None}})
    data["ccRecipients"].append({"emailAddress": None})
    assert decide_json(data).capture


# --- orders in the decision ----------------------------------------------------------------


def test_order_in_subject() -> None:
    decision = decide_json(mail(subject="Re: Order:4 delivery"))
    assert (decision.order_number, decision.order_id) == (4, 40)
    assert decision.reasons[-1] == "order 4 named in the subject"


def test_order_not_found_keeps_mail_captured_and_unlinked() -> None:
    decision = decide_json(mail(subject="Order: 99"))
    assert decision.capture
    assert (decision.order_number, decision.order_id) == (99, None)
    assert "order 99 not found" in decision.reasons


def test_leading_zeros_are_dropped() -> None:
    decision = decide_json(mail(subject="ORDER : 0007"))
    assert (decision.order_number, decision.order_id) == (7, 70)


def test_subject_wins_over_body() -> None:
    decision = decide_json(mail(subject="Order:7", body="Order:4"))
    assert decision.order_number == 7


def test_body_line_when_subject_names_none() -> None:
    decision = decide_json(mail(subject="Delivery", body="Hello\r\nOrder: 4\r\nRegards"))
    assert (decision.order_number, decision.order_id) == (4, 40)
    assert decision.reasons[-1] == "order 4 named in the body"


def test_html_body_order_line() -> None:
    body = "<html><body><p>Dear Jana,</p><div>Objednávka:&nbsp;120</div><p>Regards</p></body></html>"
    decision = decide_json(mail(subject=None, body=body, html=True))
    assert (decision.order_number, decision.order_id) == (120, 1200)


def test_no_order_named() -> None:
    decision = decide_json(mail(subject="Hello", body="No order here"))
    assert (decision.order_number, decision.order_id) == (None, None)
    assert len(decision.reasons) == 1


def test_skipped_mail_carries_no_order() -> None:
    decision = decide_json(mail(sender=STRANGER, subject="Order:4"))
    assert (decision.capture, decision.order_number) == (False, None)


def test_one_megabyte_body_with_order_at_the_end() -> None:
    body = ("lorem ipsum dolor sit amet " * 38 + "\n") * 1000 + "Order:7\n"
    assert len(body) > 1_000_000
    assert decide_json(mail(subject="x", body=body)).order_number == 7
    html_body = "<div>" + "lorem <b>ipsum</b> dolor &amp; sit<br>" * 30_000 + "</div><p>Order:4</p>"
    assert len(html_body) > 1_000_000
    assert decide_json(mail(subject="x", body=html_body, html=True)).order_number == 4


# --- tolerance -----------------------------------------------------------------------------


def test_null_subject_and_body_and_unknown_fields() -> None:
    data = mail(subject=None)
    data["body"] = None
    data["someFutureGraphField"] = {"nested": [1, 2]}
    data["internetMessageHeaders"] = None
    decision = decide_json(data)
    assert decision.capture
    assert decision.order_number is None


def test_minimal_message() -> None:
    decision = decide_json(
        {"from": {"emailAddress": {"address": NOVAK}}, "toRecipients": [{"emailAddress": {"address": JANA}}]}
    )
    assert decision.capture
    assert decision.message_id is None


# --- conversation inheritance --------------------------------------------------------------


def test_reply_naming_no_order_inherits_the_conversation_order() -> None:
    decision = decide_json(mail(subject="Re: delivery", body="Thanks"), conversation_order=ConversationOrder(4, 40))
    assert (decision.order_number, decision.order_id) == (4, 40)
    assert decision.reasons[-1] == "order 4 inherited from the conversation"


def test_named_order_wins_over_the_conversation_order() -> None:
    decision = decide_json(mail(subject="Order:7"), conversation_order=ConversationOrder(4, 40))
    assert (decision.order_number, decision.order_id) == (7, 70)


def test_skipped_mail_inherits_nothing() -> None:
    decision = decide_json(mail(sender=STRANGER), conversation_order=ConversationOrder(4, 40))
    assert decision.order_id is None
