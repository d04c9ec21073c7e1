"""Continuation tokens are signed by the emulator process that handed them out and cannot be forged.

A token carries the offset of the next page and a fingerprint of its query; without a signature a
client could write its own (any offset, including one beyond SQLite's 64-bit range, which once
answered 500). Over real HTTP: a crafted, altered, truncated or extended token, and one handed out
by another emulator process, is a 400 `bad_continuation` that says what is wrong, never a 500 and
never a page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest

from sandbox.launch import ServerProcess
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER, Admin

RECORDS = "/api/v1/tables/ng_contacts/records"


def _seed(admin: Admin) -> None:
    admin.seed("ng_contacts", [{"id": n, "ng_email": f"c{n}@x.example"} for n in range(1, 8)])


def _page(admin: Admin, continuation: str | None = None, top: str = "2") -> httpx.Response:
    params = {"top": top, **({"continuation": continuation} if continuation is not None else {})}
    return admin.api("GET", RECORDS, params=params)


def _token(admin: Admin) -> str:
    token = _page(admin).json()["continuation"]
    assert isinstance(token, str)
    return token


def _refused(answer: httpx.Response, *words: str) -> None:
    assert answer.status_code == 400, f"{answer.status_code}: {answer.text[:300]}"
    error = answer.json()["error"]
    assert error["code"] == "bad_continuation", error
    for word in words:
        assert word in error["message"], error


def _unsigned(offset: object, table: str = "ng_contacts", top: int = 2) -> str:
    """A token as a client could once write it: base64 of the offset and the query's fingerprint."""
    fingerprint = hashlib.sha256(json.dumps([table, None, None, None, top]).encode()).hexdigest()[:16]
    raw = json.dumps({"o": offset, "h": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_the_handed_out_token_pages_through(admin: Admin) -> None:
    _seed(admin)
    seen: list[int] = []
    token: str | None = None
    for _ in range(10):
        page = _page(admin, token).json()
        seen += [r["id"] for r in page["records"]]
        token = page["continuation"]
        if token is None:
            break
    assert seen == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("offset", [4, 0, 10**20, -1, 2**63, "4", 4.0, None, True])
def test_a_crafted_token_is_not_honoured(admin: Admin, offset: object) -> None:
    _seed(admin)
    _refused(_page(admin, _unsigned(offset)))


def test_a_token_with_a_crafted_payload_and_a_copied_signature_is_refused(admin: Admin) -> None:
    _seed(admin)
    token = _token(admin)
    payload, _, signature = token.partition(".")
    assert signature, "a signed token has a signature part"
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for offset in (4, 10**20):
        data["o"] = offset
        crafted = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
        _refused(_page(admin, f"{crafted}.{signature}"), "signature")


def _altered(token: str) -> Iterator[str]:
    for index in range(len(token)):
        for replacement in {"A", "B", "-", "_", ".", "=", "%", "\u0663"} - {token[index]}:
            yield token[:index] + replacement + token[index + 1 :]


def test_an_altered_token_is_refused_at_every_position(admin: Admin) -> None:
    _seed(admin)
    token = _token(admin)
    statuses = {_page(admin, altered).status_code for altered in _altered(token)}
    assert statuses == {400}
    _refused(_page(admin, token[:5] + ("A" if token[5] != "A" else "B") + token[6:]), "signature")


def test_a_truncated_or_extended_token_is_refused(admin: Admin) -> None:
    _seed(admin)
    token = _token(admin)
    for cut in range(len(token)):
        _refused(_page(admin, token[:cut] if cut else ""))
    for extended in (token + "A", token + "=", token + ".", "." + token, token + token, token + " ", token * 40):
        _refused(_page(admin, extended))
    assert _page(admin, token).status_code == 200  # the real one still works


def test_a_token_of_another_query_says_so(admin: Admin) -> None:
    _seed(admin)
    token = _token(admin)
    _refused(_page(admin, token, top="3"), "another query")
    other = admin.api("GET", RECORDS, params={"top": "2", "continuation": token, "orderby": "ng_email desc"})
    _refused(other, "another query")


def test_a_token_of_another_emulator_process_is_refused(admin: Admin) -> None:
    _seed(admin)
    token = _token(admin)
    second = ServerProcess(
        "sandbox.netgenium",
        ["--db", ":memory:", "--api-key", API_KEY, "--api-key-header", API_KEY_HEADER],
        health_path="/api/v1/health",
    )
    with second, httpx.Client(base_url=second.base_url, timeout=30) as http:
        seeded = http.post(
            "/_admin/seed",
            json={"table": "ng_contacts", "records": [{"id": n, "ng_email": f"c{n}@x.example"} for n in range(1, 8)]},
        )
        assert seeded.status_code == 200
        answer = http.get(RECORDS, params={"top": "2", "continuation": token}, headers={API_KEY_HEADER: API_KEY})
        _refused(answer, "signature")
        own = http.get(RECORDS, params={"top": "2"}, headers={API_KEY_HEADER: API_KEY}).json()["continuation"]
        assert own != token  # same query, same offset, another process: another signature
