"""Plain data the Graph adapter hands to use cases (no SDK types leak past the adapter).

Messages are `crm_core.domain.mail.GraphMessage`; this module adds what the other operations return:
directory users, file attachments, delta rounds, calendar events, subscriptions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from crm_core.domain.calendar_users import account
from crm_core.domain.mail import GraphMessage, ItemBody

# The single-value extended property that carries the NET Genium activity id on an Outlook event.
# The GUID is CRMService's own property set; the name makes the property readable in MFCMapi.
ACTIVITY_PROPERTY_SET = "{6c1c5a43-2b8e-4b57-9a0c-3f5e2d9b7c41}"
ACTIVITY_PROPERTY_ID = f"String {ACTIVITY_PROPERTY_SET} Name NetGeniumActivityId"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class DirectoryUser(_Model):
    """A Microsoft 365 user, with every address calendar sync may match a NET Genium user by."""

    id: str
    mail: str | None = None
    user_principal_name: str | None = Field(default=None, alias="userPrincipalName")
    proxy_addresses: list[str] = Field(default_factory=list, alias="proxyAddresses")

    @field_validator("proxy_addresses", mode="before")
    @classmethod
    def _none_to_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    def addresses(self) -> list[str]:
        """`mail`, `userPrincipalName` and the SMTP proxy addresses, normalized, without repeats
        (the matching rule of `crm_core.domain.calendar_users.account`)."""
        return list(account(self.id, self.mail, self.user_principal_name, self.proxy_addresses).addresses)


class FileAttachment(_Model):
    """A file attached to a message; `content` is None when it was larger than the limit."""

    id: str
    name: str
    content_type: str | None = None
    size: int = 0
    is_inline: bool = False
    content: bytes | None = None

    @property
    def skipped(self) -> bool:
        return self.content is None


class MessageDeltaPage(BaseModel):
    """One page of a delta (message or calendarView) as Graph sends it; items stay JSON until read."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    value: list[dict[str, Any]] = Field(default_factory=list)
    next_link: str | None = Field(default=None, alias="@odata.nextLink")
    delta_link: str | None = Field(default=None, alias="@odata.deltaLink")


class DeltaPage(_Model):
    """One page of a folder's message delta, sorted for the caller.

    `messages` are full items; `hints` are ids of items too partial to decide on; `next_link`
    continues this round, `delta_link` (on the last page) starts the next one.
    """

    messages: list[GraphMessage] = Field(default_factory=list)
    hints: list[str] = Field(default_factory=list)
    removed_ids: list[str] = Field(default_factory=list)
    next_link: str | None = None
    delta_link: str | None = None
    requests: int = 1


class MessagePage(_Model):
    """One page of a folder's messages listed by received time (the backfill's reading):
    `next_link` continues the listing, None on the last page."""

    messages: list[GraphMessage] = Field(default_factory=list)
    next_link: str | None = None
    requests: int = 1


class DateTimeTimeZone(_Model):
    """Graph's `dateTimeTimeZone`: a wall-clock time and the zone it is in (UTC in our requests)."""

    date_time: str = Field(alias="dateTime")
    time_zone: str = Field(default="UTC", alias="timeZone")

    def as_utc(self) -> datetime:
        """The instant, for a UTC zone (what the adapter asks Graph for); naive values are UTC."""
        text = self.date_time
        if "." in text:
            head, _, fraction = text.partition(".")
            digits = "".join(ch for ch in fraction if ch.isdigit())[:6]
            rest = fraction[len("".join(ch for ch in fraction if ch.isdigit())) :]
            text = f"{head}.{digits}{rest}"
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ExtendedProperty(_Model):
    id: str
    value: str | None = None


class GraphEvent(_Model):
    """An Outlook event as calendar sync reads it."""

    id: str
    subject: str | None = None
    body: ItemBody | None = None
    start: DateTimeTimeZone | None = None
    end: DateTimeTimeZone | None = None
    is_all_day: bool | None = Field(default=None, alias="isAllDay")
    is_cancelled: bool | None = Field(default=None, alias="isCancelled")
    sensitivity: str | None = None
    type: str | None = None
    series_master_id: str | None = Field(default=None, alias="seriesMasterId")
    transaction_id: str | None = Field(default=None, alias="transactionId")
    change_key: str | None = Field(default=None, alias="changeKey")
    last_modified_date_time: str | None = Field(
        default=None, validation_alias=AliasChoices("lastModifiedDateTime", "last_modified_date_time")
    )
    location: dict[str, Any] | None = None
    single_value_extended_properties: list[ExtendedProperty] = Field(
        default_factory=list, alias="singleValueExtendedProperties"
    )

    @field_validator("single_value_extended_properties", mode="before")
    @classmethod
    def _none_to_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def activity_id(self) -> str | None:
        """The NET Genium activity id this event was created for, when it carries one."""
        wanted = ACTIVITY_PROPERTY_ID.lower()
        for prop in self.single_value_extended_properties:
            if prop.id.lower() == wanted:
                return prop.value
        return None

    @property
    def location_name(self) -> str | None:
        if not self.location:
            return None
        name = self.location.get("displayName")
        return str(name) if name else None


class EventDelta(_Model):
    """One `calendarView/delta` round for a user's window."""

    events: list[GraphEvent] = Field(default_factory=list)
    removed_ids: list[str] = Field(default_factory=list)
    delta_link: str
    requests: int = 0


class EventDraft(_Model):
    """The fields calendar sync writes to Outlook; times are aware datetimes, sent as UTC."""

    subject: str
    start: datetime
    end: datetime
    body: str = ""
    body_is_html: bool = False
    is_all_day: bool = False
    location: str | None = None
    # Only start, end and isAllDay are written (a private event keeps its own subject and body).
    times_only: bool = False

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expected a timezone-aware datetime")
        return value


class SubscriptionInfo(_Model):
    """A Graph subscription as the upkeep use case tracks it."""

    id: str
    resource: str
    change_type: str = Field(alias="changeType")
    notification_url: str = Field(alias="notificationUrl")
    lifecycle_notification_url: str | None = Field(default=None, alias="lifecycleNotificationUrl")
    expiration_date_time: datetime = Field(alias="expirationDateTime")
    client_state: str | None = Field(default=None, alias="clientState", repr=False)
