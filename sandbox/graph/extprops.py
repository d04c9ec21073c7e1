"""Single-value extended properties on events: kept, expanded with `$expand`, matched with `$filter`.

Graph's page "Get singleValueLegacyExtendedProperty": an id is `{type} {guid} Name {name}` (or
`{type} 0x{tag}`); "Filtering the string name (Name) in the id of an extended property is
case-sensitive. Filtering the value property of an extended property is case-insensitive." The
type, the GUID and the keyword are compared case-insensitively here; the name is not. A string
value is matched with `eq`, `ne`, `startswith` or `contains`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.graph.odata import bad_request

_EXPAND = re.compile(r"^singleValueExtendedProperties(?:\(\s*\$filter\s*=\s*(?P<filter>.*)\))?$", re.IGNORECASE)
_ID_EQ = re.compile(r"id\s+eq\s+'(?P<id>(?:[^']|'')*)'", re.IGNORECASE)
_QUOTED = r"'(?P<value>(?:[^']|'')*)'"
_FILTER = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)/id\s+eq\s+'(?P<id>(?:[^']|'')*)'\s+and\s+"
    r"(?:(?P=v)/value\s+(?P<op>eq|ne)\s+" + _QUOTED + r"|(?P<fn>startswith|contains)\(\s*(?P=v)/value\s*,\s*"
    + _QUOTED.replace("value", "fvalue") + r"\s*\))\s*\)$",
    re.IGNORECASE,
)


def key(prop_id: str) -> tuple[str, ...]:
    """What makes two property ids the same property."""
    parts = prop_id.split()
    if len(parts) >= 4 and parts[2].lower() == "name":
        return (parts[0].lower(), parts[1].strip("{}").lower(), "name", " ".join(parts[3:]))
    if len(parts) >= 4 and parts[2].lower() == "id":
        return (parts[0].lower(), parts[1].strip("{}").lower(), "id", parts[3].lower())
    return tuple(part.lower() for part in parts)


def parse(value: Any) -> list[dict[str, str]]:
    """`singleValueExtendedProperties` of a create or update body."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("singleValueExtendedProperties must be a list.")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or len(item["id"].split()) < 2:
            raise bad_request("Each singleValueExtendedProperty needs an id ('{type} {guid} Name {name}') and a value.")
        out.append({"id": item["id"], "value": "" if item.get("value") is None else str(item["value"])})
    return out


def merge(current: list[dict[str, str]], changes: list[dict[str, str]]) -> list[dict[str, str]]:
    out = list(current)
    for item in changes:
        out = [e for e in out if key(e["id"]) != key(item["id"])]
        out.append(item)
    return out


def expand_ids(expand: str | None) -> list[str] | None:
    """`$expand=singleValueExtendedProperties($filter=id eq '...')`: the ids ([] for all), or None."""
    if not expand:
        return None
    match = _EXPAND.match(expand.strip())
    if match is None:
        raise bad_request(f"$expand '{expand}' is not supported by the emulator.")
    if match["filter"] is None:
        return []
    ids = [m["id"].replace("''", "'") for m in _ID_EQ.finditer(match["filter"])]
    if not ids:
        raise bad_request("The emulator supports $filter=id eq '...' inside singleValueExtendedProperties.")
    return ids


def expanded(props: list[dict[str, str]], ids: list[str]) -> list[dict[str, str]]:
    wanted = {key(item) for item in ids}
    return [dict(item) for item in props if not wanted or key(item["id"]) in wanted]


def predicate(text: str | None) -> Callable[[list[dict[str, str]]], bool] | None:
    """`$filter=singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')` as a test."""
    if not text:
        return None
    match = _FILTER.match(text.strip())
    if match is None:
        raise bad_request(f"$filter '{text}' is not supported by the emulator.", "ErrorInvalidUrlQueryFilter")
    wanted = key(match["id"].replace("''", "'"))
    op = (match["op"] or match["fn"]).lower()
    value = (match["value"] if match["op"] else match["fvalue"]).replace("''", "'").lower()

    def test(props: list[dict[str, str]]) -> bool:
        for item in props:
            if key(item["id"]) != wanted:
                continue
            have = item["value"].lower()
            if (
                (op == "eq" and have == value)
                or (op == "ne" and have != value)
                or (op == "startswith" and have.startswith(value))
                or (op == "contains" and value in have)
            ):
                return True
        return False

    return test
