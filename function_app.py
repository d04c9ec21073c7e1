"""Azure Functions entry points: triggers wired to crm_core use cases, and nothing else.

Settings are read at import, so a missing or invalid app setting stops the host's start with a
message that names the setting instead of letting functions run half-configured. Use cases (and
with them msgraph-sdk, the heaviest import) are imported inside the functions that need them:
cold start is paid on every scale-out.
"""

import json

import azure.functions as func

from crm_core import health
from crm_core.settings import load_settings

settings = load_settings()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health_check(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for the platform's health check and for the local runner."""
    return func.HttpResponse(json.dumps(health.report(settings)), status_code=200, mimetype="application/json")
