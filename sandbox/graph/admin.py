"""The `/_admin` API: what a test or the demo does to the emulated tenant from outside Graph.

It plays the other people in the story: the administrator who creates users, the customer whose mail
arrives, the employee who edits an event in Outlook, and the cloud that fails (throttling, outages,
lost notifications, lifecycle events). It also reports how many requests each operation served.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.graph import events, series
from sandbox.graph.calendar_api import overlaps
from sandbox.graph.mime import rfc822_to_graph
from sandbox.graph.odata import GraphError, bad_request, iso, parse_instant
from sandbox.graph.records import EventRecord, User
from sandbox.graph.tenant import Tenant

AdminHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _guard(handler: AdminHandler) -> AdminHandler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except GraphError as error:
            return _json(error.body(), error.status)

    return wrapped


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The admin API expects a JSON body.") from None


def _calendar_item(record: EventRecord) -> dict[str, Any]:
    return {
        "id": record.data["id"],
        "type": record.kind,
        "subject": record.data.get("subject"),
        "start": iso(record.start),
        "end": iso(record.end),
        "isAllDay": bool(record.data.get("isAllDay")),
        "sensitivity": record.data.get("sensitivity"),
        "location": (record.data.get("location") or {}).get("displayName") or "",
        "seriesMasterId": record.master_id,
        "originalStart": iso(record.original) if record.original else None,
    }


def add_admin_routes(app: web.Application, em: Tenant) -> None:
    """Only the tenant is needed, not the Graph pipeline: these orders bypass the token, limits and faults."""
    store, notifier, book = em.store, em.notifier, em.subscriptions

    async def health(_: web.Request) -> web.StreamResponse:
        return _json(
            {"status": "ok", "tenantId": store.tenant_id, "profile": em.profile.name, "seed": em.randomness.seed}
        )

    async def profile(_: web.Request) -> web.StreamResponse:
        return _json({**em.profile.as_json(), "seed": em.randomness.seed})

    async def create_user(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("A user must be a JSON object.")
        return _json(store.add_user(body).representation(), 201)

    async def list_users(_: web.Request) -> web.StreamResponse:
        return _json({"value": [u.representation() for u in store.users.values()]})

    async def deliver(request: web.Request) -> web.StreamResponse:
        user = store.user(request.match_info["user"])
        folder = request.query.get("folder", "inbox")
        if request.content_type in ("message/rfc822", "application/octet-stream"):
            bodies = [rfc822_to_graph(await request.read())]
        else:
            body = await _body(request)
            many = isinstance(body, dict) and isinstance(body.get("messages"), list)
            bodies = body["messages"] if many else [body]
        created = [store.deliver_message(user, item, folder) for item in bodies]
        shown = [store.message_json(record, None) for record in created]
        return _json({"value": shown} if len(shown) != 1 else shown[0], 201)

    async def update_message(request: web.Request) -> web.StreamResponse:
        user = store.user(request.match_info["user"])
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("A message update must be a JSON object.")
        record = store.update_message(user, request.match_info["message"], body)
        return _json(store.message_json(record, None))

    async def delete_message(request: web.Request) -> web.StreamResponse:
        user = store.user(request.match_info["user"])
        store.delete_message(user, request.match_info["message"])
        return web.Response(status=204)

    async def create_event(request: web.Request) -> web.StreamResponse:
        user = store.user(request.match_info["user"])
        record, _ = events.create_event(store, user, await _body(request), source="admin")
        return _json(events.event_json(record, None, []), 201)

    async def update_event(request: web.Request) -> web.StreamResponse:
        user = store.user(request.match_info["user"])
        record = events.update_event(store, user, request.match_info["event"], await _body(request), source="admin")
        return _json(events.event_json(record, None, []))

    async def delete_event(request: web.Request) -> web.StreamResponse:
        user = store.user(request.match_info["user"])
        events.delete_event(store, user, request.match_info["event"], source="admin")
        return web.Response(status=204)

    def _occurrence(request: web.Request) -> tuple[User, str]:
        user = store.user(request.match_info["user"])
        master = events.event(user, request.match_info["event"])
        child = series.child_on_date(user, master, request.match_info["day"])
        if child is None:
            raise GraphError(404, "ErrorItemNotFound", "The series has no occurrence on that date.")
        return user, str(child.data["id"])

    async def update_occurrence(request: web.Request) -> web.StreamResponse:
        user, child_id = _occurrence(request)
        record = events.update_event(store, user, child_id, await _body(request), source="admin")
        return _json(events.event_json(record, None, []))

    async def delete_occurrence(request: web.Request) -> web.StreamResponse:
        user, child_id = _occurrence(request)
        events.delete_event(store, user, child_id, source="admin")
        return web.Response(status=204)

    async def calendar(request: web.Request) -> web.StreamResponse:
        """What the user's calendar shows in a window, occurrences expanded, times in UTC."""
        user = store.user(request.match_info["user"])
        start = parse_instant(request.query.get("start"), name="start")
        end = parse_instant(request.query.get("end"), name="end")
        shown = sorted(
            (r for r in user.events.values() if r.in_views and overlaps(r, start, end)), key=lambda r: r.start
        )
        return _json({"value": [_calendar_item(r) for r in shown]})

    async def invitations(request: web.Request) -> web.StreamResponse:
        user = store.user(request.match_info["user"])
        return _json({"count": len(user.invitations), "value": user.invitations})

    async def get_faults(_: web.Request) -> web.StreamResponse:
        return _json(em.faults.as_json())

    async def set_faults(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("Faults must be a JSON object.")
        em.faults.update(body)
        return _json(em.faults.as_json())

    async def clear_faults(_: web.Request) -> web.StreamResponse:
        em.faults.reset()
        return _json(em.faults.as_json())

    async def stats(_: web.Request) -> web.StreamResponse:
        return _json({**em.stats.as_json(), "pendingNotifications": notifier.pending_count()})

    async def reset_stats(_: web.Request) -> web.StreamResponse:
        em.stats.reset()
        return web.Response(status=204)

    async def expire_sync_states(_: web.Request) -> web.StreamResponse:
        store.sync_generation += 1
        em.evicted_tokens.clear()
        return _json({"syncGeneration": store.sync_generation})

    async def list_subscriptions(_: web.Request) -> web.StreamResponse:
        items = [
            {**s.as_json(), "needsReauthorization": s.needs_reauthorization, "active": s.active()}
            for s in book.items.values()
        ]
        return _json({"value": items})

    async def lifecycle(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        event = body.get("lifecycleEvent") if isinstance(body, dict) else None
        sent = await notifier.lifecycle(request.match_info["subscription"], event)
        return _json({"sent": sent})

    async def expire(request: web.Request) -> web.StreamResponse:
        subscription = book.expire_now(request.match_info["subscription"])
        return _json(subscription.as_json())

    async def reset(_: web.Request) -> web.StreamResponse:
        em.reset()
        return web.Response(status=204)

    routes: list[tuple[str, str, AdminHandler]] = [
        ("POST", "/_admin/reset", reset),
        ("GET", "/_admin/health", health),
        ("GET", "/_admin/profile", profile),
        ("POST", "/_admin/users", create_user),
        ("GET", "/_admin/users", list_users),
        ("POST", "/_admin/users/{user}/messages", deliver),
        ("PATCH", "/_admin/users/{user}/messages/{message}", update_message),
        ("DELETE", "/_admin/users/{user}/messages/{message}", delete_message),
        ("POST", "/_admin/users/{user}/events", create_event),
        ("PATCH", "/_admin/users/{user}/events/{event}", update_event),
        ("DELETE", "/_admin/users/{user}/events/{event}", delete_event),
        ("PATCH", "/_admin/users/{user}/events/{event}/occurrences/{day}", update_occurrence),
        ("DELETE", "/_admin/users/{user}/events/{event}/occurrences/{day}", delete_occurrence),
        ("GET", "/_admin/users/{user}/calendar", calendar),
        ("GET", "/_admin/users/{user}/invitations", invitations),
        ("GET", "/_admin/faults", get_faults),
        ("POST", "/_admin/faults", set_faults),
        ("DELETE", "/_admin/faults", clear_faults),
        ("GET", "/_admin/stats", stats),
        ("DELETE", "/_admin/stats", reset_stats),
        ("POST", "/_admin/sync-states/expire", expire_sync_states),
        ("GET", "/_admin/subscriptions", list_subscriptions),
        ("POST", "/_admin/subscriptions/{subscription}/lifecycle", lifecycle),
        ("POST", "/_admin/subscriptions/{subscription}/expire", expire),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guard(handler))
