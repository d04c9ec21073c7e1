"""Graph's `/v1.0` pipeline: every request (and every request inside a `$batch`) goes through it.

Count the request, check the bearer token, apply the per-mailbox concurrency limit (4, answered
like Graph with 429 `ApplicationThrottled` "MailboxConcurrency"), apply injected faults (latency,
429 with Retry-After, 503), then run the handler (`routes`) and answer in Graph's JSON shape. The
`/_admin` API is in `admin`; `server` puts both on one port.
"""

from __future__ import annotations

import asyncio

from sandbox.graph.odata import GraphError
from sandbox.graph.profile import REAL, Profile
from sandbox.graph.protocol import Request, Response
from sandbox.graph.routes import known_path, match
from sandbox.graph.tenant import Tenant


class GraphEmulator(Tenant):
    """The tenant behind Graph's `/v1.0`: the bearer token, the per-mailbox concurrency count and the pipeline."""

    def __init__(
        self,
        *,
        token: str,
        tenant_id: str,
        profile: Profile = REAL,
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
            profile=profile,
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

    async def handle(self, request: Request, *, authenticated: bool) -> Response:
        route = match(request.method, request.path)
        if route is None:
            self.stats.requests["unknown"] += 1
            error = GraphError(400, "BadRequest", f"Resource not found for the segment '{request.path}'.")
            if known_path(request.path):
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
        if mailbox is not None:
            limit = self.faults.mailbox_concurrency
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
            fault = await self._fault(operation)
            if fault is not None:
                return self.reject(fault)
            try:
                response = await handler(self, request)
            except GraphError as error:
                return self.reject(error)
        finally:
            if mailbox is not None:
                self.in_flight[mailbox] -= 1
        self.stats.statuses[str(response.status)] += 1
        return response

    async def _fault(self, operation: str) -> GraphError | None:
        """The injected latency, then a 429 or a 503 if one is due for this operation."""
        if not self.faults.applies_to(operation):
            return None
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        retry_after = {"Retry-After": str(self.faults.retry_after)}
        if self.faults.throttle():
            self.stats.faults["throttled"] += 1
            return GraphError(429, "TooManyRequests", "Too many requests: the application is throttled.", retry_after)
        if self.faults.unavailable():
            self.stats.faults["unavailable"] += 1
            return GraphError(503, "serviceNotAvailable", "The service is temporarily unavailable.", retry_after)
        return None

    def _mailbox_key(self, params: dict[str, str]) -> str | None:
        if "user" not in params or "mailbox" not in params:
            return None
        user = self.store.find_user(params["user"])
        return user.id if user is not None else params["user"].lower()

    def reject(self, error: GraphError) -> Response:
        """Counted by status like every answer, so that the stats show refusals as well as successes."""
        self.stats.statuses[str(error.status)] += 1
        return Response(error.status, error.body(), dict(error.headers))
