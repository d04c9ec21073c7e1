"""`/v1.0` handlers for calendars: `calendarView`, and events listed, created, read, changed, deleted."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from sandbox.graph import events
from sandbox.graph.delta import calendar_window, overlaps
from sandbox.graph.odata import bad_request, parse_select
from sandbox.graph.protocol import (
    OUTLOOK_MAX_PAGE,
    Request,
    Response,
    applied,
    context_select,
    entity,
    int_query,
    json_object,
    page_size,
)
from sandbox.graph.records import EVENT_PROPERTIES
from sandbox.graph.tenant import Tenant

_EXPAND_EXT = re.compile(r"^singleValueExtendedProperties(?:\(\$filter=(?P<filter>.*)\))?$", re.IGNORECASE)
_ID_EQ = re.compile(r"id\s+eq\s+'(?P<id>(?:[^']|'')*)'", re.IGNORECASE)
_FILTER_EXT = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)/id\s+eq\s+'(?P<id>(?:[^']|'')*)'"
    r"\s+and\s+(?P=v)/value\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*\)$",
    re.IGNORECASE,
)


def _expand_ids(request: Request) -> list[str] | None:
    expand = request.query.get("$expand")
    if not expand:
        return None
    match = _EXPAND_EXT.match(expand.strip())
    if match is None:
        raise bad_request(f"$expand '{expand}' is not supported by the emulator.")
    if match["filter"] is None:
        return []
    ids = [m["id"].replace("''", "'") for m in _ID_EQ.finditer(match["filter"])]
    if not ids:
        raise bad_request("The emulator supports $filter=id eq '...' inside singleValueExtendedProperties.")
    return ids


def _event_select(rq: Request) -> list[str] | None:
    return parse_select(rq.query.get("$select"), ("id", *EVENT_PROPERTIES), "event")


async def calendar_view(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    start, end = calendar_window(rq)
    select = _event_select(rq)
    size = page_size(rq, 10, OUTLOOK_MAX_PAGE)
    skip = int_query(rq, "$skip")
    records = sorted((r for r in user.events.values() if overlaps(r, start, end)), key=lambda r: r.start)
    page = records[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": f"{rq.base}/$metadata#users('{quote(user.id)}')/calendarView{context_select(select)}",
        "value": [events.event_json(r, select, None) for r in page],
    }
    if skip + size < len(records):
        body["@odata.nextLink"] = (
            f"{rq.base}{rq.path}?startDateTime={quote(rq.query['startDateTime'])}"
            f"&endDateTime={quote(rq.query['endDateTime'])}&$top={size}&$skip={skip + size}"
        )
    await em.page_time(len(page))
    return Response(200, body, applied(rq, size))


async def list_events(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = _event_select(rq)
    expand = _expand_ids(rq)
    size = page_size(rq, 10, OUTLOOK_MAX_PAGE)
    skip = int_query(rq, "$skip")
    records = sorted(user.events.values(), key=lambda r: str(r.data["createdDateTime"]))
    filter_text = rq.query.get("$filter")
    if filter_text:
        match = _FILTER_EXT.match(filter_text.strip())
        if match is None:
            raise bad_request(f"$filter '{filter_text}' is not supported by the emulator.")
        wanted_id, wanted_value = match["id"].replace("''", "'").lower(), match["value"].replace("''", "'")
        records = [
            r for r in records if any(e["id"].lower() == wanted_id and e["value"] == wanted_value for e in r.extended)
        ]
    page = records[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": f"{rq.base}/$metadata#users('{quote(user.id)}')/events{context_select(select)}",
        "value": [events.event_json(r, select, expand) for r in page],
    }
    if skip + size < len(records):
        body["@odata.nextLink"] = f"{rq.base}{rq.path}?$top={size}&$skip={skip + size}"
    await em.page_time(len(page))
    return Response(200, body, applied(rq, size))


async def create_event(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record, _created = events.create_event(em.store, user, json_object(rq))
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events/$entity"
    return Response(201, entity(context, events.event_json(record, None, None)), applied(rq))


async def get_event(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = _event_select(rq)
    record = events.event(user, rq.params["event"])
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events{context_select(select)}/$entity"
    return Response(200, entity(context, events.event_json(record, select, _expand_ids(rq))), applied(rq))


async def update_event(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record = events.update_event(em.store, user, rq.params["event"], json_object(rq))
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events/$entity"
    return Response(200, entity(context, events.event_json(record, None, None)), applied(rq))


async def delete_event(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    events.delete_event(em.store, user, rq.params["event"])
    return Response(204)
