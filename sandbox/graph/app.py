"""Graph's `/v1.0` paths the product calls, answered in Graph's shapes (the `/_admin` API is in `admin`).

Every `/v1.0` request (and every request inside a `$batch`) goes through one pipeline: count it,
check the bearer token, apply the per-mailbox concurrency limit (4, answered like Graph with 429
`MailboxConcurrency`), apply injected faults (latency, 429 with Retry-After, 503), then run the
handler and answer in Graph's JSON shape.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from sandbox.graph.store import (
    ATTACHMENT_PROPERTIES,
    EVENT_PROPERTIES,
    USER_DEFAULT_PROPERTIES,
    USER_SELECTABLE,
    EventRecord,
    GraphError,
    User,
    apply_select,
    bad_request,
    decode_token,
    encode_token,
    not_found,
    parse_instant,
    parse_select,
)
from sandbox.graph.tenant import Tenant

MAX_BATCH = 20
MESSAGE_DELTA_DEFAULT_PAGE = 10
EVENT_DELTA_DEFAULT_PAGE = 10
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


Handler = Callable[["GraphEmulator", Request], Awaitable[Response]]


def parse_prefer(headers: Mapping[str, str]) -> dict[str, str]:
    """`Prefer` preferences by lower-case name; a `$batch` item carries its own."""
    out: dict[str, str] = {}
    for value in [v for k, v in headers.items() if k.lower() == "prefer"]:
        for part in value.split(","):
            name, _, setting = part.strip().partition("=")
            if name:
                out[name.strip().lower()] = setting.strip()
    return out


def _page_size(request: Request, default: int, maximum: int) -> int:
    size = default
    wanted = request.prefer.get("odata.maxpagesize")
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise bad_request("odata.maxpagesize must be a positive integer.")
        size = min(int(wanted), maximum)
    top = request.query.get("$top")
    if top is not None:
        if not top.isdigit() or int(top) < 1:
            raise bad_request(f"Invalid value '{top}' for $top.", "BadRequest")
        size = min(int(top), maximum)
    return size


def _int_query(request: Request, name: str) -> int:
    value = request.query.get(name, "0")
    if not value.isdigit():
        raise bad_request(f"Invalid value '{value}' for {name}.")
    return int(value)


def _applied(request: Request, page_size: int | None = None) -> dict[str, str]:
    applied = []
    if page_size is not None and "odata.maxpagesize" in request.prefer:
        applied.append(f"odata.maxpagesize={page_size}")
    if request.prefer.get("idtype", "").strip('"').lower() == "immutableid":
        applied.append('IdType="ImmutableId"')
    return {"Preference-Applied": ", ".join(applied)} if applied else {}


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


class GraphEmulator(Tenant):
    """The tenant behind Graph's `/v1.0`: the bearer token, the per-mailbox concurrency count and the pipeline."""

    def __init__(
        self,
        *,
        token: str,
        tenant_id: str,
        seed: int = 0,
        mailbox_concurrency: int = 4,
        validation_timeout: float = 10.0,
        delivery_timeout: float = 3.0,
        batch_window: float = 0.1,
        retry_base: float = 5.0,
        retry_window: float = 4 * 3600.0,
    ) -> None:
        super().__init__(
            tenant_id=tenant_id,
            seed=seed,
            mailbox_concurrency=mailbox_concurrency,
            validation_timeout=validation_timeout,
            delivery_timeout=delivery_timeout,
            batch_window=batch_window,
            retry_base=retry_base,
            retry_window=retry_window,
        )
        self.token = token
        self.in_flight: dict[str, int] = {}

    # ---- pipeline ----------------------------------------------------------------------------

    async def handle(self, request: Request, *, authenticated: bool) -> Response:
        route = _match(request.method, request.path)
        if route is None:
            self.stats.requests["unknown"] += 1
            error = GraphError(400, "BadRequest", f"Resource not found for the segment '{request.path}'.")
            if any(pattern.match(request.path) for _, pattern, _, _ in ROUTES):
                error = GraphError(405, "Request_BadRequest", "The HTTP method is not allowed on this resource.")
            return self.reject(error)
        operation, handler, params = route
        request.params = params
        self.stats.requests[operation] += 1
        if not authenticated:
            auth = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
            if not auth:
                return self.reject(GraphError(401, "InvalidAuthenticationToken", "Access token is empty."))
            if auth != f"Bearer {self.token}":
                return self.reject(GraphError(401, "InvalidAuthenticationToken", "Access token validation failure."))
        mailbox = self._mailbox_key(params)
        limit = self.faults.mailbox_concurrency
        if mailbox is not None:
            if limit and self.in_flight.get(mailbox, 0) >= limit:
                self.stats.faults["mailboxConcurrency"] += 1
                return self.reject(
                    GraphError(
                        429,
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        {"Retry-After": str(self.faults.retry_after)},
                    )
                )
            self.in_flight[mailbox] = self.in_flight.get(mailbox, 0) + 1
            self.stats.max_in_flight[mailbox] = max(self.stats.max_in_flight.get(mailbox, 0), self.in_flight[mailbox])
        try:
            if self.faults.applies_to(operation):
                if self.faults.latency_ms:
                    await asyncio.sleep(self.faults.latency_ms / 1000)
                if self.faults.throttle():
                    self.stats.faults["throttled"] += 1
                    return self.reject(
                        GraphError(
                            429,
                            "TooManyRequests",
                            "Too many requests: the application is throttled.",
                            {"Retry-After": str(self.faults.retry_after)},
                        )
                    )
                if self.faults.unavailable():
                    self.stats.faults["unavailable"] += 1
                    return self.reject(
                        GraphError(
                            503,
                            "serviceNotAvailable",
                            "The service is temporarily unavailable.",
                            {"Retry-After": str(self.faults.retry_after)},
                        )
                    )
            try:
                response = await handler(self, request)
            except GraphError as error:
                return self.reject(error)
        finally:
            if mailbox is not None:
                self.in_flight[mailbox] -= 1
        self.stats.statuses[str(response.status)] += 1
        return response

    def _mailbox_key(self, params: dict[str, str]) -> str | None:
        if "user" not in params or "mailbox" not in params:
            return None
        user = self.store.find_user(params["user"])
        return user.id if user is not None else params["user"].lower()

    def reject(self, error: GraphError) -> Response:
        """Counted by status like every answer, so that the stats show refusals as well as successes."""
        self.stats.statuses[str(error.status)] += 1
        return Response(error.status, error.body(), dict(error.headers))


# ---- handlers ----------------------------------------------------------------------------------


def _entity(context: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"@odata.context": context, **body}


def _context_select(select: list[str] | None) -> str:
    return f"({','.join(select)})" if select else ""


async def list_users(em: GraphEmulator, rq: Request) -> Response:
    select = parse_select(rq.query.get("$select"), USER_SELECTABLE, "user")
    size = _page_size(rq, 100, 999)
    skip = int(decode_token(rq.query["$skiptoken"]).get("o", 0)) if "$skiptoken" in rq.query else 0
    users = sorted(em.store.users.values(), key=lambda u: u.created_seq)
    page = users[skip : skip + size]
    items = []
    for user in page:
        full = user.representation()
        shown = apply_select(full, select, ()) if select else {k: full[k] for k in USER_DEFAULT_PROPERTIES}
        items.append(shown)
    body: dict[str, Any] = {"@odata.context": f"{rq.base}/$metadata#users{_context_select(select)}", "value": items}
    if skip + size < len(users):
        token = encode_token({"o": skip + size})
        query = f"$skiptoken={token}" + (f"&$select={','.join(select)}" if select else "")
        body["@odata.nextLink"] = f"{rq.base}/users?{query}&$top={size}"
    return Response(200, body, _applied(rq, size))


async def get_user(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = parse_select(rq.query.get("$select"), USER_SELECTABLE, "user")
    full = user.representation()
    shown = apply_select(full, select, ()) if select else {k: full[k] for k in USER_DEFAULT_PROPERTIES}
    return Response(200, _entity(f"{rq.base}/$metadata#users{_context_select(select)}/$entity", shown))


def _message_select(em: GraphEmulator, user: User, rq: Request) -> list[str] | None:
    return parse_select(rq.query.get("$select"), em.store.message_selectable(user), "message")


async def get_message(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = _message_select(em, user, rq)
    record = em.store.message(user, rq.params["message"])
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/messages{_context_select(select)}/$entity"
    return Response(200, _entity(context, em.store.message_json(user, record, select)), _applied(rq))


async def list_messages(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = _message_select(em, user, rq)
    size = _page_size(rq, 10, OUTLOOK_MAX_PAGE)
    skip = _int_query(rq, "$skip")
    records = list(user.messages.values())
    if "folder" in rq.params:
        folder = em.store.folder(user, rq.params["folder"])
        records = [r for r in records if r.folder_id == folder.id]
    records.sort(key=lambda r: str(r.data.get("receivedDateTime")), reverse=True)
    page = records[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": f"{rq.base}/$metadata#users('{quote(user.id)}')/messages{_context_select(select)}",
        "value": [em.store.message_json(user, r, select) for r in page],
    }
    if skip + size < len(records):
        query = f"$top={size}&$skip={skip + size}" + (f"&$select={','.join(select)}" if select else "")
        body["@odata.nextLink"] = f"{rq.base}{rq.path}?{query}"
    return Response(200, body, _applied(rq, size))


async def list_attachments(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record = em.store.message(user, rq.params["message"])
    select = parse_select(rq.query.get("$select"), ("id", *ATTACHMENT_PROPERTIES), "attachment")
    items = [apply_select(dict(item), select, ("id",)) for item in record.attachments]
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/messages('{quote(record.data['id'])}')/attachments"
    return Response(200, {"@odata.context": context + _context_select(select), "value": items}, _applied(rq))


async def get_attachment(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record = em.store.message(user, rq.params["message"])
    for item in record.attachments:
        if item["id"] == rq.params["attachment"]:
            context = (
                f"{rq.base}/$metadata#users('{quote(user.id)}')/messages('{quote(record.data['id'])}')"
                "/attachments/$entity"
            )
            return Response(200, _entity(context, dict(item)), _applied(rq))
    raise not_found()


def _sync_state_gone() -> GraphError:
    return GraphError(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found: the delta token "
        "has expired. Start a full synchronization without a token.",
    )


def _delta_token(em: GraphEmulator, rq: Request, binding: str) -> tuple[dict[str, Any], bool] | None:
    """The state in a $skiptoken / $deltatoken, or None for an initial round."""
    for name, initial_page in (("$skiptoken", True), ("$deltatoken", False)):
        if name in rq.query:
            state = decode_token(rq.query[name])
            if state.get("g") != em.store.sync_generation:
                raise _sync_state_gone()
            if state.get("b") != binding:
                raise bad_request("The token does not belong to this resource.", "BadRequest")
            return state, initial_page
    return None


async def message_delta(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    folder = em.store.folder(user, rq.params["folder"])
    size = _page_size(rq, MESSAGE_DELTA_DEFAULT_PAGE, OUTLOOK_MAX_PAGE)
    found = _delta_token(em, rq, folder.id)
    if found is None:
        select = _message_select(em, user, rq)
        change_type = rq.query.get("changeType")
        if change_type is not None and change_type not in ("created", "updated", "deleted"):
            raise bad_request(f"changeType '{change_type}' is not valid.")
        state: dict[str, Any] = {
            "g": em.store.sync_generation,
            "b": folder.id,
            "s": 0,
            "u": em.store.seq,
            "c": 0,
            "sel": select,
            "ct": change_type,
            "i": True,
        }
    else:
        state, paging = found
        if not paging:  # a new round from the delta link: changes since the last round ended
            state = {**state, "s": state["u"], "u": em.store.seq, "c": state["u"], "i": False}
    select = state.get("sel")
    entries = sorted(
        (seq, message_id, present)
        for message_id, (seq, present) in folder.log.items()
        if state["c"] < seq <= state["u"] and (present or not state["i"])
    )
    if state.get("ct") == "deleted":
        entries = [e for e in entries if not e[2]]
    elif state.get("ct") in ("created", "updated"):
        entries = [e for e in entries if e[2]]
    page, rest = entries[:size], entries[size:]
    items = []
    for _, message_id, present in page:
        record = user.messages.get(message_id)
        if present and record is not None:
            items.append({"@odata.type": "#microsoft.graph.message", **em.store.message_json(user, record, select)})
        else:
            items.append(
                {"@odata.type": "#microsoft.graph.message", "id": message_id, "@removed": {"reason": "deleted"}}
            )
    link_base = f"{rq.base}/users/{quote(user.id, safe='')}/mailFolders/{quote(folder.id, safe='')}/messages/delta"
    body: dict[str, Any] = {"@odata.context": f"{rq.base}/$metadata#Collection(message)", "value": items}
    if rest:
        body["@odata.nextLink"] = f"{link_base}?$skiptoken={encode_token({**state, 'c': page[-1][0]})}"
    else:
        body["@odata.deltaLink"] = f"{link_base}?$deltatoken={encode_token({**state, 'c': state['u']})}"
    return Response(200, body, _applied(rq, size))


def _overlaps(record: EventRecord, start: Any, end: Any) -> bool:
    return bool(record.start < end and (record.end > start or (record.start == record.end >= start)))


def _window(rq: Request) -> tuple[Any, Any]:
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


def _event_item(em: GraphEmulator, record: EventRecord) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.event", **em.store.event_json(record, None, None)}


async def event_delta(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    size = _page_size(rq, EVENT_DELTA_DEFAULT_PAGE, OUTLOOK_MAX_PAGE)
    found = _delta_token(em, rq, user.id)
    if found is None:
        start, end = _window(rq)
        state: dict[str, Any] = {
            "g": em.store.sync_generation,
            "b": user.id,
            "s": 0,
            "u": em.store.seq,
            "c": 0,
            "ws": start.isoformat(),
            "we": end.isoformat(),
            "i": True,
        }
    else:
        state, paging = found
        if not paging:
            state = {**state, "s": state["u"], "u": em.store.seq, "c": state["u"], "i": False}
    start, end = parse_instant(state["ws"]), parse_instant(state["we"])
    entries = []
    for event_id, (seq, present) in user.event_log.items():
        if not state["c"] < seq <= state["u"]:
            continue
        record = user.events.get(event_id) if present else None
        visible = record is not None and _overlaps(record, start, end)
        if visible or not state["i"]:
            entries.append((seq, event_id, record if visible else None))
    entries.sort(key=lambda e: e[0])
    page, rest = entries[:size], entries[size:]
    items = []
    for _, event_id, record in page:
        if record is not None:
            items.append(_event_item(em, record))
        else:
            items.append({"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}})
    link_base = f"{rq.base}/users/{quote(user.id, safe='')}/calendarView/delta"
    body: dict[str, Any] = {"@odata.context": f"{rq.base}/$metadata#Collection(event)", "value": items}
    if rest:
        body["@odata.nextLink"] = f"{link_base}?$skiptoken={encode_token({**state, 'c': page[-1][0]})}"
    else:
        body["@odata.deltaLink"] = f"{link_base}?$deltatoken={encode_token({**state, 'c': state['u']})}"
    return Response(200, body, _applied(rq, size))


async def calendar_view(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    start, end = _window(rq)
    select = parse_select(rq.query.get("$select"), ("id", *EVENT_PROPERTIES), "event")
    size = _page_size(rq, 10, OUTLOOK_MAX_PAGE)
    skip = _int_query(rq, "$skip")
    records = sorted((r for r in user.events.values() if _overlaps(r, start, end)), key=lambda r: r.start)
    page = records[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": f"{rq.base}/$metadata#users('{quote(user.id)}')/calendarView{_context_select(select)}",
        "value": [em.store.event_json(r, select, None) for r in page],
    }
    if skip + size < len(records):
        body["@odata.nextLink"] = (
            f"{rq.base}{rq.path}?startDateTime={quote(rq.query['startDateTime'])}"
            f"&endDateTime={quote(rq.query['endDateTime'])}&$top={size}&$skip={skip + size}"
        )
    return Response(200, body, _applied(rq, size))


async def list_events(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = parse_select(rq.query.get("$select"), ("id", *EVENT_PROPERTIES), "event")
    expand = _expand_ids(rq)
    size = _page_size(rq, 10, OUTLOOK_MAX_PAGE)
    skip = _int_query(rq, "$skip")
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
        "@odata.context": f"{rq.base}/$metadata#users('{quote(user.id)}')/events{_context_select(select)}",
        "value": [em.store.event_json(r, select, expand) for r in page],
    }
    if skip + size < len(records):
        body["@odata.nextLink"] = f"{rq.base}{rq.path}?$top={size}&$skip={skip + size}"
    return Response(200, body, _applied(rq, size))


def _json_object(rq: Request) -> dict[str, Any]:
    if not isinstance(rq.body, dict):
        raise bad_request("Empty Payload. JSON content expected.", "BadRequest")
    return rq.body


async def create_event(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record, _created = em.store.create_event(user, _json_object(rq))
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events/$entity"
    return Response(201, _entity(context, em.store.event_json(record, None, None)), _applied(rq))


async def get_event(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    select = parse_select(rq.query.get("$select"), ("id", *EVENT_PROPERTIES), "event")
    record = em.store.event(user, rq.params["event"])
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events{_context_select(select)}/$entity"
    return Response(200, _entity(context, em.store.event_json(record, select, _expand_ids(rq))), _applied(rq))


async def update_event(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    record = em.store.update_event(user, rq.params["event"], _json_object(rq))
    context = f"{rq.base}/$metadata#users('{quote(user.id)}')/events/$entity"
    return Response(200, _entity(context, em.store.event_json(record, None, None)), _applied(rq))


async def delete_event(em: GraphEmulator, rq: Request) -> Response:
    user = em.store.user(rq.params["user"])
    em.store.delete_event(user, rq.params["event"])
    return Response(204)


async def create_subscription(em: GraphEmulator, rq: Request) -> Response:
    subscription = await em.notifier.create(_json_object(rq))
    return Response(201, _entity(f"{rq.base}/$metadata#subscriptions/$entity", subscription.as_json()))


async def list_subscriptions(em: GraphEmulator, rq: Request) -> Response:
    items = [s.as_json() for s in em.notifier.active()]
    return Response(200, {"@odata.context": f"{rq.base}/$metadata#subscriptions", "value": items})


async def get_subscription(em: GraphEmulator, rq: Request) -> Response:
    subscription = em.notifier.get(rq.params["subscription"])
    return Response(200, _entity(f"{rq.base}/$metadata#subscriptions/$entity", subscription.as_json()))


async def renew_subscription(em: GraphEmulator, rq: Request) -> Response:
    subscription = em.notifier.renew(rq.params["subscription"], _json_object(rq))
    return Response(200, _entity(f"{rq.base}/$metadata#subscriptions/$entity", subscription.as_json()))


async def delete_subscription(em: GraphEmulator, rq: Request) -> Response:
    em.notifier.delete(rq.params["subscription"])
    return Response(204)


async def reauthorize_subscription(em: GraphEmulator, rq: Request) -> Response:
    em.notifier.reauthorize(rq.params["subscription"])
    return Response(204)


async def batch(em: GraphEmulator, rq: Request) -> Response:
    body = _json_object(rq)
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise bad_request("Invalid batch payload format: 'requests' must be a non-empty array.", "BadRequest")
    if len(requests) > MAX_BATCH:
        raise bad_request(f"The number of batch requests exceeds the limit of {MAX_BATCH}.", "BadRequest")
    ids = [item.get("id") if isinstance(item, dict) else None for item in requests]
    if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
        raise bad_request("Each batch request needs a unique string 'id'.", "BadRequest")
    statuses: dict[str, int] = {}
    responses = []
    for item in requests:
        responses.append(await _batch_item(em, rq, item, statuses))
        statuses[item["id"]] = responses[-1]["status"]
    return Response(200, {"responses": responses})


async def _batch_item(em: GraphEmulator, rq: Request, item: dict[str, Any], statuses: dict[str, int]) -> dict[str, Any]:
    depends = item.get("dependsOn") or []
    if any(not 200 <= statuses.get(str(d), 0) < 300 for d in depends):
        error = GraphError(424, "BadRequest", "Failed dependency.")
        return {"id": item["id"], "status": 424, "headers": {"Content-Type": "application/json"}, "body": error.body()}
    method, url = str(item.get("method", "")).upper(), str(item.get("url", ""))
    if method not in ("GET", "POST", "PATCH", "PUT", "DELETE") or not url or "://" in url:
        error = bad_request("Each batch request needs a method and a relative url.")
        return {"id": item["id"], "status": 400, "headers": {"Content-Type": "application/json"}, "body": error.body()}
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
    if "body" in item and not any(k.lower() == "content-type" for k in headers):
        error = bad_request("Write request id : " + item["id"] + " does not contain Content-Type header or body.")
        return {"id": item["id"], "status": 400, "headers": {"Content-Type": "application/json"}, "body": error.body()}
    parts = urlsplit("/" + url.lstrip("/"))
    sub = Request(
        method=method,
        path=unquote(parts.path),
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=item.get("body"),
        base=rq.base,
    )
    sub.prefer = parse_prefer(headers)
    answer = await em.handle(sub, authenticated=True)
    out: dict[str, Any] = {"id": item["id"], "status": answer.status, "headers": dict(answer.headers)}
    if answer.body is not None:
        out["headers"]["Content-Type"] = "application/json"
        out["body"] = answer.body
    return out


_SEG = r"([^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = []


def _route(method: str, pattern: str, operation: str, handler: Handler) -> None:
    ROUTES.append((method, re.compile("^" + pattern + "/?$", re.IGNORECASE), operation, handler))


def _names(pattern: str) -> str:
    return (
        pattern.replace("{user}", "(?P<user>[^/]+)(?P<mailbox>)")
        .replace("{message}", "(?P<message>[^/]+)")
        .replace("{attachment}", "(?P<attachment>[^/]+)")
        .replace("{folder}", "(?P<folder>[^/]+?)")
        .replace("{event}", "(?P<event>[^/]+)")
        .replace("{subscription}", "(?P<subscription>[^/]+)")
    )


for _method, _pattern, _operation, _handler in [
    ("GET", "/users", "listUsers", list_users),
    ("GET", "/users/(?P<user>[^/]+)", "getUser", get_user),
    ("GET", "/users/{user}/messages", "listMessages", list_messages),
    ("GET", "/users/{user}/messages/{message}", "getMessage", get_message),
    ("GET", "/users/{user}/messages/{message}/attachments", "listAttachments", list_attachments),
    ("GET", "/users/{user}/messages/{message}/attachments/{attachment}", "getAttachment", get_attachment),
    ("GET", r"/users/{user}/mailFolders/{folder}/messages/delta(?:\(\))?", "messageDelta", message_delta),
    ("GET", "/users/{user}/mailFolders/{folder}/messages", "listMessages", list_messages),
    ("GET", r"/users/{user}/calendarView/delta(?:\(\))?", "eventDelta", event_delta),
    ("GET", "/users/{user}/calendarView", "calendarView", calendar_view),
    ("GET", "/users/{user}/events", "listEvents", list_events),
    ("POST", "/users/{user}/events", "createEvent", create_event),
    ("GET", "/users/{user}/events/{event}", "getEvent", get_event),
    ("PATCH", "/users/{user}/events/{event}", "updateEvent", update_event),
    ("DELETE", "/users/{user}/events/{event}", "deleteEvent", delete_event),
    ("GET", "/subscriptions", "listSubscriptions", list_subscriptions),
    ("POST", "/subscriptions", "createSubscription", create_subscription),
    ("GET", "/subscriptions/{subscription}", "getSubscription", get_subscription),
    ("PATCH", "/subscriptions/{subscription}", "renewSubscription", renew_subscription),
    ("DELETE", "/subscriptions/{subscription}", "deleteSubscription", delete_subscription),
    ("POST", "/subscriptions/{subscription}/reauthorize", "reauthorizeSubscription", reauthorize_subscription),
    ("POST", r"/\$batch", "batch", batch),
]:
    _route(_method, _names(_pattern), _operation, _handler)


def _match(method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
    for route_method, pattern, operation, handler in ROUTES:
        if route_method != method:
            continue
        found = pattern.match(path)
        if found:
            params = {k: v for k, v in found.groupdict().items() if v is not None}
            return operation, handler, params
    return None
