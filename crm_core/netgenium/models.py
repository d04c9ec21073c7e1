"""What the NET Genium adapter hands to the core and takes from it, and the API's own payloads.

The records it reads (NgUser, NgContact, NgOrder) and the activities it writes (EmailActivity,
CalendarActivity, Attachment: core types of `crm_core.domain.activities`, named here too) are what the use
cases see; they never carry table or column names, which belong to the schema map. The API models
(RecordsPage, Created, TableInfo, ...) check that an answer is what the contract promises before
any value of it is used.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

# The core's activity types, named here too because this adapter writes them.
from crm_core.domain.activities import Attachment as Attachment
from crm_core.domain.activities import CalendarActivity as CalendarActivity
from crm_core.domain.activities import Direction as Direction
from crm_core.domain.activities import EmailActivity as EmailActivity


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
