"""Helpers for the NET Genium tests: the emulator's admin API, and a small JSON Schema checker.

The checker covers the keywords openapi.yaml uses (type, required, properties,
additionalProperties, enum, items, minimum, maximum, maxLength, oneOf, $ref), so the contract test
needs no extra package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

import crm_core.netgenium
from crm_core.netgenium.retry import RetryPolicy

OPENAPI_PATH = Path(crm_core.netgenium.__file__).parent / "openapi.yaml"
API_KEY = "test-netgenium-key"
API_KEY_HEADER = "X-NG-Key"
MAX_FILE_BYTES = 1_000_000
# Small waits: the tests exercise the retry logic, not the clock.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total_seconds=10)


def load_openapi() -> dict[str, Any]:
    """The contract as data."""
    data = yaml.safe_load(OPENAPI_PATH.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


class Admin:
    """The emulator's /_admin/ API, over real HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def reset(self) -> None:
        self.http.post("/_admin/reset").raise_for_status()

    def seed(self, table: str, records: list[dict[str, Any]]) -> None:
        answer = self.http.post("/_admin/seed", json={"table": table, "records": records})
        assert answer.status_code == 200, answer.text

    def faults(self, **faults: Any) -> None:
        answer = self.http.post("/_admin/faults", json=faults)
        assert answer.status_code == 200, answer.text

    def counts(self) -> dict[str, int]:
        data = self.http.get("/_admin/counts").json()
        counts = data["counts"]
        assert isinstance(counts, dict)
        return counts

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {API_KEY_HEADER: API_KEY, **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def close(self) -> None:
        self.http.close()


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def schema_errors(value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str = "$") -> list[str]:
    """Why `value` does not match `schema` (empty when it does)."""
    if "$ref" in schema:
        target: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, spec, where)
    errors: list[str] = []
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not schema_errors(value, s, spec, where)]
        if len(matching) != 1:
            errors.append(f"{where}: matches {len(matching)} of oneOf")
        return errors
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, name) for name in names):
            return [f"{where}: {type(value).__name__} is not {names}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in enum")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: above maximum")
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{where}: longer than maxLength")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], spec, f"{where}[{index}]")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: {name} is required")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], spec, f"{where}.{name}")
            elif extra is False:
                errors.append(f"{where}: unexpected property {name}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, spec, f"{where}.{name}")
    return errors
