"""Delta queries: a folder's messages (`messages/delta`) and a calendar window (`calendarView/delta`).

A round covers the changes logged in a window of sequence numbers: from where the previous round
ended (nothing, for an initial round) to the moment the round started. Its `$skiptoken` and
`$deltatoken` carry that window and the options of the initial request (`$select`, `changeType`,
`$filter`, `$top`), so the round's items stay the same while the client pages through them, and
the next round starts where this one ended. What the real profile adds, each from Graph's
documentation (docs/GRAPH.md): items in no particular order across the round's pages, updated
items with only what changed, `$top` capping the round, pages that take time, and sync states that
expire so that a token answers 410 `SyncStateNotFound`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sandbox.graph.calendar_api import calendar_window, overlaps
from sandbox.graph.events import event_json
from sandbox.graph.mail_api import message_select
from sandbox.graph.odata import GraphError, bad_request, decode_token, encode_token, parse_instant, sync_state_gone
from sandbox.graph.protocol import OUTLOOK_MAX_PAGE, Request, Response, applied, max_page_size, page_size, top
from sandbox.graph.records import CHANGE_TYPES, CREATED, DELETED, UPDATED, WindowItem
from sandbox.graph.tenant import Tenant
from sandbox.graph.timezones import preferred_zone

MESSAGE_DELTA_DEFAULT_PAGE = 10
EVENT_DELTA_DEFAULT_PAGE = 10

_RECEIVED = re.compile(r"^\s*receivedDateTime\s+(?P<op>ge|gt)\s+(?P<value>\S+)\s*$", re.IGNORECASE)


def _received_filter(text: str | None) -> list[str] | None:
    """`receivedDateTime ge|gt {instant}`, the only `$filter` message delta supports, as [op, instant]."""
    if text is None:
        return None
    match = _RECEIVED.match(text)
    if match is None:
        raise bad_request(
            f"The $filter '{text}' is not supported on message delta: the only supported expressions are "
            "receivedDateTime ge {value} and receivedDateTime gt {value}.",
            "ErrorInvalidUrlQueryFilter",
        )
    value = match["value"].strip("'")
    return [match["op"].lower(), parse_instant(value, name="receivedDateTime").isoformat()]


def _passes(received: Any, wanted: list[str] | None) -> bool:
    if wanted is None:
        return True
    try:
        moment = parse_instant(received, name="receivedDateTime")
    except GraphError:
        return True
    bound = datetime.fromisoformat(wanted[1])
    return moment >= bound if wanted[0] == "ge" else moment > bound


def _token(em: Tenant, rq: Request, binding: str) -> tuple[dict[str, Any], bool] | None:
    """The state in a `$skiptoken` (True: the round goes on) or `$deltatoken` (False), or None."""
    for name, paging in (("$skiptoken", True), ("$deltatoken", False)):
        if name not in rq.query:
            continue
        raw = rq.query[name]
        state = decode_token(raw)
        if state.get("g") != em.store.sync_generation or raw in em.evicted_tokens:
            raise sync_state_gone()
        if state.get("b") != binding:
            raise bad_request("The token does not belong to this resource.", "BadRequest")
        if em.faults.sync_state_expires():
            # Outlook keeps sync states in a cache of limited size and drops the oldest.
            em.evicted_tokens.add(raw)
            em.stats.faults["syncStateExpired"] += 1
            raise sync_state_gone()
        return state, paging
    return None


def _round(em: Tenant, state: dict[str, Any], paging: bool) -> dict[str, Any]:
    """A new round from a delta token: the changes since the previous round ended."""
    if paging:
        return state
    nonce = em.randomness.stream("rounds").getrandbits(32)
    return {**state, "s": state["u"], "u": em.store.seq, "o": 0, "n": nonce}


def _ordered(em: Tenant, items: list[WindowItem], state: dict[str, Any]) -> list[WindowItem]:
    if em.profile.shuffle_delta:
        # "Don't assume a specific sequence of the responses returned from a delta query."
        items = list(items)
        em.randomness.derived("round", state["n"]).shuffle(items)
    return items


def _links(rq_base: str, path: str, state: dict[str, Any], offset: int, more: bool) -> dict[str, str]:
    if more:
        return {"@odata.nextLink": f"{rq_base}{path}?$skiptoken={encode_token({**state, 'o': offset})}"}
    return {"@odata.deltaLink": f"{rq_base}{path}?$deltatoken={encode_token({**state, 'o': 0})}"}


async def message_delta(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    folder = em.store.folder(user, rq.params["folder"])
    found = _token(em, rq, folder.id)
    if found is None:
        change_type = rq.query.get("changeType")
        if change_type is not None and change_type not in CHANGE_TYPES:
            raise bad_request(f"changeType '{change_type}' is not valid.")
        state: dict[str, Any] = {
            "g": em.store.sync_generation,
            "b": folder.id,
            "s": 0,
            "u": em.store.seq,
            "o": 0,
            "n": em.randomness.stream("rounds").getrandbits(32),
            "sel": message_select(rq),
            "ct": change_type,
            "f": _received_filter(rq.query.get("$filter")),
            "top": top(rq),
        }
    else:
        state = _round(em, *found)
    select, cap = state.get("sel"), state.get("top")
    if em.profile.top_caps_round:
        size = max_page_size(rq, MESSAGE_DELTA_DEFAULT_PAGE, OUTLOOK_MAX_PAGE)
    else:
        size = min(cap, OUTLOOK_MAX_PAGE) if cap else page_size(rq, MESSAGE_DELTA_DEFAULT_PAGE, OUTLOOK_MAX_PAGE)
    entries = []
    for item in _ordered(em, folder.log.window(state["s"], state["u"]), state):
        if state.get("ct") not in (None, item.kind):
            continue
        record = user.messages.get(item.item_id)
        if (
            item.kind != DELETED
            and record is not None
            and not _passes(record.data.get("receivedDateTime"), state.get("f"))
        ):
            continue
        entries.append(item)
    cut = False
    if cap and em.profile.top_caps_round and len(entries) > cap:
        # The round ends after `$top` items; the rest of the window is not reported (it is behind the delta link).
        entries, cut = entries[:cap], True
    offset = int(state.get("o", 0))
    page = entries[offset : offset + size]
    items = []
    for item in page:
        record = user.messages.get(item.item_id)
        if item.kind == DELETED:
            items.append(
                {"@odata.type": "#microsoft.graph.message", "id": item.item_id, "@removed": {"reason": "deleted"}}
            )
        elif record is None:
            continue  # deleted after the round began: the next round reports it
        elif item.kind == UPDATED and em.profile.partial_updates:
            items.append(
                {"@odata.type": "#microsoft.graph.message", **em.store.message_changes_json(record, item.props, select)}
            )
        else:
            items.append({"@odata.type": "#microsoft.graph.message", **em.store.message_json(record, select)})
    more = offset + size < len(entries) or (cut and bool(page))
    path = f"/users/{quote(user.id, safe='')}/mailFolders/{quote(folder.id, safe='')}/messages/delta"
    body: dict[str, Any] = {"@odata.context": f"{rq.base}/$metadata#Collection(message)", "value": items}
    body.update(_links(rq.base, path, state, offset + len(page), more))
    await em.page_time(len(items))
    return Response(200, body, applied(rq, size))


# "You cannot use $select" and "other OData query parameters that the delta function for calendarView
# doesn't support: $expand, $filter, $orderby, and $search" (event: delta).
_NOT_ON_EVENT_DELTA = ("$select", "$expand", "$filter", "$orderby", "$search")


async def event_delta(em: Tenant, rq: Request) -> Response:
    """A calendarView round: single instances, occurrences and exceptions, whole (never masters)."""
    user = em.store.user(rq.params["user"])
    size = page_size(rq, EVENT_DELTA_DEFAULT_PAGE, OUTLOOK_MAX_PAGE)
    refused = [name for name in _NOT_ON_EVENT_DELTA if name in rq.query]
    if refused:
        raise bad_request(
            f"The query option {refused[0]} is not supported by the delta function on calendarView.",
            "ErrorInvalidUrlQuery",
        )
    found = _token(em, rq, user.id)
    if found is None:
        start, end = calendar_window(rq)
        state: dict[str, Any] = {
            "g": em.store.sync_generation,
            "b": user.id,
            "s": 0,
            "u": em.store.seq,
            "o": 0,
            "n": em.randomness.stream("rounds").getrandbits(32),
            "ws": start.isoformat(),
            "we": end.isoformat(),
        }
    else:
        state = _round(em, *found)
    start, end = parse_instant(state["ws"]), parse_instant(state["we"])
    # The round's slots are the window's items, fixed when the round began (the change log up to
    # `u` never changes), and each page is a slice of them: what an item became since only decides
    # what its slot shows. Dropping slots of items deleted while the client pages would shift the
    # later ones under the offset and skip an item whose change no round would then report; Graph's
    # skipToken resumes a round where it stopped ("the next page of changes").
    slots = _ordered(em, user.calendar.window(state["s"], state["u"]), state)
    offset = int(state.get("o", 0))
    items = []
    zone_name = preferred_zone(rq.prefer)
    for item in slots[offset : offset + size]:
        record = user.events.get(item.item_id) if item.kind != DELETED else None
        if record is not None and not record.in_views:
            record = None  # a single instance that became a series master: its log says deleted
        if item.kind in (CREATED, UPDATED) and record is None:
            continue  # deleted after the round began: the next round reports it
        if record is not None and overlaps(record, start, end):
            items.append({"@odata.type": "#microsoft.graph.event", **event_json(record, None, None, zone_name)})
        elif state["s"]:  # gone, or moved out of the window
            items.append(
                {"@odata.type": "#microsoft.graph.event", "id": item.item_id, "@removed": {"reason": "deleted"}}
            )
    path = f"/users/{quote(user.id, safe='')}/calendarView/delta"
    body: dict[str, Any] = {"@odata.context": f"{rq.base}/$metadata#Collection(event)", "value": items}
    body.update(_links(rq.base, path, state, offset + size, offset + size < len(slots)))
    await em.page_time(len(items))
    return Response(200, body, applied(rq, size))
