"""Graph's wire conventions the whole emulator shares: its error shape, its instants, opaque tokens, `$select`.

Nothing here knows a user or a mailbox; every other module of the emulator may import it.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class GraphError(Exception):
    """An error answered in Graph's shape: ``{"error": {"code", "message", "innerError"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": iso(now_utc()),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        }


def not_found(what: str = "The specified object was not found in the store.") -> GraphError:
    return GraphError(404, "ErrorItemNotFound", what)


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def sync_state_gone() -> GraphError:
    """What Outlook answers for a delta or skip token whose sync state it no longer holds."""
    return GraphError(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found: the delta token "
        "has expired. Start a full synchronization without a token.",
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso_7(moment: datetime) -> str:
    """An instant as Graph writes an event's createdDateTime and lastModifiedDateTime: UTC with
    seven fractional digits (event resource, example response: "2017-04-15T03:00:50.7579581Z"),
    so two edits within one second are still ordered."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def iso(moment: datetime) -> str:
    """Graph writes UTC instants as ``2024-05-01T10:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_instant(value: Any, *, name: str = "dateTime") -> datetime:
    """Graph accepts ISO 8601 with up to seven fractional digits and with or without an offset."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"Invalid {name}: expected an ISO 8601 date and time.")
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"Invalid {name} {value!r}: expected an ISO 8601 date and time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_date_time_zone(value: Any, name: str) -> datetime:
    """A ``dateTimeTimeZone`` (``{"dateTime", "timeZone"}``) as a UTC instant."""
    if not isinstance(value, dict):
        raise bad_request(f"Invalid {name}: expected {{'dateTime', 'timeZone'}}.")
    moment = parse_instant(value.get("dateTime"), name=name)
    zone_name = str(value.get("timeZone") or "UTC")
    if zone_name.upper() not in ("UTC", "Z") and moment.utcoffset() == timedelta(0):
        try:
            moment = moment.replace(tzinfo=ZoneInfo(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise bad_request(f"Time zone {zone_name!r} is not supported by the emulator.") from None
    return moment.astimezone(UTC)


def graph_date_time_zone(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def new_id(prefix: str = "AAMkA") -> str:
    """An id shaped like an Exchange immutable id: base64 with ``-``, ``_`` and ``=`` in it."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(33)).decode() + "="


def change_key() -> str:
    return base64.b64encode(secrets.token_bytes(12)).decode()


def etag(key: str) -> str:
    return f'W/"{key}"'


def encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The delta or skip token is malformed.", "BadRequest") from None
    if not isinstance(payload, dict):
        raise bad_request("The delta or skip token is malformed.", "BadRequest")
    return payload


def parse_select(value: str | None, allowed: tuple[str, ...] | list[str], type_name: str) -> list[str] | None:
    """``$select=a,b``: the names, or None; an unknown name is Graph's 400 from its URI parser."""
    if value is None or not value.strip():
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    lookup = {name.lower(): name for name in allowed}
    out = []
    for name in names:
        if name == "*":
            return None
        canonical = lookup.get(name.lower())
        if canonical is None:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
            )
        out.append(canonical)
    return out


def apply_select(full: dict[str, Any], select: list[str] | None, always: tuple[str, ...]) -> dict[str, Any]:
    if select is None:
        return full
    keep = set(select) | set(always)
    return {key: value for key, value in full.items() if key in keep or key.startswith("@odata")}
