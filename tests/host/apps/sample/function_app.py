"""A small Functions app for the local runner's tests: one function per behaviour the runner imitates.

Records go to JSON-lines files in the folder named by SAMPLE_RECORD_DIR, so a test can see what each
invocation received without any channel but the runner itself. The queue name comes from the app
setting SAMPLE_QUEUE (a `%SETTING%` binding expression), so every test run uses fresh queues.
"""

import json
import os
import threading
import time
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

_lock = threading.Lock()


def _record(kind: str, entry: dict) -> None:
    path = Path(os.environ["SAMPLE_RECORD_DIR"]) / f"{kind}.jsonl"
    with _lock, path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(entry) + "\n")


@app.route(route="echo/{name}/{count:int?}", methods=["GET", "POST"])
async def echo(req: func.HttpRequest) -> func.HttpResponse:
    answer = {
        "method": req.method,
        "url": req.url,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "header": req.headers.get("X-Sample"),
        "body": req.get_body().decode("utf-8"),
    }
    return func.HttpResponse(
        json.dumps(answer), status_code=201, mimetype="application/json", headers={"X-Echo": "yes"}
    )


@app.route(route="echo/special", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def echo_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("special")


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("this error must become a 500")


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="%SAMPLE_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[list[str]]) -> func.HttpResponse:
    out.set([str(item) for item in req.get_json()])
    return func.HttpResponse(status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="AzureWebJobsStorage")
def record(msg: func.QueueMessage, context: func.Context) -> None:
    body = msg.get_body().decode("utf-8")
    _record(
        "queue",
        {
            "id": msg.id,
            "body": body,
            "dequeue_count": msg.dequeue_count,
            "inserted": msg.insertion_time.isoformat() if msg.insertion_time else None,
            "has_pop_receipt": bool(msg.pop_receipt),
            "invocation_id": context.invocation_id,
            "function_name": context.function_name,
        },
    )
    if body.startswith("fail"):
        raise RuntimeError("told to fail")
    if body.startswith("slow"):
        time.sleep(1.0)  # still running when the test asks the runner to stop
        _record("queue-done", {"body": body})


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
def at_startup(timer: func.TimerRequest) -> None:
    _record("timer", {"past_due": timer.past_due})
