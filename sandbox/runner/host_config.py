"""host.json, as far as the local runner imitates the Functions host.

The deployed app's retry and poison behaviour is written in host.json (`extensions.queues`), so the
runner reads the same file instead of having its own knobs: a test that proves "five failures end in
the poison queue" then proves it for the setting that ships. Defaults are the host's own
(Functions v4, storage extension 5.x).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandbox.runner.ncrontab import ScheduleError, parse_timespan

MAX_BATCH_SIZE = 32  # Azure Queue storage returns at most 32 messages per request


class HostConfigError(ValueError):
    """host.json holds a value the Functions host would refuse; the message names the setting."""


@dataclass(frozen=True)
class QueueSettings:
    """`extensions.queues`: how queue triggers fetch, retry and give up on messages."""

    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    message_encoding: Literal["base64", "none"] = "base64"


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the runner honours."""

    queues: QueueSettings = field(default_factory=QueueSettings)
    route_prefix: str = "api"
    function_timeout: float | None = 300.0
    log_level: int = logging.INFO


_LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 10,
}


def _seconds(value: Any, setting: str) -> float:
    if not isinstance(value, str):
        raise HostConfigError(f"{setting}: expected a TimeSpan string like '00:00:30', got {value!r}")
    try:
        return parse_timespan(value).total_seconds()
    except ScheduleError as error:
        raise HostConfigError(f"{setting}: {error}") from error


def _int(value: Any, setting: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HostConfigError(f"{setting}: expected a whole number {low}-{high}, got {value!r}")
    return value


def _queues(section: dict[str, Any]) -> QueueSettings:
    prefix = "extensions.queues."
    batch_size = _int(section.get("batchSize", 16), prefix + "batchSize", 1, MAX_BATCH_SIZE)
    encoding = str(section.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise HostConfigError(f"{prefix}messageEncoding: expected 'base64' or 'none', got {encoding!r}")
    polling = _seconds(section.get("maxPollingInterval", "00:01:00"), prefix + "maxPollingInterval")
    if polling < 0.1:
        raise HostConfigError(f"{prefix}maxPollingInterval: the host's minimum is 00:00:00.100")
    return QueueSettings(
        max_dequeue_count=_int(section.get("maxDequeueCount", 5), prefix + "maxDequeueCount", 1, 10_000),
        visibility_timeout=_seconds(section.get("visibilityTimeout", "00:00:00"), prefix + "visibilityTimeout"),
        batch_size=batch_size,
        # The host's default is batchSize/2 per core; one core's worth keeps local runs predictable.
        new_batch_threshold=_int(
            section.get("newBatchThreshold", batch_size // 2), prefix + "newBatchThreshold", 0, 10_000
        ),
        max_polling_interval=polling,
        message_encoding="base64" if encoding == "base64" else "none",
    )


def parse_host_config(document: dict[str, Any]) -> HostConfig:
    """Read host.json's content; unknown settings are ignored as the host ignores most of them here."""
    if document.get("version") != "2.0":
        raise HostConfigError('version: host.json must say "version": "2.0" (Functions v2 and later)')
    extensions = document.get("extensions") or {}
    queues = _queues(extensions.get("queues") or {})
    route_prefix = str((extensions.get("http") or {}).get("routePrefix", "api")).strip("/")
    timeout_text = document.get("functionTimeout")
    function_timeout: float | None = 300.0
    if timeout_text == "-1":
        function_timeout = None
    elif timeout_text is not None:
        function_timeout = _seconds(timeout_text, "functionTimeout")
    level_text = str(((document.get("logging") or {}).get("logLevel") or {}).get("default", "Information"))
    log_level = _LOG_LEVELS.get(level_text.lower())
    if log_level is None:
        raise HostConfigError(f"logging.logLevel.default: unknown level {level_text!r}")
    return HostConfig(queues=queues, route_prefix=route_prefix, function_timeout=function_timeout, log_level=log_level)


OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def apply_host_overrides(document: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """host.json values overridden by app settings, as the Functions host allows:
    `AzureFunctionsJobHost__extensions__queues__visibilityTimeout=00:00:02` sets that value.

    Keys match case-insensitively; whole numbers and true/false become JSON numbers and booleans.
    """
    merged: dict[str, Any] = json.loads(json.dumps(document))
    for name, raw in environ.items():
        if not name.lower().startswith(OVERRIDE_PREFIX.lower()):
            continue
        path = [part for part in name[len(OVERRIDE_PREFIX) :].split("__") if part]
        if not path:
            continue
        value: Any = raw
        if raw.strip().lstrip("-").isdigit():
            value = int(raw)
        elif raw.strip().lower() in ("true", "false"):
            value = raw.strip().lower() == "true"
        node = merged
        for part in path[:-1]:
            key = next((k for k in node if k.lower() == part.lower()), part)
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        leaf = next((k for k in node if k.lower() == path[-1].lower()), path[-1])
        node[leaf] = value
    return merged


def load_host_config(app_dir: Path, environ: Mapping[str, str] | None = None) -> HostConfig:
    """host.json from the app directory, with app-setting overrides; the host refuses to start
    without it, and so do we."""
    path = app_dir / "host.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise HostConfigError(f"{path} is missing; a Functions app needs host.json") from error
    except json.JSONDecodeError as error:
        raise HostConfigError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise HostConfigError(f"{path} must hold a JSON object")
    return parse_host_config(apply_host_overrides(document, os.environ if environ is None else environ))
