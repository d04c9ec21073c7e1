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
from pydantic import ValidationError

from crm_core.domain.notifications import NotificationRejected, ValidationRequest
from crm_core.domain.settings import load_settings
from crm_core.domain.tasks import CALENDAR_QUEUE, CAPTURE_QUEUE, LIFECYCLE_QUEUE, ActivitySaved
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


@app.function_name("status")
@app.route(route="status", methods=["GET"])
async def status(req: func.HttpRequest) -> func.HttpResponse:
    """The status page (function key in Azure): capture's last 24 hours, subscriptions, poison queues,
    unmatched correspondents and calendar sync, from the service's tables; `?format=json` for JSON."""
    page = await get_runtime(settings).status_page(req.params.get("format"))
    return func.HttpResponse(page.body, status_code=200, mimetype=page.mimetype, headers=page.headers)


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


@app.function_name("calendar_users")
@app.timer_trigger(arg_name="timer", schedule=settings.crm_calendar_users_schedule, run_on_startup=True)
async def calendar_users(timer: func.TimerRequest) -> None:
    """Who is in calendar sync (NET Genium users matched with Microsoft 365), and their subscriptions."""
    await get_runtime(settings).calendar.refresh_users()


@app.function_name("calendar_poll")
@app.timer_trigger(arg_name="timer", schedule=settings.crm_calendar_poll_schedule, run_on_startup=False)
@app.queue_output(arg_name="tasks", queue_name=CALENDAR_QUEUE, connection=STORAGE)
async def calendar_poll(timer: func.TimerRequest, tasks: func.Out[list[str]]) -> None:
    """NET Genium's changed and deleted calendar activities: one sync task per synced user."""
    found = await get_runtime(settings).calendar.poll_tasks()
    if found:
        tasks.set(found)


@app.function_name("calendar_activity_saved")
@app.route(route="calendar/activity", methods=["POST"])
@app.queue_output(arg_name="tasks", queue_name=CALENDAR_QUEUE, connection=STORAGE)
async def calendar_activity_saved(req: func.HttpRequest, tasks: func.Out[str]) -> func.HttpResponse:
    """NET Genium's OnAfterSave script names a saved calendar activity: it is synced now, not at the
    next poll. Answers 202 once queued; a body without a valid `activity_id` is a 400."""
    try:
        activity_id = ActivitySaved.model_validate_json(req.get_body()).activity_id
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        body = json.dumps({"error": {"code": "badRequest", "message": f"{where}: {first['msg']}"}})
        return func.HttpResponse(body, status_code=400, mimetype="application/json")
    tasks.set(await get_runtime(settings).calendar.activity_saved(activity_id))
    return func.HttpResponse(status_code=202)


@app.function_name("calendar_worker")
@app.queue_trigger(arg_name="item", queue_name=CALENDAR_QUEUE, connection=STORAGE)
async def calendar_worker(item: func.QueueMessage) -> None:
    """Sync one user's calendar both ways, or one activity; an exception makes the host retry."""
    await get_runtime(settings).calendar.run_task(item.get_body().decode("utf-8"), item.dequeue_count or 1)
