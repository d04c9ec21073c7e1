"""Route templates, host.json reading, queue encodings and function indexing, without processes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import azure.functions as func
import pytest

from sandbox.runner.bindings import decode_queue_message, encode_queue_message
from sandbox.runner.functions import FunctionLoadError
from sandbox.runner.host_config import HostConfigError, load_host_config, parse_host_config
from sandbox.runner.indexing import describe_functions, load_local_settings
from sandbox.runner.routes import RouteError, RouteTemplate

# -- routes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("items", "items", {}),
        ("items", "ITEMS/", {}),
        ("items/{id}", "items/42", {"id": "42"}),
        ("items/{id}", "items", None),
        ("items/{id:int}", "items/-7", {"id": "-7"}),
        ("items/{id:int}", "items/x", None),
        (
            "items/{id:guid}",
            "items/0f8fad5b-d9cb-469f-a165-70867728950e",
            {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        ),
        ("items/{flag:bool}", "items/True", {"flag": "True"}),
        ("items/{name:alpha}", "items/abc1", None),
        ("items/{id?}", "items", {}),
        ("items/{id?}", "items/5", {"id": "5"}),
        ("items/{id=1}", "items", {}),
        ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("files/{*path}", "files", {}),
        ("files/{name}.{ext}", "files/report.pdf", {"name": "report", "ext": "pdf"}),
        ("codes/{code:regex(^[A-Z]{{2}}\\d+$)}", "codes/CZ42", {"code": "CZ42"}),
        ("items/{id}", "items/a%2Fb", {"id": "a/b"}),
        ("", "", {}),
    ],
)
def test_route_matching(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.compile(template).match(path) == expected


def test_more_specific_routes_sort_first() -> None:
    templates = ["items/{*rest}", "items/{id?}", "items/{id}", "items/{id:int}", "items/special", "items"]
    ordered = sorted((RouteTemplate.compile(t) for t in templates), key=RouteTemplate.sort_key)
    assert [t.template for t in ordered] == [
        "items",
        "items/special",
        "items/{id:int}",
        "items/{id}",
        "items/{id?}",
        "items/{*rest}",
    ]


@pytest.mark.parametrize("template", ["a/{*rest}/b", "a/{id}/{ID}", "a/{1bad}", "a/{open", "a/x{id?}"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(RouteError):
        RouteTemplate.compile(template)


# -- host.json ------------------------------------------------------------------------------------


def test_defaults_are_the_hosts() -> None:
    config = parse_host_config({"version": "2.0"})
    assert config.queues.max_dequeue_count == 5
    assert config.queues.visibility_timeout == 0
    assert config.queues.batch_size == 16
    assert config.queues.new_batch_threshold == 8
    assert config.queues.max_polling_interval == 60
    assert config.queues.message_encoding == "base64"
    assert config.route_prefix == "api"
    assert config.function_timeout == 300


def test_the_repository_host_json_is_read() -> None:
    root = Path(__file__).resolve().parents[2]
    document = json.loads((root / "host.json").read_text())
    config = load_host_config(root)
    queues = document["extensions"]["queues"]
    assert config.queues.max_dequeue_count == queues["maxDequeueCount"]
    assert config.queues.batch_size == queues["batchSize"]
    assert config.queues.message_encoding == queues["messageEncoding"]


def test_sample_host_json() -> None:
    config = load_host_config(Path(__file__).parent / "apps" / "sample")
    assert config.queues.visibility_timeout == 1.0
    assert config.queues.max_polling_interval == 0.5
    assert config.function_timeout == 60


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({}, "version"),
        ({"version": "2.0", "extensions": {"queues": {"batchSize": 33}}}, "batchSize"),
        ({"version": "2.0", "extensions": {"queues": {"maxDequeueCount": "5"}}}, "maxDequeueCount"),
        ({"version": "2.0", "extensions": {"queues": {"messageEncoding": "utf8"}}}, "messageEncoding"),
        ({"version": "2.0", "extensions": {"queues": {"visibilityTimeout": 30}}}, "visibilityTimeout"),
        ({"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.050"}}}, "maxPollingInterval"),
        ({"version": "2.0", "functionTimeout": "5 minutes"}, "functionTimeout"),
        ({"version": "2.0", "logging": {"logLevel": {"default": "Loud"}}}, "logLevel"),
    ],
)
def test_invalid_host_json_names_the_setting(document: dict, fragment: str) -> None:
    with pytest.raises(HostConfigError, match=fragment):
        parse_host_config(document)


def test_missing_host_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HostConfigError, match="missing"):
        load_host_config(tmp_path)


def test_route_prefix_and_unlimited_timeout() -> None:
    config = parse_host_config(
        {"version": "2.0", "extensions": {"http": {"routePrefix": "/v1/"}}, "functionTimeout": "-1"}
    )
    assert config.route_prefix == "v1"
    assert config.function_timeout is None


def test_local_settings_do_not_override_the_environment(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "file", "B": "file"}})
    )
    environ = {"A": "env"}
    load_local_settings(tmp_path, environ)
    assert environ == {"A": "env", "B": "file"}


# -- queue encodings ------------------------------------------------------------------------------


def test_queue_output_encodings() -> None:
    assert encode_queue_message("héllo", "base64") == [base64.b64encode("héllo".encode()).decode()]
    assert encode_queue_message(["a", b"b"], "none") == ["a", "b"]
    message = func.QueueMessage(body=b"c")
    assert encode_queue_message([message], "none") == ["c"]
    with pytest.raises(TypeError):
        encode_queue_message({"a": 1}, "none")


def test_queue_trigger_decoding() -> None:
    assert decode_queue_message(base64.b64encode(b"x\x00y").decode(), "base64") == b"x\x00y"
    assert decode_queue_message("plain {json}", "none") == b"plain {json}"
    with pytest.raises(ValueError, match="base64"):
        decode_queue_message("not base64!", "base64")


# -- function indexing ----------------------------------------------------------------------------


def test_describe_functions_expands_settings_and_reads_bindings() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%QUEUE%", connection="Storage")
    @app.queue_output(arg_name="out", queue_name="Next-%QUEUE%", connection="Storage")
    def work(msg: func.QueueMessage, out: func.Out[str], context: func.Context) -> None:
        pass

    @app.timer_trigger(schedule="%SCHEDULE%", arg_name="timer", run_on_startup=True)
    async def tick(timer: func.TimerRequest) -> None:
        pass

    env = {"QUEUE": "jobs", "SCHEDULE": "0 */5 * * * *", "AzureWebJobs.tick.Disabled": "true"}
    specs = {spec.name: spec for spec in describe_functions(app, env)}
    work_spec, tick_spec = specs["work"], specs["tick"]
    assert work_spec.queue_trigger is not None
    assert (work_spec.queue_trigger.queue_name, work_spec.queue_trigger.connection) == ("jobs", "Storage")
    assert [o.queue_name for o in work_spec.queue_outputs] == ["next-jobs"]
    assert work_spec.wants_context and not work_spec.is_async and not work_spec.disabled
    assert tick_spec.is_async and tick_spec.run_on_startup and tick_spec.disabled
    assert tick_spec.schedule_text == "0 */5 * * * *"


def test_missing_setting_unsupported_binding_and_unbound_parameter_are_refused() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%NOPE%", connection="Storage")
    def work(msg: func.QueueMessage) -> None:
        pass

    with pytest.raises(FunctionLoadError, match="NOPE"):
        describe_functions(app, {})

    blobs = func.FunctionApp()

    @blobs.blob_trigger(arg_name="blob", path="in/{name}", connection="Storage")
    def on_blob(blob: func.InputStream) -> None:
        pass

    with pytest.raises(FunctionLoadError, match="blobTrigger"):
        describe_functions(blobs, {})

    extra = func.FunctionApp()

    @extra.route(route="x")
    def handler(req: func.HttpRequest, surprise: str) -> func.HttpResponse:
        return func.HttpResponse()

    with pytest.raises(FunctionLoadError, match="surprise"):
        describe_functions(extra, {})

    timers = func.FunctionApp()

    @timers.timer_trigger(schedule="0 */5 * * *", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        pass

    with pytest.raises(FunctionLoadError, match="six"):
        describe_functions(timers, {})


def test_app_settings_override_host_json_as_the_host_does() -> None:
    from sandbox.runner.host_config import apply_host_overrides, parse_host_config

    document = {"version": "2.0", "extensions": {"queues": {"maxDequeueCount": 5, "visibilityTimeout": "00:00:30"}}}
    environ = {
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "2",
        "azurefunctionsjobhost__Extensions__Queues__VisibilityTimeout": "00:00:01",
        "AzureFunctionsJobHost__functionTimeout": "00:00:10",
        "UNRELATED": "x",
    }
    config = parse_host_config(apply_host_overrides(document, environ))
    assert config.queues.max_dequeue_count == 2
    assert config.queues.visibility_timeout == 1.0
    assert config.function_timeout == 10.0
    assert document["extensions"]["queues"]["maxDequeueCount"] == 5  # the file's content is not changed
