"""The order keyword: subject tokens, body lines, HTML line structure, quoting."""

from __future__ import annotations

import pytest

from crm_core.domain.html_text import html_to_text
from crm_core.domain.orders import OrderMention, OrderParser

PARSER = OrderParser(["Order", "Objednávka"])


@pytest.mark.parametrize(
    ("subject", "number"),
    [
        ("Order:4", 4),
        ("Re: Order:4 - delivery", 4),
        ("order : 12", 12),
        ("ORDER\t:\t0042", 42),
        ("(Order:5)", 5),
        ("Order:5, Order:6", 5),
        ("Fw: objednávka:88", 88),
        ("OBJEDNÁVKA: 9 urgent", 9),
        ("Order:4.", 4),
    ],
)
def test_subject_token(subject: str, number: int) -> None:
    assert PARSER.in_subject(subject) == number


@pytest.mark.parametrize(
    "subject",
    [
        "PreOrder:4",  # keyword glued to a word before it
        "Order:4b",  # number glued to a word after it
        "Orders:4",
        "Order 4",  # no colon
        "Order:",
        "Order:-4",
        "Reorder: 4",
        "Order_:4",
        "Order:1234567890123456789",  # over 18 digits: not an order number
        "",
    ],
)
def test_subject_without_token(subject: str) -> None:
    assert PARSER.in_subject(subject) is None


def test_body_needs_a_line_of_its_own() -> None:
    assert PARSER.in_text("please see Order:4 below") is None
    assert PARSER.in_text("see below\n  Order : 4  \nthanks") == OrderMention(4, "body")


def test_body_crlf_and_cr_line_ends() -> None:
    assert PARSER.in_text("a\r\nOrder:4\r\nb") == OrderMention(4, "body")
    assert PARSER.in_text("a\rOrder:5\rb") == OrderMention(5, "body")


def test_first_of_several_body_lines_wins() -> None:
    assert PARSER.in_text("Order:7\nOrder:4\n") == OrderMention(7, "body")


def test_quoted_lines_only_as_fallback() -> None:
    text = "> Order:4\nThanks\n> > Order:5\nOrder:7\n"
    assert PARSER.in_text(text) == OrderMention(7, "body")
    assert PARSER.in_text("Thanks\n> Order:4\n>> Order:5") == OrderMention(4, "quoted body")


def test_html_line_structure() -> None:
    for markup in (
        "Hello<br>Order:4<br/>Bye",
        "<p>Hello</p><p>Order:4</p>",
        "<div>Hello</div><div>Order:4</div>",
        "<table><tr><td>Order:4</td></tr></table>",
        "<ul><li>Order:4</li><li>x</li></ul>",
        "Hello<BR >Order:4<BR>",
    ):
        assert PARSER.in_body(markup, is_html=True) == OrderMention(4, "body"), markup


def test_html_source_newlines_are_not_line_breaks() -> None:
    # A browser shows this as one line: "Hello Order:4 thanks".
    assert PARSER.in_body("<p>Hello\nOrder:4\nthanks</p>", is_html=True) is None
    # Inside <pre> they are.
    assert PARSER.in_body("<pre>Hello\nOrder:4\nthanks</pre>", is_html=True) == OrderMention(4, "body")


def test_html_entities_are_decoded() -> None:
    assert PARSER.in_body("<p>Order&#58;&nbsp;4</p>", is_html=True) == OrderMention(4, "body")
    assert PARSER.in_body("<p>Objedn&aacute;vka: 3</p>", is_html=True) == OrderMention(3, "body")
    assert html_to_text("a &lt;b&gt; &amp; c") == "a <b> & c"


def test_html_blockquote_is_quoted_text() -> None:
    markup = "<p>Thanks</p><blockquote><p>Order:4</p></blockquote>"
    assert PARSER.in_body(markup, is_html=True) == OrderMention(4, "quoted body")
    markup = "<div>Order:7</div><blockquote>Order:4</blockquote>"
    assert PARSER.in_body(markup, is_html=True) == OrderMention(7, "body")


def test_html_gt_entity_quote_is_quoted() -> None:
    assert PARSER.in_body("<p>&gt; Order:4</p>", is_html=True) == OrderMention(4, "quoted body")


def test_script_style_comment_are_not_text() -> None:
    markup = "<style>p{}</style><script>var x='<br>Order:4<br>'</script><!-- <br>Order:5<br> -->ok"
    assert PARSER.in_body(markup, is_html=True) is None
    assert html_to_text(markup).strip() == "ok"


def test_broken_html_does_not_hide_or_crash() -> None:
    assert PARSER.in_body("<div>Order:4<br><p <b>x", is_html=True) == OrderMention(4, "body")
    assert html_to_text("<script>unclosed <br> Order:4") == ""
    assert PARSER.in_body("a < b<br>Order:6", is_html=True) == OrderMention(6, "body")


def test_plain_text_body_is_not_html() -> None:
    assert PARSER.in_body("<p>Order:4</p>", is_html=False) is None


def test_find_prefers_subject() -> None:
    assert PARSER.find("Order:7", "Order:4", is_html=False) == OrderMention(7, "subject")
    assert PARSER.find("none", "Order:4", is_html=False) == OrderMention(4, "body")
    assert PARSER.find(None, None, is_html=False) is None


def test_keywords_must_be_given() -> None:
    with pytest.raises(ValueError, match="keyword"):
        OrderParser(["", "  "])
