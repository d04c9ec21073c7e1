"""`/v1.0` handlers for calendars: `calendarView`, events listed, created, read, changed, deleted, `instances`.

`/events` lists single instances and series masters; `calendarView` and `instances` list what
happens in a window: single instances, occurrences and exceptions, never a master. Every answer
gives `start`/`end` in the zone of `Prefer: outlook.timezone` (UTC without it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.graph import events, extprops
from sandbox.graph.odata import bad_request, parse_instant, parse_select
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
from sandbox.graph.records import EVENT_PROPERTIES, EventRecord
from sandbox.graph.tenant import Tenant
from sandbox.graph.timezones import preferred_zone

EVENT_SELECTABLE = ("id", *EVENT_PROPERTIES, "originalStart")


def overlaps(record: EventRecord, start: datetime, end: datetime) -> bool:
    return bool(record.start < end and (record.end > start or (record.start == record.end >= start)))


def calendar_window(rq: Request) -> tuple[datetime, datetime]:
    """startDateTime and endDateTime, both required; without an offset they are UTC."""
    if "startDateTime" not in rq.query or "endDateTime" not in rq.query:
        raise bad_request(
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
            "ErrorInvalidParameter",
        )
    start = parse_instant(rq.query["startDateTime"], name="startDateTime")
    end = parse_instant(rq.query["endDateTime"], name="endDateTime")
    if end <= start:
        raise bad_request("endDateTime must be after startDateTime.", "ErrorInvalidParameter")
    return start, end


def _select(rq: Request) -> list[str] | None:
    return parse_select(rq.query.get("$select"), EVENT_SELECTABLE, "event")


def _headers(rq: Request, size: int | None = None) -> dict[str, str]:
    headers = applied(rq, size)
    zone_name = preferred_zone(rq.prefer)
    if zone_name:
        extra = f'outlook.timezone="{zone_name}"'
        headers["Preference-Applied"] = f"{headers['Preference-Applied']}, {extra}" if headers else extra
    return headers


async def _page(em: Tenant, rq: Request, records: Iterable[EventRecord], context: str) -> Response:
    """One page of a list, with `$select`, `$expand`, `$filter` on extended properties, `$top`/`$skip`."""
    select, expand = _select(rq), extprops.expand_ids(rq.query.get("$expand"))
    size = page_size(rq, 10, OUTLOOK_MAX_PAGE)
    skip = int_query(rq, "$skip")
    test = extprops.predicate(rq.query.get("$filter"))
    found = [r for r in records if test is None or test(r.extended)]
    page = found[skip : skip + size]
    zone_name = preferred_zone(rq.prefer)
    body: dict[str, Any] = {
        "@odata.context": f"{rq.base}/$metadata#{context}{context_select(select)}",
        "value": [events.event_json(r, select, expand, zone_name) for r in page],
    }
    if skip + size < len(found):
        query = {k: v for k, v in rq.query.items() if k not in ("$skip", "$top")}
        query.update({"$top": str(size), "$skip": str(skip + size)})
        body["@odata.nextLink"] = f"{rq.base}{rq.path}?{urlencode(query, quote_via=quote)}"
    await em.page_time(len(page))
    return Response(200, body, _headers(rq, size))


async def calendar_view(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    start, end = calendar_window(rq)
    records = sorted(
        (r for r in user.events.values() if r.in_views and overlaps(r, start, end)), key=lambda r: r.start
    )
    return await _page(em, rq, records, f"users('{quote(user.id)}')/calendarView")


async def list_events(em: Tenant, rq: Request) -> Response:
    """Single instances and series masters ("The list contains single instance meetings and series masters")."""
    user = em.store.user(rq.params["user"])
    records = sorted(
        (r for r in user.events.values() if r.master_id is None), key=lambda r: str(r.data["createdDateTime"])
    )
    return await _page(em, rq, records, f"users('{quote(user.id)}')/events")


async def list_instances(em: Tenant, rq: Request) -> Response:
    """The occurrences and exceptions of a series master in a window (nothing for any other event)."""
    user = em.store.user(rq.params["user"])
    master = events.event(user, rq.params["event"])
    start, end = calendar_window(rq)
    children = [user.events[c] for c in master.children.values() if c in user.events]
    records = sorted((r for r in children if overlaps(r, start, end)), key=lambda r: r.start)
    context = f"users('{quote(user.id)}')/events('{quote(str(master.data['id']))}')/instances"
    return await _page(em, rq, records, context)


async def create_event(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record, _created = events.create_event(em.store, user, json_object(rq))
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events/$entity"
    body = events.event_json(record, None, None, preferred_zone(rq.prefer))
    return Response(201, entity(context, body), _headers(rq))


async def get_event(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = _select(rq)
    record = events.event(user, rq.params["event"])
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events{context_select(select)}/$entity"
    expand = extprops.expand_ids(rq.query.get("$expand"))
    body = events.event_json(record, select, expand, preferred_zone(rq.prefer))
    return Response(200, entity(context, body), _headers(rq))


async def update_event(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record = events.update_event(em.store, user, rq.params["event"], json_object(rq))
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events/$entity"
    body = events.event_json(record, None, None, preferred_zone(rq.prefer))
    return Response(200, entity(context, body), _headers(rq))


async def delete_event(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    events.delete_event(em.store, user, rq.params["event"])
    return Response(204)
