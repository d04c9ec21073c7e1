"""The runner's one HTTP listener: admin endpoints first, then the app's HTTP triggers.

One port serves both, as the Functions host does, so a test reaches `/admin/...` and `/api/...` at
the same base URL that Core Tools would give it.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.runner.admin import AdminEndpoints
from sandbox.runner.http_triggers import HttpTriggers

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request limit


async def start_web(admin: AdminEndpoints, triggers: HttpTriggers, bind: str, port: int) -> tuple[web.AppRunner, int]:
    """Returns the runner to clean up at stop and the port bound, which is a free one when `port` is 0."""
    application = web.Application(client_max_size=MAX_BODY_BYTES)
    admin.add_routes(application)
    triggers.add_routes(application)
    runner = web.AppRunner(application, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, bind, port)
    await site.start()
    if port == 0:
        port = int(runner.addresses[0][1])
    return runner, port
