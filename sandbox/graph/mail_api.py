"""`/v1.0` handlers for the directory and for reading mail: users, messages, attachments."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sandbox.graph.odata import apply_select, decode_token, encode_token, not_found, parse_select
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


async def list_messages(em: Tenant, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = message_select(rq)
    size = page_size(rq, 10, OUTLOOK_MAX_PAGE)
    skip = int_query(rq, "$skip")
    records = list(user.messages.values())
    if "folder" in rq.params:
        folder = em.store.folder(user, rq.params["folder"])
        records = [r for r in records if r.folder_id == folder.id]
    records.sort(key=lambda r: str(r.data.get("receivedDateTime")), reverse=True)
    page = records[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": f"{rq.base}/$metadata#users('{quote(user.id)}')/messages{context_select(select)}",
        "value": [em.store.message_json(r, select) for r in page],
    }
    if skip + size < len(records):
        query = f"$top={size}&$skip={skip + size}" + (f"&$select={','.join(select)}" if select else "")
        body["@odata.nextLink"] = f"{rq.base}{rq.path}?{query}"
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
