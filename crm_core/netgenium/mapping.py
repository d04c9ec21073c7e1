"""Value mapping between the domain models and NET Genium records, through the schema map.

Kept apart from the client so that it stays pure (no HTTP, no waiting) and the client holds only
what it asks NET Genium and in which order. A value is made to fit its column here (`fit.py`)
instead of being refused by SQL Server, and an identifier is cut the way lookups cut it, so a
Message-ID longer than its column is still found again. A record that breaks the promise of its
columns (a calendar activity without a valid start) is a `NetGeniumProtocolError`, not a crash
further in.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from crm_core.domain.addresses import normalize_address
from crm_core.netgenium import filters as f
from crm_core.netgenium.errors import NetGeniumProtocolError
from crm_core.netgenium.fit import fit_identifier, fit_text
from crm_core.netgenium.models import CalendarActivity, EmailActivity, NgContact, NgUser
from crm_core.netgenium.schema_map import ColumnMap, EntityMap

IDENTIFIER_COLUMNS = frozenset({"message_id", "conversation_id", "event_id"})


def _parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def column_value(logical: str, column: ColumnMap, value: Any) -> Any:
    """`value` as its column stores it; identifiers are cut so that a lookup cut the same way finds them."""
    if value is None:
        return None
    if column.type == "text":
        text = column.stored(str(value))
        if logical in IDENTIFIER_COLUMNS:
            return fit_identifier(text, column.max_length)
        return fit_text(text, column.max_length)
    if column.type == "memo":
        return fit_text(str(value), None)
    if column.type == "datetime":
        if not isinstance(value, datetime):
            raise TypeError(f"{logical} expects a datetime")
        return f.format_datetime(value)
    if column.type == "bool":
        return bool(value)
    return value


def record_values(entity: EntityMap, data: dict[str, Any]) -> dict[str, Any]:
    """The columns to write for logical `data`.

    The entity's fixed values come along so that a shared table tells its kinds apart; columns NET
    Genium fills itself, and files columns (written through uploads), are left out.
    """
    values: dict[str, Any] = dict(entity.fixed_values())
    for logical, value in data.items():
        column = entity.column(logical)
        if column.auto or column.type == "files":
            continue
        values[column.name] = column_value(logical, column, value)
    return values


def base_filter(entity: EntityMap) -> f.Filter:
    """The entity's fixed values as a filter, so a query on a shared table sees only this kind."""
    return f.all_of(f.eq(name, value) for name, value in entity.fixed_values().items())


def contact_from_record(entity: EntityMap, record: dict[str, Any]) -> NgContact:
    """A contact as the core compares it: the address normalized, a company only when it is an id."""
    return NgContact(
        id=record["id"],
        email=normalize_address(record.get(entity.column("email").name)),
        company_id=_int_or_none(record.get(entity.column("company").name)),
    )


def user_columns(entity: EntityMap) -> list[str]:
    """The columns a user is read with, so no query fetches more than `user_from_record` needs."""
    return ["id", entity.column("email").name, entity.column("name").name]


def user_from_record(entity: EntityMap, record: dict[str, Any]) -> NgUser:
    """A user as the core compares it: the address normalized, a missing name empty."""
    name = record.get(entity.column("name").name)
    return NgUser(
        id=record["id"],
        email=normalize_address(record.get(entity.column("email").name)),
        name=name if isinstance(name, str) else "",
    )


def calendar_from_record(entity: EntityMap, record: dict[str, Any]) -> CalendarActivity:
    """A calendar activity as the sync compares it; one without a valid start and end is refused."""

    def get(logical: str) -> Any:
        return record.get(entity.column(logical).name)

    start = _parse_datetime(get("start"))
    end = _parse_datetime(get("end"))
    if start is None or end is None:
        raise NetGeniumProtocolError(f"calendar activity {record.get('id')} has no valid start/end")
    return CalendarActivity(
        id=record["id"],
        subject=get("subject") or "",
        start=start,
        end=end,
        all_day=bool(get("all_day")),
        location=get("location") or "",
        body=get("body") or "",
        user_id=_int_or_none(get("user")),
        event_id=get("event_id"),
        modified=_parse_datetime(get("modified")),
    )


def message_key(message_id: str) -> str:
    """The exact key of a Message-ID: lower-case hex of its SHA-256, so that no collation folds
    two ids that differ only in case into one, and the key fits any text column of 64."""
    return hashlib.sha256(message_id.strip().encode("utf-8", "surrogatepass")).hexdigest()


def email_activity_values(entity: EntityMap, activity: EmailActivity) -> dict[str, Any]:
    """The record a captured e-mail is stored as; inserts and lookups fit the Message-ID alike."""
    return record_values(
        entity,
        {
            "subject": activity.subject,
            "body_text": activity.body_text,
            "body_html": activity.body_html,
            "direction": activity.direction,
            "date": activity.date,
            "message_id": activity.message_id,
            "message_key": message_key(activity.message_id),
            "conversation_id": activity.conversation_id,
            "contact": activity.contact_id,
            "company": activity.company_id,
            "user": activity.user_id,
            "order": activity.order_id,
        },
    )


def calendar_activity_values(entity: EntityMap, activity: CalendarActivity) -> dict[str, Any]:
    """The record a calendar activity is written as; an insert and an update write the same."""
    return record_values(
        entity,
        {
            "subject": activity.subject,
            "start": activity.start,
            "end": activity.end,
            "all_day": activity.all_day,
            "location": activity.location,
            "body": activity.body,
            "user": activity.user_id,
            "event_id": activity.event_id,
        },
    )
