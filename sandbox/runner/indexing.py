"""Reading an app the way the Python worker's indexing does, before anything runs.

Everything the runner cannot serve is refused here, at start, with the function's name: a binding
type it does not imitate, an unset `%SETTING%`, a parameter without a binding. A test then fails at
start with a reason instead of a trigger silently never firing.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import azure.functions as func

from sandbox.runner.functions import FunctionLoadError, FunctionSpec, QueueBinding
from sandbox.runner.ncrontab import parse_schedule
from sandbox.runner.routes import RouteTemplate

DEFAULT_CONNECTION = "AzureWebJobsStorage"
SUPPORTED_BINDINGS = {"httpTrigger", "http", "queueTrigger", "queue", "timerTrigger"}


def _expand_settings(value: str, what: str, environ: Mapping[str, str]) -> str:
    """`%NAME%` binding expressions are app settings, resolved by the host before the function is indexed."""
    parts = value.split("%")
    if len(parts) % 2 == 0:
        raise FunctionLoadError(f"{what}: unbalanced % in {value!r}")
    for index in range(1, len(parts), 2):
        setting = parts[index]
        if setting not in environ:
            raise FunctionLoadError(f"{what}: app setting {setting!r} (from {value!r}) is not set")
        parts[index] = environ[setting]
    return "".join(parts)


def _is_disabled(name: str, environ: Mapping[str, str], disabled: Iterable[str]) -> bool:
    # The host's own switch: app setting `AzureWebJobs.<FunctionName>.Disabled` = true.
    flag = environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower()
    return flag in ("true", "1") or name in set(disabled)


def _apply_binding(spec: FunctionSpec, data: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """One binding's settings onto the spec; `data` is the binding as function.json would hold it."""
    name, kind = spec.name, data["type"]
    if kind not in SUPPORTED_BINDINGS:
        raise FunctionLoadError(
            f"function {name!r}: binding type {kind!r} is not supported by the local runner "
            f"(supported: {', '.join(sorted(SUPPORTED_BINDINGS))})"
        )
    if kind == "httpTrigger":
        route = data.get("route") or name
        spec.route = RouteTemplate.compile(str(route))
        methods = data.get("methods")
        spec.methods = frozenset(str(getattr(m, "value", m)).upper() for m in methods) if methods else None
    elif kind in ("queueTrigger", "queue"):
        what = f"function {name!r}, binding {data['name']!r}"
        queue = QueueBinding(
            name=data["name"],
            queue_name=_expand_settings(str(data["queueName"]), what, environ).lower(),
            connection=_expand_settings(str(data.get("connection") or DEFAULT_CONNECTION), what, environ),
        )
        if kind == "queueTrigger":
            spec.queue_trigger = queue
        else:
            spec.queue_outputs.append(queue)
    elif kind == "timerTrigger":
        spec.schedule_text = _expand_settings(str(data["schedule"]), f"function {name!r}", environ)
        try:
            spec.schedule = parse_schedule(spec.schedule_text)
        except ValueError as error:
            raise FunctionLoadError(f"function {name!r}: schedule {spec.schedule_text!r}: {error}") from error
        spec.run_on_startup = bool(data.get("runOnStartup"))


def describe_functions(
    app: func.FunctionRegister, environ: Mapping[str, str], disabled: Iterable[str] = ()
) -> list[FunctionSpec]:
    """Refuse at start what the worker would refuse, so that a test fails with a reason rather than waiting."""
    specs: list[FunctionSpec] = []
    for function in app.get_functions():
        name = function.get_function_name()
        user_function = function.get_user_function()
        if name is None:
            raise FunctionLoadError(f"function {user_function!r} has no name")
        trigger = function.get_trigger()
        if trigger is None:
            raise FunctionLoadError(f"function {name!r} has no trigger")
        spec = FunctionSpec(
            name=name,
            user_function=user_function,
            is_async=inspect.iscoroutinefunction(user_function),
            trigger_type=trigger.get_binding_name(),
            trigger_name=trigger.name,
            disabled=_is_disabled(name, environ, disabled),
        )
        bound_names: set[str] = set()
        for binding in function.get_bindings():
            data: dict[str, Any] = binding.get_dict_repr()
            bound_names.add(data["name"])
            _apply_binding(spec, data, environ)
        parameters = inspect.signature(user_function).parameters
        spec.wants_context = "context" in parameters and "context" not in bound_names
        unbound = [p for p in parameters if p not in bound_names and p != "context"]
        if unbound:
            # The worker refuses these too ("declared in Python but not in function.json").
            raise FunctionLoadError(f"function {name!r}: parameters {unbound} have no binding")
        specs.append(spec)
    return specs


def load_function_app(app_dir: Path) -> func.FunctionRegister:
    """Import `function_app` from `app_dir` the way the worker does: the app directory first on sys.path."""
    app_dir = app_dir.resolve()
    script = app_dir / "function_app.py"
    if not script.exists():
        raise FunctionLoadError(f"{script} does not exist")
    loaded = sys.modules.get("function_app")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() != script:
        del sys.modules["function_app"]  # another app was loaded in this process before
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module("function_app")
    registers = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(registers) != 1:
        raise FunctionLoadError(f"{script} must define exactly one FunctionApp, found {len(registers)}")
    return registers[0]


def load_local_settings(app_dir: Path, environ: MutableMapping[str, str]) -> None:
    """`Values` of local.settings.json into the environment, as Core Tools does; the environment wins."""
    path = app_dir / "local.settings.json"
    if not path.exists():
        return
    values = json.loads(path.read_text(encoding="utf-8")).get("Values") or {}
    for key, value in values.items():
        environ.setdefault(str(key), str(value))
