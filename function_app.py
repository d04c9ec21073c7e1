"""Azure Functions entry points: triggers wired to crm_core use cases, and nothing else.

Settings are read at import, so a missing or invalid app setting stops the host's start with a
message that names the setting instead of letting functions run half-configured. Adapters (and
with them msgraph-sdk, the heaviest import) are built on first use by `crm_core.runtime`: cold
start is paid on every scale-out, and the webhook needs none of them.
"""

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import azure.functions as func

from crm_core.domain.notifications import NotificationRejected, ValidationRequest
from crm_core.domain.settings import load_settings
from crm_core.domain.tasks import CAPTURE_QUEUE, LIFECYCLE_QUEUE
from crm_core.runtime import get_runtime
from crm_core.usecases import health

if TYPE_CHECKING:
    from crm_core.usecases.notification_intake import Intake

settings = load_settings()
STORAGE = "AzureWebJobsStorage"

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


async def _webhook(
    req: func.HttpRequest, tasks: func.Out[list[str]], accept: "Callable[[bytes], Awaitable[Intake]]"
) -> func.HttpResponse:
    """Graph's handshake (the token back, unchanged, as text/plain), or the POST's notifications
    checked and queued, answered 202; a body that is no notification is a 4xx."""
    try:
        validation = ValidationRequest.from_params(req.params)
        if validation is not None:
            return func.HttpResponse(validation.response_body(), status_code=200, mimetype="text/plain")
        intake = await accept(req.get_body())
    except NotificationRejected as exc:
        body = json.dumps({"error": {"code": "badNotification", "message": exc.reason}})
        return func.HttpResponse(body, status_code=exc.status, mimetype="application/json")
    if intake.tasks:
        tasks.set(intake.tasks)
    return func.HttpResponse(status_code=202)


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health_check(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for the platform's health check and for the local runner."""
    return func.HttpResponse(json.dumps(health.report()), status_code=200, mimetype="application/json")


@app.function_name("notifications")
@app.route(route="notifications", methods=["POST"])
@app.queue_output(arg_name="tasks", queue_name=CAPTURE_QUEUE, connection=STORAGE)
async def notifications(req: func.HttpRequest, tasks: func.Out[list[str]]) -> func.HttpResponse:
    """Graph change notifications: checked and queued, answered 202 within milliseconds."""
    return await _webhook(req, tasks, get_runtime(settings).accept_notifications)


@app.function_name("lifecycle")
@app.route(route="lifecycle", methods=["POST"])
@app.queue_output(arg_name="tasks", queue_name=LIFECYCLE_QUEUE, connection=STORAGE)
async def lifecycle(req: func.HttpRequest, tasks: func.Out[list[str]]) -> func.HttpResponse:
    """Graph lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed): queued."""
    return await _webhook(req, tasks, get_runtime(settings).accept_lifecycle)


@app.function_name("capture")
@app.queue_trigger(arg_name="item", queue_name=CAPTURE_QUEUE, connection=STORAGE)
@app.queue_output(arg_name="retry", queue_name=CAPTURE_QUEUE, connection=STORAGE)
async def capture(item: func.QueueMessage, retry: func.Out[list[str]]) -> None:
    """Capture the CRM mailbox's new mail; an exception makes the host retry, then poison."""
    again = await get_runtime(settings).run_capture_task(item.get_body().decode("utf-8"), item.dequeue_count or 1)
    if again:
        retry.set(again)


@app.function_name("lifecycle_worker")
@app.queue_trigger(arg_name="item", queue_name=LIFECYCLE_QUEUE, connection=STORAGE)
async def lifecycle_worker(item: func.QueueMessage) -> None:
    """Reauthorize, recreate or reconcile, as the lifecycle notification asks."""
    await get_runtime(settings).run_lifecycle_task(item.get_body().decode("utf-8"), item.dequeue_count or 1)


@app.function_name("subscription_upkeep")
@app.timer_trigger(arg_name="timer", schedule="0 */30 * * * *", run_on_startup=True)
async def subscription_upkeep(timer: func.TimerRequest) -> None:
    """Create the CRM mailbox's subscription when missing; renew it past half its life."""
    await get_runtime(settings).run_upkeep()


@app.function_name("reconcile")
@app.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
@app.queue_output(arg_name="retry", queue_name=CAPTURE_QUEUE, connection=STORAGE)
async def reconcile(timer: func.TimerRequest, retry: func.Out[list[str]]) -> None:
    """Message delta on the CRM mailbox: mail whose notification never came is captured too."""
    again = await get_runtime(settings).run_reconcile()
    if again:
        retry.set(again)
