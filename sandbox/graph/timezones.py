"""Time zones as Outlook names them: IANA names and the Windows names Graph uses, and `dateTimeTimeZone`.

Graph writes an event's `start` and `end` as a wall-clock `dateTime` with a `timeZone` name; it
accepts Windows names ("W. Europe Standard Time") and IANA names ("Europe/Prague"), and answers in
UTC unless `Prefer: outlook.timezone="..."` asks for another zone (docs/GRAPH.md, Calendar).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.graph.odata import bad_request, parse_instant

# The Windows names of the CLDR windowsZones table ("001" territory) most calendars use.
WINDOWS_ZONES = {
    "utc": "UTC",
    "coordinated universal time": "UTC",
    "gmt standard time": "Europe/London",
    "greenwich standard time": "Atlantic/Reykjavik",
    "w. europe standard time": "Europe/Berlin",
    "central europe standard time": "Europe/Budapest",
    "central european standard time": "Europe/Warsaw",
    "romance standard time": "Europe/Paris",
    "e. europe standard time": "Europe/Chisinau",
    "fle standard time": "Europe/Kiev",
    "gtb standard time": "Europe/Bucharest",
    "russian standard time": "Europe/Moscow",
    "turkey standard time": "Europe/Istanbul",
    "israel standard time": "Asia/Jerusalem",
    "arabian standard time": "Asia/Dubai",
    "india standard time": "Asia/Calcutta",
    "china standard time": "Asia/Shanghai",
    "singapore standard time": "Asia/Singapore",
    "tokyo standard time": "Asia/Tokyo",
    "korea standard time": "Asia/Seoul",
    "aus eastern standard time": "Australia/Sydney",
    "new zealand standard time": "Pacific/Auckland",
    "eastern standard time": "America/New_York",
    "central standard time": "America/Chicago",
    "mountain standard time": "America/Denver",
    "us mountain standard time": "America/Phoenix",
    "pacific standard time": "America/Los_Angeles",
    "alaskan standard time": "America/Anchorage",
    "hawaiian standard time": "Pacific/Honolulu",
    "atlantic standard time": "America/Halifax",
    "e. south america standard time": "America/Sao_Paulo",
    "sa pacific standard time": "America/Bogota",
    "south africa standard time": "Africa/Johannesburg",
}


def zone(name: Any, what: str = "timeZone") -> tzinfo:
    """A zone by IANA or Windows name; 400 for a name Graph would not know."""
    text = str(name or "UTC").strip()
    mapped = WINDOWS_ZONES.get(text.lower())
    if mapped == "UTC" or text.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(mapped or text)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request(
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{text}'.",
            "TimeZoneNotSupportedException",
        ) from None


def known_zone(name: str) -> bool:
    try:
        zone(name)
    except Exception:
        return False
    return True


def local_to_utc(wall: datetime, where: tzinfo) -> datetime:
    """A wall-clock time (naive) in a zone as a UTC instant (zoneinfo moves a time in a DST gap forward)."""
    return wall.replace(tzinfo=where).astimezone(UTC)


def parse_dtz(value: Any, name: str) -> tuple[datetime, str, datetime]:
    """A `dateTimeTimeZone` as (UTC instant, zone name as given, wall clock in that zone)."""
    if not isinstance(value, dict):
        raise bad_request(f"Invalid {name}: expected {{'dateTime', 'timeZone'}}.")
    zone_name = str(value.get("timeZone") or "UTC")
    where = zone(zone_name)
    moment = parse_instant(value.get("dateTime"), name=name)
    raw = str(value.get("dateTime"))
    has_offset = raw.endswith("Z") or "+" in raw[10:] or "-" in raw[10:]
    instant = moment.astimezone(UTC) if has_offset else local_to_utc(moment.replace(tzinfo=None), where)
    return instant, zone_name, instant.astimezone(where).replace(tzinfo=None)


def render(moment: datetime, zone_name: str | None) -> dict[str, str]:
    """A `dateTimeTimeZone` in the zone the caller preferred (UTC when none or unknown)."""
    if zone_name and zone_name.upper() != "UTC" and known_zone(zone_name):
        local = moment.astimezone(zone(zone_name))
        return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_name}
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def preferred_zone(prefer: dict[str, str]) -> str | None:
    """`Prefer: outlook.timezone="Pacific Standard Time"` as the name, or None."""
    value = prefer.get("outlook.timezone")
    return value.strip().strip('"') if value else None
