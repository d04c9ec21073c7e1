"""What a request cannot do to the database behind the bridge, on SQLite and on Firebird.

Each attempt gets its contract error and leaves the database as it was, read straight from the
database (not through the bridge): a table or column outside the schema map (even one the
database has), SQL fragments in filters, names and values, text over a column's length (in
UTF-16 code units, stricter than Firebird's own count), a wrong or missing key, bodies and files
over the limits.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bridge.conftest import HEADER, KEY, MAX_BODY, MAX_FILE, RunningBridge

RECORDS = "/api/v1/tables/ng_users/records"
INJECTIONS = [
    "ng_email eq 'x' or 1=1 --",
    "ng_email eq 'x'; DELETE FROM ng_users",
    "ng_email eq 'x' -- comment",
    "ng_email eq 'a' union select ng_password from ng_users",
    "ng_email eq 'a' and (select 1) eq 1",
    "id eq 1; DROP TABLE ng_users",
    "id eq '1 or 1=1'",
    "ng_email eq x",
    "ng_email like '%'",
    "ng_email eq 'a' /* */",
]


@pytest.fixture
def users(bridge: RunningBridge) -> Iterator[list[tuple[object, ...]]]:
    """Two users, and the database's rows of every table the tests touch, to compare after."""
    created = [
        bridge.api("POST", RECORDS, json={"ng_email": f"u{n}@firma.example", "ng_name": f"User {n}"}).json()["id"]
        for n in (1, 2)
    ]
    before = bridge.rows("ng_users")
    yield before
    assert bridge.rows("ng_users") == before, "the database changed"
    assert bridge.rows("ng_secrets") == [(1, "top secret")]
    for record in created:
        bridge.api("DELETE", f"{RECORDS}/{record}")


def _error(answer: object, status: int, code: str) -> None:
    assert answer.status_code == status, f"{answer.status_code}: {answer.text[:300]}"  # type: ignore[attr-defined]
    assert answer.json()["error"]["code"] == code, answer.text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/tables/ng_secrets/records", 400, "unknown_table"),
        ("GET", "/api/v1/tables/ng_secrets/records/1", 400, "unknown_table"),
        ("GET", "/api/v1/tables/ng_secrets", 404, "not_found"),
        ("DELETE", "/api/v1/tables/ng_secrets/records/1", 400, "unknown_table"),
        ("PATCH", "/api/v1/tables/ng_secrets/records/1", 400, "unknown_table"),
        ("GET", "/api/v1/tables/rdb$relations/records", 400, "unknown_table"),
        ("GET", "/api/v1/tables/sqlite_master/records", 400, "unknown_table"),
        ("GET", "/api/v1/tables/NG_USERS;--/records", 400, "unknown_table"),
    ],
)
def test_a_table_outside_the_map_is_not_there(
    bridge: RunningBridge, users: list[tuple[object, ...]], method: str, path: str, status: int, code: str
) -> None:
    kwargs = {"json": {"ng_value": "changed"}} if method == "PATCH" else {}
    _error(bridge.api(method, path, **kwargs), status, code)


def test_a_column_outside_the_map_is_not_there(bridge: RunningBridge, users: list[tuple[object, ...]]) -> None:
    described = bridge.api("GET", "/api/v1/tables/ng_users").json()
    assert "ng_password" not in {c["name"] for c in described["columns"]}
    assert {c["name"] for c in described["columns"]} == {
        "id",
        "pid",
        "pform",
        "userid",
        "system",
        "ng_email",
        "ng_name",
    }
    _error(bridge.api("GET", RECORDS, params={"columns": "ng_password"}), 400, "unknown_column")
    _error(bridge.api("GET", RECORDS, params={"filter": "ng_password eq 'x'"}), 400, "unknown_column")
    _error(bridge.api("GET", RECORDS, params={"orderby": "ng_password"}), 400, "unknown_column")
    _error(bridge.api("POST", RECORDS, json={"ng_email": "x@y.example", "ng_password": "p"}), 400, "unknown_column")
    record = users[0][0]
    _error(bridge.api("PATCH", f"{RECORDS}/{record}", json={"ng_password": "p"}), 400, "unknown_column")
    assert "ng_password" not in bridge.api("GET", f"{RECORDS}/{record}").json()


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_in_a_filter_is_refused(bridge: RunningBridge, users: list[tuple[object, ...]], text: str) -> None:
    answer = bridge.api("GET", RECORDS, params={"filter": text})
    assert answer.status_code == 400 and answer.json()["error"]["code"] in ("bad_filter", "unknown_column"), answer.text


def test_sql_in_a_value_is_only_a_value(bridge: RunningBridge, users: list[tuple[object, ...]]) -> None:
    hostile = "x' or 1=1; DELETE FROM ng_users; --"
    found = bridge.api("GET", RECORDS, params={"filter": f"ng_email eq '{hostile.replace(chr(39), chr(39) * 2)}'"})
    assert found.status_code == 200 and found.json()["records"] == []
    _error(bridge.api("GET", RECORDS, params={"orderby": "ng_email desc; DELETE FROM ng_users"}), 400, "bad_request")
    _error(bridge.api("GET", RECORDS, params={"orderby": "ng_email) --"}), 400, "bad_request")
    _error(bridge.api("GET", RECORDS, params={"orderby": "(ng_email)"}), 400, "unknown_column")


def test_text_over_the_column_length_is_refused_not_cut(bridge: RunningBridge, users: list[tuple[object, ...]]) -> None:
    record = users[0][0]
    for value in ("x" * 201, "\U0001f600" * 101):  # 101 emoji: 101 characters to Firebird, 202 UTF-16 units
        _error(
            bridge.api("POST", RECORDS, json={"ng_email": "long@firma.example", "ng_name": value}),
            400,
            "value_too_long",
        )
        _error(bridge.api("PATCH", f"{RECORDS}/{record}", json={"ng_name": value}), 400, "value_too_long")
    fits = "\U0001f600" * 100
    assert bridge.api("GET", f"{RECORDS}/{record}").json()["ng_name"] == "User 1"
    created = bridge.api("POST", RECORDS, json={"ng_email": "fits@firma.example", "ng_name": fits})
    assert created.status_code == 201
    assert bridge.api("GET", f"{RECORDS}/{created.json()['id']}").json()["ng_name"] == fits
    assert bridge.api("DELETE", f"{RECORDS}/{created.json()['id']}").status_code == 204


@pytest.mark.parametrize(
    "headers", [{}, {HEADER: ""}, {HEADER: "wrong"}, {HEADER: KEY[:-1]}, {HEADER: KEY + "x"}, {"X-Other": KEY}]
)
def test_a_wrong_or_missing_key_is_401_and_changes_nothing(
    bridge: RunningBridge, users: list[tuple[object, ...]], headers: dict[str, str]
) -> None:
    record = users[0][0]
    requests = [
        ("GET", RECORDS, {}),
        ("GET", "/api/v1/tables/ng_users", {}),
        ("POST", RECORDS, {"json": {"ng_email": "intruder@x.example"}}),
        ("PATCH", f"{RECORDS}/{record}", {"json": {"ng_name": "changed"}}),
        ("DELETE", f"{RECORDS}/{record}", {}),
    ]
    for method, path, kwargs in requests:
        answer = bridge.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        _error(answer, 401, "unauthorized")
        assert KEY not in answer.text


def test_bodies_over_the_limits_are_413_and_change_nothing(
    bridge: RunningBridge, users: list[tuple[object, ...]]
) -> None:
    record = users[0][0]
    big = {"ng_email": "big@firma.example", "ng_name": "n", "pad": "x" * MAX_BODY}
    _error(bridge.api("POST", RECORDS, json=big), 413, "too_large")
    _error(bridge.api("PATCH", f"{RECORDS}/{record}", json=big), 413, "too_large")
    activity = bridge.api("POST", "/api/v1/tables/ng_activities/records", json={"ng_kind": "email"}).json()["id"]
    files = f"/api/v1/tables/ng_activities/records/{activity}/files"
    params = {"column": "ng_attachments", "filename": "big.bin"}
    _error(bridge.api("POST", files, params=params, content=b"x" * (MAX_FILE + 1)), 413, "too_large")
    _error(bridge.api("POST", files, params=params, content=b"x" * (MAX_FILE + 2 * 1024 * 1024)), 413, "too_large")
    listed = bridge.api("GET", f"/api/v1/tables/ng_activities/records/{activity}").json()["ng_attachments"]
    assert listed == []
    assert bridge.api("DELETE", f"/api/v1/tables/ng_activities/records/{activity}").status_code == 204
