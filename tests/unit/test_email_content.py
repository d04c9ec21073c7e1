"""The stored form of a mail: sanitized HTML, text with line breaks, cut bodies, dates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_core.domain.email_content import email_content, sanitize_html
from crm_core.domain.mail import GraphMessage


@pytest.mark.parametrize(
    ("markup", "forbidden"),
    [
        ("<p>hi<script>alert(1)</script></p>", ["<script", "alert(1)"]),
        ('<img src="x" onerror="alert(1)">', ["onerror", "<img"]),
        ('<a href="javascript:alert(1)">x</a>', ["javascript:"]),
        ('<a href=" JaVaScRiPt:alert(1)">x</a>', ["alert(1)"]),
        ('<div onmouseover="steal()">x</div>', ["onmouseover", "steal"]),
        ('<iframe src="https://evil.example"></iframe>', ["<iframe", "evil.example"]),
        ('<svg onload="alert(1)"><circle/></svg>', ["onload", "<svg"]),
        ('<p style="background:url(javascript:alert(1))">x</p>', ["javascript", "url("]),
        ('<form action="https://evil.example"><input name=p></form>', ["<form", "<input"]),
        ("<object data=x></object><embed src=x>", ["<object", "<embed"]),
        ('<meta http-equiv="refresh" content="0;url=https://evil.example">', ["<meta", "evil"]),
        ('<img src="https://tracker.example/pixel.gif">', ["tracker.example"]),
        ("<p>unclosed <b>bold <i>italic", ["<script"]),
    ],
)
def test_sanitize_removes_what_could_run_or_call_home(markup: str, forbidden: list[str]) -> None:
    clean = sanitize_html(markup)
    for text in forbidden:
        assert text.lower() not in clean.lower()


def test_sanitize_keeps_what_a_reader_needs() -> None:
    clean = sanitize_html(
        '<table border="1"><tr><td colspan="2" style="color: red">Order:4</td></tr></table>'
        '<p><a href="https://shop.example/o/4">order</a> <b>now</b></p>'
    )
    assert '<td colspan="2" style="color:red">Order:4</td>' in clean
    assert 'href="https://shop.example/o/4"' in clean
    assert 'rel="noopener noreferrer nofollow"' in clean
    assert "<b>now</b>" in clean


def message(**fields: object) -> GraphMessage:
    return GraphMessage.model_validate(fields)


def test_html_mail_gets_text_with_line_breaks_and_safe_html() -> None:
    content = email_content(
        message(
            subject="  Re: x ", body={"contentType": "html", "content": "<p>Hi</p><p>Order:4<script>x</script></p>"}
        ),
        direction="incoming",
    )
    assert content.subject == "Re: x"
    assert [line for line in content.body_text.splitlines() if line] == ["Hi", "Order:4"]
    assert "<script" not in content.body_html
    assert not content.cut


def test_text_mail_is_escaped_in_its_html_form() -> None:
    content = email_content(message(body={"contentType": "text", "content": "a <b> & c\r\nd"}), direction="incoming")
    assert content.body_text == "a <b> & c\nd"
    assert content.body_html.startswith("<pre>a &lt;b&gt; &amp; c")


def test_huge_body_is_cut_with_a_note() -> None:
    body = "x" * 10_000_000
    content = email_content(
        message(body={"contentType": "text", "content": body}), direction="incoming", max_body_chars=1000
    )
    assert content.cut
    assert content.body_text.startswith("x" * 1000)
    assert "cut to 1000 characters" in content.body_text
    assert len(content.body_text) < 1200


def test_dates_follow_the_direction() -> None:
    data = {"sentDateTime": "2026-11-20T08:00:00Z", "receivedDateTime": "2026-11-20T09:00:00Z"}
    assert email_content(message(**data), direction="outgoing").sent_at == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert email_content(message(**data), direction="incoming").sent_at == datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert email_content(message(receivedDateTime="garbage"), direction="incoming").sent_at.tzinfo is not None


def test_null_subject_and_body() -> None:
    content = email_content(message(subject=None, body=None), direction="incoming")
    assert (content.subject, content.body_text) == ("", "")
