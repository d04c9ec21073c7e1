"""What the NET Genium adapter hands to the core and takes from it, and the API's own payloads.

The domain models (NgUser, NgContact, NgOrder, EmailActivity, CalendarActivity) are what the use
cases see; they never carry table or column names, which belong to the schema map. The API models
(RecordsPage, Created, TableInfo, ...) check that an answer is what the contract promises before
any value of it is used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["incoming", "outgoing"]


class NgUser(BaseModel):
    """An information-system user; `email` is in normal form (lower case, trimmed)."""

    model_config = ConfigDict(frozen=True)

    id: int
    email: str
    name: str = ""


class NgContact(BaseModel):
    """An address-book contact; `email` is in normal form."""

    model_config = ConfigDict(frozen=True)

    id: int
    email: str
    company_id: int | None = None


class NgOrder(BaseModel):
    """An order, found by the number a mail names (`Order:4`)."""

    model_config = ConfigDict(frozen=True)

    id: int
    number: int


class EmailActivity(BaseModel):
    """A captured e-mail as it becomes an activity; `body_html` is already sanitized by the caller."""

    model_config = ConfigDict(frozen=True)

    subject: str = ""
    body_text: str = ""
    body_html: str = ""
    direction: Direction
    date: datetime
    message_id: str = Field(min_length=1)
    conversation_id: str | None = None
    contact_id: int | None = None
    company_id: int | None = None
    user_id: int | None = None
    order_id: int | None = None


class Attachment(BaseModel):
    """A file of a captured e-mail."""

    model_config = ConfigDict(frozen=True)

    filename: str
    content: bytes
    content_type: str | None = None


class CalendarActivity(BaseModel):
    """A calendar activity; `id` is None until it exists in NET Genium, `modified` is read-only."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    subject: str = ""
    start: datetime
    end: datetime
    all_day: bool = False
    location: str = ""
    body: str = ""
    user_id: int | None = None
    event_id: str | None = None
    modified: datetime | None = None


# The record API's payloads (see openapi.yaml).


class ErrorDetail(BaseModel):
    """`error` of an error answer."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer of the contract: `{"error": {"code": ..., "message": ...}}`."""

    error: ErrorDetail


class RecordsPage(BaseModel):
    """One page of a query; `continuation` fetches the next page, None on the last."""

    records: list[dict[str, Any]]
    continuation: str | None = None


class Created(BaseModel):
    """The answer to an insert or update."""

    id: int


class StoredFile(BaseModel):
    """A file attached to a record's files column."""

    file_id: int
    filename: str
    size: int


class ColumnInfo(BaseModel):
    """A column as the metadata endpoint describes it."""

    name: str
    type: str
    max_length: int | None = None
    nullable: bool = True
    unique: bool = False
    system: bool = False


class TableInfo(BaseModel):
    """The answer of `GET /api/v1/tables/{table}`."""

    table: str
    columns: list[ColumnInfo]
