"""Integers in a request are ASCII digits within SQLite's 64-bit range, or a 400 that says why.

Python's int() and str.isdigit() take any Unicode digit ("٣", "３", "𝟑" are all 3) and "³" passes
isdigit() but not int(); SQLite refuses integers beyond 64 bits with an OverflowError. Over real
HTTP, every place the emulator reads an integer from a request (path ids, file ids, `top`, filter
values of int columns, the seed endpoint, the faults' Retry-After date) must refuse such text with
the contract's 400, never answer 500 and never take it for another number.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.netgenium.ng_helpers import Admin

INT64_MAX = 2**63 - 1
NON_ASCII_DIGITS = [
    "\u0663",  # ٣ ARABIC-INDIC DIGIT THREE: int() reads 3
    "\uff13",  # ３ FULLWIDTH DIGIT THREE: int() reads 3
    "\U0001d7d1",  # 𝟑 MATHEMATICAL BOLD DIGIT THREE: int() reads 3
    "\u0969",  # ३ DEVANAGARI DIGIT THREE
    "\u00b3",  # ³ SUPERSCRIPT THREE: isdigit() but not int()
    "1\u0663",  # ١٣ mixed: 1 then an Arabic-Indic 3
]
OUT_OF_RANGE = ["99999999999999999999", str(INT64_MAX + 1), "1" + "0" * 5000]
RECORDS = "/api/v1/tables/ng_contacts/records"
ACTIVITIES = "/api/v1/tables/ng_activities/records"


def _seed(admin: Admin) -> None:
    admin.seed("ng_contacts", [{"id": n, "ng_email": f"c{n}@x.example", "ng_company_id": n} for n in range(1, 6)])
    admin.seed("ng_activities", [{"id": 3, "ng_kind": "email"}])
    attached = admin.api(
        "POST", f"{ACTIVITIES}/3/files", params={"column": "ng_attachments", "filename": "a.txt"}, content=b"x"
    )
    assert attached.status_code == 201 and attached.json()["file_id"] == 1


def _refused(answer: httpx.Response, code: str, *words: str) -> str:
    assert answer.status_code == 400, f"{answer.status_code}: {answer.text[:300]}"
    error = answer.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error
    message = error["message"]
    assert isinstance(message, str) and len(message) < 400
    return message


def _path_requests(bad: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name of the bad part, method, path, request arguments) for every route with an integer in its path."""
    return [
        ("id", "GET", f"{RECORDS}/{bad}", {}),
        ("id", "PATCH", f"{RECORDS}/{bad}", {"json": {"ng_email": "changed@x.example"}}),
        ("id", "DELETE", f"{RECORDS}/{bad}", {}),
        (
            "id",
            "POST",
            f"{ACTIVITIES}/{bad}/files",
            {"params": {"column": "ng_attachments", "filename": "b.txt"}, "content": b"y"},
        ),
        ("id", "GET", f"{ACTIVITIES}/{bad}/files/1", {}),
        ("file_id", "GET", f"{ACTIVITIES}/3/files/{bad}", {}),
    ]


@pytest.mark.parametrize("bad", NON_ASCII_DIGITS)
def test_non_ascii_digits_in_a_path_are_400_and_touch_nothing(admin: Admin, bad: str) -> None:
    _seed(admin)
    for name, method, path, kwargs in _path_requests(bad):
        message = _refused(admin.api(method, path, **kwargs), "bad_request", name, "ASCII")
        assert bad in message  # it names what was sent
    # Nothing was taken for record 3 or file 1: no change, no delete, no second file.
    assert admin.api("GET", f"{RECORDS}/3").json()["ng_email"] == "c3@x.example"
    files = admin.api("GET", f"{ACTIVITIES}/3").json()["ng_attachments"]
    assert [f["filename"] for f in files] == ["a.txt"]


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_ids_beyond_64_bits_in_a_path_are_400(admin: Admin, bad: str) -> None:
    _seed(admin)
    for name, method, path, kwargs in _path_requests(bad):
        _refused(admin.api(method, path, **kwargs), "bad_request", name, str(INT64_MAX))


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "abc", " 3", "+3", "1_0", "3 ", "0x3"])
def test_other_malformed_ids_are_400(admin: Admin, bad: str) -> None:
    _seed(admin)
    for name, method, path, kwargs in _path_requests(bad):
        _refused(admin.api(method, path, **kwargs), "bad_request", name)


def test_the_largest_64_bit_id_is_an_id(admin: Admin) -> None:
    admin.seed("ng_contacts", [{"id": INT64_MAX, "ng_email": "last@x.example"}])
    answer = admin.api("GET", f"{RECORDS}/{INT64_MAX}")
    assert answer.status_code == 200 and answer.json()["id"] == INT64_MAX
    assert admin.api("GET", f"{RECORDS}/00{INT64_MAX}").json()["id"] == INT64_MAX  # leading zeros, as before
    assert admin.api("DELETE", f"{ACTIVITIES}/{INT64_MAX}").status_code == 404
    ran_out = admin.api("POST", RECORDS, json={"ng_email": "next@x.example"})  # no id is left after it
    assert ran_out.status_code == 409 and "no id left" in ran_out.json()["error"]["message"], ran_out.text


@pytest.mark.parametrize("bad", [*NON_ASCII_DIGITS, "1_0", " 5", "+5", "5 ", "", "99999999999999999999", "1" * 5000])
def test_top_is_ascii_digits_in_range(admin: Admin, bad: str) -> None:
    _seed(admin)
    _refused(admin.api("GET", RECORDS, params={"top": bad}), "bad_request", "top")


def test_top_still_takes_its_range(admin: Admin) -> None:
    _seed(admin)
    assert len(admin.api("GET", RECORDS, params={"top": "2"}).json()["records"]) == 2
    assert len(admin.api("GET", RECORDS, params={"top": "1000"}).json()["records"]) == 5
    for bad in ("0", "1001", "-1"):
        _refused(admin.api("GET", RECORDS, params={"top": bad}), "bad_request", "top", "1..1000")


BAD_INT_FILTERS = [
    *(f"id eq {digit}" for digit in NON_ASCII_DIGITS),
    *(f"ng_company_id eq '{digit}'" for digit in NON_ASCII_DIGITS),
    "id in (1, \uff13)",
    "id in ('1', '\u0663')",
    "id ge 2 and id le \u0664",
    "system eq \u0661",  # a bool column takes 0 and 1, in ASCII
    "id eq '--3'",
    "id eq '-'",
    "id eq 99999999999999999999",
    "id ge -99999999999999999999",
    f"id eq {INT64_MAX + 1}",
    "id eq '99999999999999999999'",
    "id eq " + "9" * 5000,
    "id eq '" + "9" * 5000 + "'",
    "id eq " + "9" * 400 + ".5",
]


@pytest.mark.parametrize("text", BAD_INT_FILTERS, ids=lambda text: text[:40])
def test_filter_integers_are_ascii_and_64_bit(admin: Admin, text: str) -> None:
    _seed(admin)
    _refused(admin.api("GET", RECORDS, params={"filter": text}), "bad_filter")


def test_non_ascii_digits_in_a_filter_are_named(admin: Admin) -> None:
    _seed(admin)
    message = _refused(admin.api("GET", RECORDS, params={"filter": "id eq \u0663"}), "bad_filter", "ASCII")
    assert "\u0663" in message
    message = _refused(admin.api("GET", RECORDS, params={"filter": "id eq '\uff13'"}), "bad_filter", "ASCII", "id")
    assert "\uff13" in message
    _refused(admin.api("GET", RECORDS, params={"filter": "id eq 99999999999999999999"}), "bad_filter", "range")


def test_filter_integers_in_range_still_match(admin: Admin) -> None:
    _seed(admin)
    for text, expected in [
        ("id eq 3", [3]),
        ("id eq '3'", [3]),
        ("ng_company_id in (1, '2', -7)", [1, 2]),
        (f"id le {INT64_MAX}", [1, 2, 3, 4, 5]),
        (f"id ge -{INT64_MAX + 1}", [1, 2, 3, 4, 5]),
        ("system eq 0", [1, 2, 3, 4, 5]),
    ]:
        answer = admin.api("GET", RECORDS, params={"filter": text})
        assert answer.status_code == 200, answer.text
        assert [r["id"] for r in answer.json()["records"]] == expected, text


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 10**20, "3", "\u0663"])
def test_seeded_and_written_integers_are_64_bit(admin: Admin, bad: Any) -> None:
    seeded = admin.http.post("/_admin/seed", json={"table": "ng_contacts", "records": [{"id": bad}]})
    assert seeded.status_code == 400 and seeded.json()["error"]["code"] == "bad_value", seeded.text
    seeded = admin.http.post(
        "/_admin/seed", json={"table": "ng_contacts", "records": [{"id": 1, "ng_company_id": bad}]}
    )
    assert seeded.status_code == 400 and seeded.json()["error"]["code"] == "bad_value", seeded.text
    written = admin.api("POST", RECORDS, json={"ng_company_id": bad})
    assert written.status_code == 400 and written.json()["error"]["code"] == "bad_value", written.text
    assert admin.api("GET", RECORDS).json()["records"] == []


@pytest.mark.parametrize(
    "bad", ["date:x", "date:", "date:\u0663", "date:1e400", "date:99999999999999999999", "1\r\nX: y"]
)
def test_a_retry_after_the_emulator_cannot_send_is_refused_when_set(admin: Admin, bad: str) -> None:
    answer = admin.http.post("/_admin/faults", json={"throttle_next": 1, "retry_after": bad})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_request", answer.text
    assert "retry_after" in answer.json()["error"]["message"]
    assert admin.api("GET", RECORDS).status_code == 200  # the fault was not set
