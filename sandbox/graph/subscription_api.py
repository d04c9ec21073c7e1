"""`/v1.0/subscriptions` handlers and `$batch`, which runs its requests through the tenant's pipeline."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.graph.odata import GraphError, bad_request
from sandbox.graph.protocol import Request, Response, entity, json_object, parse_prefer
from sandbox.graph.tenant import Tenant

MAX_BATCH = 20


def _context(rq: Request) -> str:
    return f"{rq.base}/$metadata#subscriptions/$entity"


async def create_subscription(em: Tenant, rq: Request) -> Response:
    subscription = await em.notifier.create(json_object(rq))
    return Response(201, entity(_context(rq), subscription.as_json()))


async def list_subscriptions(em: Tenant, rq: Request) -> Response:
    items = [em.subscriptions.read_back(s) for s in em.subscriptions.active()]
    return Response(200, {"@odata.context": f"{rq.base}/$metadata#subscriptions", "value": items})


async def get_subscription(em: Tenant, rq: Request) -> Response:
    subscription = em.subscriptions.get(rq.params["subscription"])
    return Response(200, entity(_context(rq), em.subscriptions.read_back(subscription)))


async def renew_subscription(em: Tenant, rq: Request) -> Response:
    subscription = em.subscriptions.renew(rq.params["subscription"], json_object(rq))
    return Response(200, entity(_context(rq), em.subscriptions.read_back(subscription)))


async def delete_subscription(em: Tenant, rq: Request) -> Response:
    em.subscriptions.delete(rq.params["subscription"])
    return Response(204)


async def reauthorize_subscription(em: Tenant, rq: Request) -> Response:
    em.subscriptions.reauthorize(rq.params["subscription"])
    return Response(204)


def _failed(item_id: str, status: int, error: GraphError) -> dict[str, Any]:
    return {"id": item_id, "status": status, "headers": {"Content-Type": "application/json"}, "body": error.body()}


async def batch(em: Tenant, rq: Request) -> Response:
    """JSON batching: at most 20 requests, `dependsOn` (424 when a dependency failed); the real profile
    answers them in any order ("individual responses might appear in a different order")."""
    body = json_object(rq)
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
    if em.profile.shuffle_batch:
        em.randomness.stream("batch").shuffle(responses)
    return Response(200, {"responses": responses})


async def _batch_item(em: Tenant, rq: Request, item: dict[str, Any], statuses: dict[str, int]) -> dict[str, Any]:
    depends = item.get("dependsOn") or []
    if any(not 200 <= statuses.get(str(d), 0) < 300 for d in depends):
        return _failed(item["id"], 424, GraphError(424, "BadRequest", "Failed dependency."))
    method, url = str(item.get("method", "")).upper(), str(item.get("url", ""))
    if method not in ("GET", "POST", "PATCH", "PUT", "DELETE") or not url or "://" in url:
        return _failed(item["id"], 400, bad_request("Each batch request needs a method and a relative url."))
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
    if "body" in item and not any(k.lower() == "content-type" for k in headers):
        error = bad_request("Write request id : " + item["id"] + " does not contain Content-Type header or body.")
        return _failed(item["id"], 400, error)
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
