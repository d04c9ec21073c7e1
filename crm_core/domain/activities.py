"""The activities the service writes to NET Genium, as the core and the use cases see them.

They carry no table or column names (the NET Genium adapter's schema map owns those), so that the
use cases can build them without knowing the adapter, and a test fake can take them as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["incoming", "outgoing"]


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
