"""Property tests: the decision and the parsers never raise, and find what was put there."""

from __future__ import annotations

import html
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.domain.addresses import normalize_address
from crm_core.domain.capture_decision import decide
from crm_core.domain.html_text import html_to_text
from crm_core.domain.mail import GraphMessage
from crm_core.domain.orders import OrderMention, OrderParser
from tests.unit.messages import CRM, DIRECTORY, JANA, MALA, NOVAK, PETR, RULES

PARSER = OrderParser(["Order", "Objednávka"])

known_addresses = st.sampled_from([CRM, JANA, PETR, NOVAK, MALA, "x@newsletter.example", "postmaster@a.b"])
messy_address = st.one_of(
    known_addresses.map(lambda a: f"  <{a.upper()}> "),
    known_addresses,
    st.text(max_size=40),
    st.none(),
)
recipient = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "emailAddress": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {}, optional={"address": messy_address, "name": st.one_of(st.none(), st.text(max_size=20))}
                ),
            )
        },
    ),
)
recipients = st.one_of(st.none(), st.lists(recipient, max_size=6))
header = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(
            st.none(),
            st.sampled_from(["Auto-Submitted", "precedence", "Content-Type", "X-Other"]),
            st.text(max_size=15),
        ),
        "value": st.one_of(
            st.none(), st.sampled_from(["no", "bulk", "multipart/report", "auto-replied"]), st.text(max_size=30)
        ),
    },
)
body_text = st.one_of(st.none(), st.text(max_size=300), st.sampled_from(["<p>Order:4</p>", "<div>x<br>Order: 7"]))
graph_message: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "@odata.type": st.one_of(
            st.none(),
            st.sampled_from(["#microsoft.graph.message", "#microsoft.graph.eventMessageRequest"]),
            st.text(max_size=20),
        ),
        "internetMessageId": st.one_of(st.none(), st.text(max_size=40)),
        "conversationId": st.one_of(st.none(), st.text(max_size=20)),
        "subject": st.one_of(st.none(), st.text(max_size=80), st.just("Re: Order:4")),
        "body": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "contentType": st.one_of(st.none(), st.sampled_from(["html", "text", "HTML"])),
                    "content": body_text,
                },
            ),
        ),
        "from": recipient,
        "sender": recipient,
        "toRecipients": recipients,
        "ccRecipients": recipients,
        "bccRecipients": recipients,
        "internetMessageHeaders": st.one_of(st.none(), st.lists(header, max_size=5)),
        "receivedDateTime": st.one_of(st.none(), st.text(max_size=25)),
        "unknownFutureField": st.one_of(st.none(), st.integers(), st.text(max_size=5)),
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(graph_message)
def test_decision_never_raises_on_graph_shaped_input(data: dict[str, Any]) -> None:
    decision = decide(GraphMessage.model_validate(data), DIRECTORY, RULES)
    assert decision.reasons, "every decision says why"
    assert decision.capture == (decision.direction is not None)
    if decision.capture:
        assert decision.contact_ids and decision.user_ids
    else:
        assert decision.skip is not None and decision.reasons[0].startswith(decision.skip.value)


@given(st.text())
def test_order_parser_never_raises(text: str) -> None:
    PARSER.in_subject(text)
    PARSER.in_text(text)
    PARSER.in_body(text, is_html=True)


@given(st.text())
def test_html_to_text_never_raises(text: str) -> None:
    assert isinstance(html_to_text(text), str)


line = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    max_size=60,
)


@given(
    st.lists(line.filter(lambda s: PARSER.in_text(s) is None), max_size=20),
    st.integers(min_value=0, max_value=10**18 - 1),
    st.data(),
    st.sampled_from(["Order", "order", "OBJEDNÁVKA"]),
    st.sampled_from([":", " : ", ":  ", "\t:"]),
)
def test_token_on_a_line_of_its_own_is_found(
    lines: list[str], number: int, data: st.DataObject, keyword: str, colon: str
) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(lines)))
    lines.insert(position, f"  {keyword}{colon}{number} ")
    newline = data.draw(st.sampled_from(["\n", "\r\n"]))
    assert PARSER.in_text(newline.join(lines)) == OrderMention(number, "body")


@given(st.lists(line, max_size=10), st.integers(min_value=0, max_value=10**9))
def test_token_in_its_own_html_paragraph_is_found(paragraphs: list[str], number: int) -> None:
    escaped = [f"<p>{html.escape(p)}</p>" for p in paragraphs if PARSER.in_text(html_to_text(html.escape(p))) is None]
    markup = "<html><body>" + "".join(escaped) + f"<p>Order:{number}</p></body></html>"
    found = PARSER.in_body(markup, is_html=True)
    assert found == OrderMention(number, "body")


@given(st.text(max_size=60))
def test_normalize_address_is_idempotent(raw: str) -> None:
    once = normalize_address(raw)
    assert normalize_address(once) == once
