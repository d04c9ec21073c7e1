"""The emulator against its own contract: requests generated from openapi.yaml (hypothesis).

For every operation of the contract, hypothesis draws path, query and body values, valid ones
(known tables and columns, filters in the grammar, typed values) mixed with invalid ones (unknown
names, broken filters, wrong types, out-of-range numbers, wrong keys). Every answer must be one
the operation documents (no 500, no undocumented status) with a body that matches the documented
schema, and every error must be the contract's error body.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.netgenium import default_schema_map
from crm_core.netgenium.filters import literal
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER, Admin, load_openapi, schema_errors

SPEC = load_openapi()
TABLES = default_schema_map().tables()
ALL_COLUMNS = sorted({c for cols in TABLES.values() for c in cols} | {"id", "pid", "pform", "userid", "system"})
OPERATIONS = [
    (path, method, operation)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "patch", "delete")
]

T = TypeVar("T")


def mostly(good: st.SearchStrategy[T], bad: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`good` four times in five: invalid input is tested, but valid requests must get far too."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda n: bad if n == 4 else good)


bad_names = st.sampled_from(["ng_nope", "ID", " ng_email", "x;drop", "", "ng_email desc"])
bad_tables = st.sampled_from(["ng_nope", "users", "ng_contacts;--", "NG_USERS", "sqlite_master"])
tables = mostly(st.sampled_from(sorted(TABLES)), bad_tables)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["2024-01-02T03:04:05Z", "2024-01-02", "not a date", "'", "' or 1=1 --", "x" * 300])
)
TYPED: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(min_value=-5, max_value=10) | st.none(),
    "text": st.text(max_size=30) | st.none(),
    "memo": st.text(max_size=60) | st.none(),
    "datetime": st.datetimes().map(lambda d: d.isoformat()) | st.none(),
    "bool": st.booleans(),
    "decimal": st.floats(allow_nan=False, allow_infinity=False, width=32),
    "files": st.none(),
}


def column_names(table: str) -> st.SearchStrategy[str]:
    known = [*sorted(TABLES.get(table, {})), "id", "pid", "pform", "userid", "system"]
    return mostly(st.sampled_from(known), bad_names)


def typed_value(table: str, name: str) -> st.SearchStrategy[Any]:
    column = TABLES.get(table, {}).get(name)
    good = TYPED[column.type] if column is not None else TYPED["int"]
    return mostly(good, scalars)


@st.composite
def bodies(draw: st.DrawFn, table: str) -> Any:
    if not draw(mostly(st.just(True), st.just(False))):
        return draw(st.lists(scalars, max_size=2) | scalars)
    keys = draw(st.lists(column_names(table), max_size=4, unique=True))
    return {key: draw(typed_value(table, key)) for key in keys}


def literals_for(table: str, name: str) -> st.SearchStrategy[str]:
    return typed_value(table, name).filter(lambda v: not isinstance(v, float)).map(literal)


@st.composite
def filters(draw: st.DrawFn, table: str) -> str:
    if not draw(mostly(st.just(True), st.just(False))):
        return draw(st.text(max_size=60))
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        name = draw(column_names(table))
        if draw(st.booleans()):
            op = draw(mostly(st.sampled_from(["eq", "ge", "le", "EQ"]), st.sampled_from(["gt", "or", "="])))
            parts.append(f"{name} {op} {draw(literals_for(table, name))}")
        else:
            values = draw(st.lists(literals_for(table, name), min_size=1, max_size=4))
            parts.append(f"{name} in ({','.join(values)})")
    joiner: str = draw(mostly(st.just(" and "), st.sampled_from([" or ", " AND ", ";", " and and "])))
    return joiner.join(parts)


no, yes = st.just(False), st.just(True)


def query_value(name: str, table: str) -> st.SearchStrategy[str]:
    """A value for the query parameter `name` of a request to `table`."""
    if name == "filter":
        return filters(table)
    if name in ("columns", "column"):
        if name == "column":
            files = sorted(c for c, d in TABLES.get(table, {}).items() if d.type == "files")
            return mostly(st.sampled_from(files), column_names(table)) if files else column_names(table)
        return st.lists(column_names(table), min_size=1, max_size=4).map(",".join)
    if name == "orderby":
        terms = st.tuples(column_names(table), mostly(st.sampled_from(["", " asc", " desc"]), st.just(" up")))
        return st.lists(terms.map("".join), max_size=3).map(",".join)
    if name == "top":
        return mostly(
            st.integers(min_value=1, max_value=1000).map(str),
            st.integers(min_value=-2, max_value=1200).map(str) | st.sampled_from(["x", ""]),
        )
    if name == "continuation":
        return st.text(max_size=30) | st.sampled_from(["eyJvIjogMSwgImgiOiAiMCJ9"])
    if name == "filename":
        return mostly(
            st.sampled_from(["a.txt", "Offer 1.pdf", "b"]),
            st.text(max_size=20) | st.sampled_from(["../x", "a/b", " x", "x" * 300]),
        )
    raise AssertionError(f"no strategy for the query parameter {name}")


ids = mostly(
    st.integers(min_value=1, max_value=6).map(str),
    st.integers(min_value=-3, max_value=0).map(str) | st.sampled_from(["abc", "1.5", "99999999999999999999"]),
)


def _parameters(path: str, operation: dict[str, Any]) -> list[dict[str, Any]]:
    params = list(SPEC["paths"][path].get("parameters", [])) + list(operation.get("parameters", []))
    resolved = []
    for param in params:
        if "$ref" in param:
            param = SPEC["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        resolved.append(param)
    return resolved


@st.composite
def requests(draw: st.DrawFn, path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    url = path
    query: dict[str, str] = {}
    table = draw(tables)
    for param in _parameters(path, operation):
        name = param["name"]
        if param["in"] == "path":
            value = table if name == "table" else draw(ids)
            url = url.replace("{" + name + "}", quote(value, safe=""))
        elif param.get("required") or draw(st.booleans() if name != "continuation" else mostly(no, yes)):
            query[name] = draw(query_value(name, table))
    request: dict[str, Any] = {"method": method.upper(), "url": url, "params": query}
    body = operation.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        request["json"] = draw(bodies(table))
    elif "application/octet-stream" in body:
        request["content"] = draw(st.binary(max_size=64))
    if operation.get("security", SPEC.get("security")):
        request["headers"] = {API_KEY_HEADER: draw(mostly(st.just(API_KEY), st.sampled_from(["wrong", ""])))}
    return request


def _check_answer(operation: dict[str, Any], answer: Any) -> None:
    documented = operation["responses"]
    status = str(answer.status_code)
    assert status in documented, f"{status} is not documented: {answer.text[:300]}"
    response = documented[status]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content", {})
    if "application/json" in content:
        errors = schema_errors(answer.json(), content["application/json"]["schema"], SPEC)
        assert not errors, errors
    elif not content:
        assert answer.content == b""
    if status in ("429", "503"):
        assert "Retry-After" in answer.headers or status == "503"


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_generated_requests_get_documented_answers(
    admin: Admin, path: str, method: str, operation: dict[str, Any]
) -> None:
    admin.seed("ng_contacts", [{"id": n, "ng_email": f"c{n}@x.example", "ng_company_id": n} for n in range(1, 6)])
    admin.seed("ng_activities", [{"id": 1, "ng_kind": "email", "ng_message_id": "<a@b>"}])

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=requests(path, method, operation))
    def run(request: dict[str, Any]) -> None:
        answer = admin.http.request(**request)
        _check_answer(operation, answer)

    run()
    assert sum(admin.counts().values()) > 0


def test_faults_answer_as_documented(admin: Admin) -> None:
    throttled = SPEC["paths"]["/api/v1/tables/{table}/records"]["get"]
    admin.faults(throttle_next=1, fail_next=1, retry_after="date:5")
    for expected in (429, 503):
        answer = admin.api("GET", "/api/v1/tables/ng_contacts/records")
        assert answer.status_code == expected
        assert answer.headers["Retry-After"].endswith("GMT")
        _check_answer(throttled, answer)
    assert admin.api("GET", "/api/v1/tables/ng_contacts/records").status_code == 200
