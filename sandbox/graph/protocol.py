"""A `/v1.0` request and its answer apart from aiohttp, and the request options every handler reads.

A `$batch` item goes through the same pipeline as a request of its own, so handlers see only
`Request` and return `Response`; `Prefer`, `$top`, `$skip` and the `Preference-Applied` header are
read and written the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.graph.odata import bad_request

OUTLOOK_MAX_PAGE = 1000


@dataclass
class Request:
    """A `/v1.0` request apart from aiohttp, so that a `$batch` item goes through the same pipeline."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: Any
    base: str
    params: dict[str, str] = field(default_factory=dict)
    prefer: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    """An answer before it is JSON, so that `$batch` can embed it in its own body."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def parse_prefer(headers: Mapping[str, str]) -> dict[str, str]:
    """`Prefer` preferences by lower-case name; a `$batch` item carries its own."""
    out: dict[str, str] = {}
    for value in [v for k, v in headers.items() if k.lower() == "prefer"]:
        for part in value.split(","):
            name, _, setting = part.strip().partition("=")
            if name:
                out[name.strip().lower()] = setting.strip()
    return out


def max_page_size(request: Request, default: int, maximum: int) -> int:
    """`Prefer: odata.maxpagesize`, capped at `maximum`; `default` without it."""
    wanted = request.prefer.get("odata.maxpagesize")
    if not wanted:
        return default
    if not wanted.isdigit() or int(wanted) < 1:
        raise bad_request("odata.maxpagesize must be a positive integer.")
    return min(int(wanted), maximum)


def top(request: Request) -> int | None:
    value = request.query.get("$top")
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise bad_request(f"Invalid value '{value}' for $top.", "BadRequest")
    return int(value)


def page_size(request: Request, default: int, maximum: int) -> int:
    """A list's page: `Prefer: odata.maxpagesize`, then `$top`, capped at `maximum`."""
    size = max_page_size(request, default, maximum)
    wanted = top(request)
    return min(wanted, maximum) if wanted is not None else size


def int_query(request: Request, name: str) -> int:
    value = request.query.get(name, "0")
    if not value.isdigit():
        raise bad_request(f"Invalid value '{value}' for {name}.")
    return int(value)


def applied(request: Request, size: int | None = None) -> dict[str, str]:
    """`Preference-Applied` for the preferences the answer honoured."""
    out = []
    if size is not None and "odata.maxpagesize" in request.prefer:
        out.append(f"odata.maxpagesize={size}")
    if request.prefer.get("idtype", "").strip('"').lower() == "immutableid":
        out.append('IdType="ImmutableId"')
    return {"Preference-Applied": ", ".join(out)} if out else {}


def entity(context: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"@odata.context": context, **body}


def context_select(select: list[str] | None) -> str:
    return f"({','.join(select)})" if select else ""


def json_object(request: Request) -> dict[str, Any]:
    if not isinstance(request.body, dict):
        raise bad_request("Empty Payload. JSON content expected.", "BadRequest")
    return request.body
