"""`/v1.0` handlers for the directory and for reading mail: users, messages, attachments."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.graph.odata import (
    GraphError,
    apply_select,
    bad_request,
    decode_token,
    encode_token,
    not_found,
    parse_instant,
    parse_select,
)
from sandbox.graph.protocol import (
    OUTLOOK_MAX_PAGE,
    Request,
    Response,
    applied,
    context_select,
    entity,
    int_query,
    page_size,
)
from sandbox.graph.records import (
    ATTACHMENT_PROPERTIES,
    MESSAGE_SELECTABLE,
    USER_DEFAULT_PROPERTIES,
    USER_SELECTABLE,
    User,
)
from sandbox.graph.tenant import Tenant


def _user_json(user: User, select: list[str] | None) -> dict[str, Any]:
    full = user.representation()
    return apply_select(full, select, ()) if select else {k: full[k] for k in USER_DEFAULT_PROPERTIES}


async def list_users(em: Tenant, rq: Request) -> Response:
    select = parse_select(rq.query.get("$select"), USER_SELECTABLE, "user")
    size = page_size(rq, 100, 999)
    skip = int(decode_token(rq.query["$skiptoken"]).get("o", 0)) if "$skiptoken" in rq.query else 0
    users = sorted(em.store.users.values(), key=lambda u: u.created_seq)
    page = users[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": f"{rq.base}/$metadata#users{context_select(select)}",
        "value": [_user_json(user, select) for user in page],
    }
    if skip + size < len(users):
        token = encode_token({"o": skip + size})
        query = f"$skiptoken={token}" + (f"&$select={','.join(select)}" if select else "")
        body["@odata.nextLink"] = f"{rq.base}/users?{query}&$top={size}"
    await em.page_time(len(page))
    return Response(200, body, applied(rq, size))


async def get_user(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = parse_select(rq.query.get("$select"), USER_SELECTABLE, "user")
    return Response(200, entity(f"{rq.base}/$metadata#users{context_select(select)}/$entity", _user_json(user, select)))


def message_select(rq: Request) -> list[str] | None:
    return parse_select(rq.query.get("$select"), MESSAGE_SELECTABLE, "message")


async def get_message(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = message_select(rq)
    record = em.store.message(user, rq.params["message"])
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/messages{context_select(select)}/$entity"
    return Response(200, entity(context, em.store.message_json(record, select)), applied(rq))


_COMPARISON = re.compile(r"^\s*receivedDateTime\s+(?P<op>ge|gt|le|lt|eq)\s+(?P<value>\S+)\s*$", re.IGNORECASE)
_ORDER = re.compile(r"^\s*(?P<name>[A-Za-z/]+)(?:\s+(?P<direction>asc|desc))?\s*$", re.IGNORECASE)


def _received_range(text: str | None) -> list[tuple[str, datetime]]:
    """`$filter` on a message list: comparisons of `receivedDateTime` joined by `and`, the one
    form the emulator reads (Graph reads more; the product sends only this)."""
    if text is None or not text.strip():
        return []
    out = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _COMPARISON.match(part)
        if match is None:
            raise bad_request(
                f"The $filter '{text}' is not supported by the emulator: it reads receivedDateTime "
                "comparisons (ge, gt, le, lt, eq) joined by 'and'.",
                "ErrorInvalidUrlQueryFilter",
            )
        moment = parse_instant(match["value"].strip("'"), name="receivedDateTime")
        out.append((match["op"].lower(), moment))
    return out


def _in_range(received: Any, bounds: list[tuple[str, datetime]]) -> bool:
    if not bounds:
        return True
    try:
        moment = parse_instant(received, name="receivedDateTime")
    except GraphError:
        return False
    checks = {
        "ge": lambda b: moment >= b,
        "gt": lambda b: moment > b,
        "le": lambda b: moment <= b,
        "lt": lambda b: moment < b,
        "eq": lambda b: moment == b,
    }
    return all(checks[op](bound) for op, bound in bounds)


def _received_at(value: Any) -> datetime:
    try:
        return parse_instant(value, name="receivedDateTime")
    except GraphError:
        return datetime.min.replace(tzinfo=UTC)


def _descending(text: str | None, filtered: bool) -> bool:
    """`$orderby`: only `receivedDateTime` (the default order, newest first). With `$filter`,
    Graph wants every `$orderby` property in the `$filter` too, first: else 400 InefficientFilter."""
    if text is None or not text.strip():
        return True
    match = _ORDER.match(text)
    if match is None or match["name"].lower() != "receiveddatetime":
        if filtered:
            raise bad_request("The restriction or sort order is too complex for this operation.", "InefficientFilter")
        raise bad_request(f"The $orderby '{text}' is not supported by the emulator (receivedDateTime only).")
    return (match["direction"] or "asc").lower() == "desc"


async def list_messages(em: Tenant, rq: Request) -> Response:
    """A mailbox's or a folder's messages, newest first unless `$orderby=receivedDateTime asc`,
    `$filter` on `receivedDateTime`, paged with `$top`/`$skip` (the next link keeps both)."""
    user = em.store.user(rq.params["user"])
    select = message_select(rq)
    size = page_size(rq, 10, OUTLOOK_MAX_PAGE)
    skip = int_query(rq, "$skip")
    bounds = _received_range(rq.query.get("$filter"))
    descending = _descending(rq.query.get("$orderby"), bool(bounds))
    records = list(user.messages.values())
    if "folder" in rq.params:
        folder = em.store.folder(user, rq.params["folder"])
        records = [r for r in records if r.folder_id == folder.id]
    records = [r for r in records if _in_range(r.data.get("receivedDateTime"), bounds)]
    records.sort(
        key=lambda r: (_received_at(r.data.get("receivedDateTime")), str(r.data.get("id"))), reverse=descending
    )
    page = records[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": f"{rq.base}/$metadata#users('{quote(user.id)}')/messages{context_select(select)}",
        "value": [em.store.message_json(r, select) for r in page],
    }
    if rq.query.get("$count", "").lower() == "true":
        body["@odata.count"] = len(records)
    if skip + size < len(records):
        query = {"$top": str(size), "$skip": str(skip + size)}
        for name in ("$select", "$filter", "$orderby", "$count"):
            if rq.query.get(name):
                query[name] = rq.query[name]
        if select:
            query["$select"] = ",".join(select)
        body["@odata.nextLink"] = f"{rq.base}{rq.path}?{urlencode(query, safe='$,')}"
    await em.page_time(len(page))
    return Response(200, body, applied(rq, size))


async def list_attachments(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record = em.store.message(user, rq.params["message"])
    select = parse_select(rq.query.get("$select"), ("id", *ATTACHMENT_PROPERTIES), "attachment")
    items = [apply_select(dict(item), select, ("id",)) for item in record.attachments]
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/messages('{quote(record.data['id'])}')/attachments"
    return Response(200, {"@odata.context": context + context_select(select), "value": items}, applied(rq))


async def get_attachment(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record = em.store.message(user, rq.params["message"])
    for item in record.attachments:
        if item["id"] == rq.params["attachment"]:
            context = (
                f"{rq.base}/$metadata#users('{quote(user.id)}')/messages('{quote(record.data['id'])}')"
                "/attachments/$entity"
            )
            return Response(200, entity(context, dict(item)), applied(rq))
    raise not_found()
