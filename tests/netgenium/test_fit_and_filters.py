"""Values are made to fit their columns on purpose, and filters quote every value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_core.netgenium import filters as f
from crm_core.netgenium.fit import clean_text, fit_filename, fit_identifier, fit_text, utf16_len


def test_literals_quote_and_escape() -> None:
    assert f.literal("O'Brien") == "'O''Brien'"
    assert f.literal(5) == "5" and f.literal(True) == "true" and f.literal(None) == "null"
    aware = datetime(2024, 1, 2, 4, 0, tzinfo=timezone(timedelta(hours=2)))
    assert f.literal(aware) == "'2024-01-02T02:00:00.000Z'"
    assert (f.eq("ng_email", "a") & f.in_("id", [1, 2])).text() == "ng_email eq 'a' and id in (1,2)"


def test_column_names_are_checked() -> None:
    for bad in ("ng_email or 1=1", "", "Ng_Email", "a;b"):
        try:
            f.eq(bad, 1)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


@given(
    values=st.lists(st.emails() | st.text(max_size=40), min_size=1, max_size=300),
    max_values=st.integers(min_value=1, max_value=120),
    max_chars=st.integers(min_value=200, max_value=3000),
)
def test_chunked_in_keeps_every_value_within_the_limits(values: list[str], max_values: int, max_chars: int) -> None:
    base = f.eq("ng_kind", "email")
    chunks = list(f.chunked_in("ng_email", values, max_values=max_values, max_chars=max_chars, base=base))
    seen: list[str] = []
    for chunk in chunks:
        condition = chunk.conditions[-1]
        inner = condition[len("ng_email in (") : -1]
        count = inner.count("','") + 1 if inner.startswith("'") else 0
        assert 1 <= count <= max_values
        single = len(quote(f.literal(values[len(seen)]), safe=""))
        assert len(quote(chunk.text(), safe="")) <= max(max_chars, single + 60)
        seen.extend(values[len(seen) : len(seen) + count])
    assert seen == values


def test_fit_text_cuts_with_an_ellipsis_in_utf16_units() -> None:
    assert fit_text("short", 10) == "short"
    cut = fit_text("a" * 9 + "😀😀", 10)
    assert cut == "a" * 9 + "…"
    assert fit_text("😀" * 10, 5) == "😀😀…"
    assert utf16_len(fit_text("😀" * 10, 6)) <= 6


@given(value=st.text(), length=st.integers(min_value=1, max_value=300))
def test_fitted_text_always_fits(value: str, length: int) -> None:
    assert utf16_len(fit_text(value, length)) <= length
    assert utf16_len(fit_identifier(value, length)) <= length


@given(a=st.text(min_size=1, max_size=400), b=st.text(min_size=1, max_size=400))
def test_fitted_identifiers_stay_distinct(a: str, b: str) -> None:
    if clean_text(a) != clean_text(b):
        assert fit_identifier(a, 64) != fit_identifier(b, 64)
    assert fit_identifier(a, 64) == fit_identifier(a, 64)


def test_clean_text_drops_what_sql_server_cannot_hold() -> None:
    assert clean_text("a\x00b\tc\r\nd\ud800") == "ab\tc\r\nd?"


def test_file_names_are_safe_and_unique() -> None:
    taken: set[str] = set()
    names = [fit_filename(n, taken) for n in ["a.pdf", "A.PDF", "a.pdf", "", "x/y:z.txt", "." * 3, "n" * 400 + ".txt"]]
    assert names[:5] == ["a.pdf", "A (2).PDF", "a (3).pdf", "attachment", "x_y_z.txt"]
    assert names[5] == "attachment (2)"
    assert names[6].endswith(".txt") and utf16_len(names[6]) == 255


def test_datetimes_are_written_in_utc() -> None:
    assert f.format_datetime(datetime(2024, 1, 1, 12, 0, 0, 999999)) == "2024-01-01T12:00:00.999Z"
    assert f.format_datetime(datetime(2024, 1, 1, 12, tzinfo=UTC)) == "2024-01-01T12:00:00.000Z"


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # shown as "invoiceexe.pdf" with the override
        ("\u2067report\u2069.pdf", "report.pdf"),
        ("a\u200bb\ufeff.txt", "ab.txt"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("LPT9.pdf", "_LPT9.pdf"),
        ("console.pdf", "console.pdf"),
        ("con .pdf", "_con .pdf"),
    ],
)
def test_attachment_names_lose_direction_controls_and_device_names(name: str, stored: str) -> None:
    assert fit_filename(name, set()) == stored
