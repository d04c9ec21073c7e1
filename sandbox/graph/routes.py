"""Which handler answers which `/v1.0` path, under which operation name the stats count it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from sandbox.graph import calendar_api, delta, mail_api, subscription_api
from sandbox.graph.protocol import Request, Response
from sandbox.graph.tenant import Tenant

Handler = Callable[[Tenant, Request], Awaitable[Response]]

ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = []


def _names(pattern: str) -> str:
    return (
        pattern.replace("{user}", "(?P<user>[^/]+)(?P<mailbox>)")
        .replace("{message}", "(?P<message>[^/]+)")
        .replace("{attachment}", "(?P<attachment>[^/]+)")
        .replace("{folder}", "(?P<folder>[^/]+?)")
        .replace("{event}", "(?P<event>[^/]+)")
        .replace("{subscription}", "(?P<subscription>[^/]+)")
    )


_TABLE: list[tuple[str, str, str, Handler]] = [
    ("GET", "/users", "listUsers", mail_api.list_users),
    ("GET", "/users/(?P<user>[^/]+)", "getUser", mail_api.get_user),
    ("GET", "/users/{user}/messages", "listMessages", mail_api.list_messages),
    ("GET", "/users/{user}/messages/{message}", "getMessage", mail_api.get_message),
    ("GET", "/users/{user}/messages/{message}/attachments", "listAttachments", mail_api.list_attachments),
    ("GET", "/users/{user}/messages/{message}/attachments/{attachment}", "getAttachment", mail_api.get_attachment),
    ("GET", r"/users/{user}/mailFolders/{folder}/messages/delta(?:\(\))?", "messageDelta", delta.message_delta),
    ("GET", "/users/{user}/mailFolders/{folder}/messages", "listMessages", mail_api.list_messages),
    ("GET", r"/users/{user}/calendarView/delta(?:\(\))?", "eventDelta", delta.event_delta),
    ("GET", "/users/{user}/calendarView", "calendarView", calendar_api.calendar_view),
    ("GET", "/users/{user}/events", "listEvents", calendar_api.list_events),
    ("POST", "/users/{user}/events", "createEvent", calendar_api.create_event),
    ("GET", "/users/{user}/events/{event}/instances", "listInstances", calendar_api.list_instances),
    ("GET", "/users/{user}/events/{event}", "getEvent", calendar_api.get_event),
    ("PATCH", "/users/{user}/events/{event}", "updateEvent", calendar_api.update_event),
    ("DELETE", "/users/{user}/events/{event}", "deleteEvent", calendar_api.delete_event),
    ("GET", "/subscriptions", "listSubscriptions", subscription_api.list_subscriptions),
    ("POST", "/subscriptions", "createSubscription", subscription_api.create_subscription),
    ("GET", "/subscriptions/{subscription}", "getSubscription", subscription_api.get_subscription),
    ("PATCH", "/subscriptions/{subscription}", "renewSubscription", subscription_api.renew_subscription),
    ("DELETE", "/subscriptions/{subscription}", "deleteSubscription", subscription_api.delete_subscription),
    (
        "POST",
        "/subscriptions/{subscription}/reauthorize",
        "reauthorizeSubscription",
        subscription_api.reauthorize_subscription,
    ),
    ("POST", r"/\$batch", "batch", subscription_api.batch),
]

for _method, _pattern, _operation, _handler in _TABLE:
    ROUTES.append((_method, re.compile("^" + _names(_pattern) + "/?$", re.IGNORECASE), _operation, _handler))


def match(method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
    """The operation, its handler and the path's parameters; None when no route has this method and path."""
    for route_method, pattern, operation, handler in ROUTES:
        if route_method != method:
            continue
        found = pattern.match(path)
        if found:
            return operation, handler, {k: v for k, v in found.groupdict().items() if v is not None}
    return None


def known_path(path: str) -> bool:
    """Whether some route has this path (with another method: Graph's 405)."""
    return any(pattern.match(path) for _, pattern, _, _ in ROUTES)
