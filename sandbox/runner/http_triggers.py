"""HTTP triggers under `/<routePrefix>/<route>`, matched the way ASP.NET routing matches them.

Literal segments win over parameters, and a method the function does not accept lets another
function's route take the request, so the app gets the same function for a URL here as in Azure.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from sandbox.runner.bindings import to_http_request, to_web_response
from sandbox.runner.functions import FunctionSpec, Invoke


class HttpTriggers:
    """The catch-all route behind the admin endpoints; `state()` is the host's lifecycle state now."""

    def __init__(
        self, state: Callable[[], str], functions: list[FunctionSpec], route_prefix: str, invoke: Invoke
    ) -> None:
        self.state = state
        self.route_prefix = route_prefix
        self.invoke = invoke
        self.functions = functions

    def add_routes(self, application: web.Application) -> None:
        """Last, so that the admin endpoints added before it keep their paths."""
        application.router.add_route("*", "/{tail:.*}", self.handle)

    def find(self, method: str, raw_path: str) -> tuple[FunctionSpec, dict[str, str]] | None:
        """The function for this request and its route parameters; None answers 404."""
        prefix = self.route_prefix
        if prefix:
            head = f"/{prefix}"
            if raw_path.lower() != head.lower() and not raw_path.lower().startswith(head.lower() + "/"):
                return None
            raw_path = raw_path[len(head) :]
        candidates = sorted(
            (s for s in self.functions if s.route is not None and not s.disabled),
            key=lambda s: s.route.sort_key() if s.route else ((), 0),
        )
        for spec in candidates:
            assert spec.route is not None
            params = spec.route.match(raw_path)
            if params is None:
                continue
            if spec.methods is not None and method not in spec.methods:
                continue
            return spec, params
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """A function that raises answers 500 with no body, as the host does; the log has the traceback."""
        if self.state() != "Running":
            return web.Response(status=503, text="host is not running")
        found = self.find(request.method, request.rel_url.raw_path)
        if found is None:
            return web.Response(status=404)
        spec, route_params = found
        http_request = await to_http_request(request, route_params)
        try:
            result = await self.invoke(
                spec, http_request, reason=f"HTTP {request.method} {spec.route.template if spec.route else ''}"
            )
        except Exception:
            return web.Response(status=500)
        return to_web_response(result)
