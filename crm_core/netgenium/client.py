"""The NET Genium client: the operations the service needs, named for the domain, over the schema map.

Everything the service writes to NET Genium goes through here. The HTTP half (timeouts, bounded
retries, typed errors, paging, which writes may be repeated) is `transport.py`; this half knows the
installation's tables and columns only through the schema map, and keeps the rest of "never lose,
never duplicate a customer e-mail" at the NET Genium edge:

- an insert is declared repeatable only when a unique column (the Message-ID, the Outlook event id)
  turns a second insert into a 409, which the client resolves to the record that exists; without
  such a column, a lookup by the key comes first;
- attachments that a stored activity holds already are not uploaded again;
- values are made to fit their columns (`fit.py`) instead of being refused by SQL Server.

The client owns its transport (one pooled `httpx.AsyncClient`); create one instance per process and
close it (`aclose()` or `async with`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx
from pydantic import SecretStr

from crm_core.domain.addresses import normalize_address
from crm_core.netgenium import filters as f
from crm_core.netgenium.calendar import CalendarActivities
from crm_core.netgenium.errors import NetGeniumConflict, NetGeniumRejected
from crm_core.netgenium.fit import fit_filename, fit_identifier, fit_text
from crm_core.netgenium.mapping import (
    base_filter,
    contact_from_record,
    email_activity_values,
    message_key,
    user_columns,
    user_from_record,
)
from crm_core.netgenium.models import (
    Attachment,
    EmailActivity,
    NgContact,
    NgOrder,
    NgUser,
    StoredFile,
    TableInfo,
)
from crm_core.netgenium.retry import RetryPolicy
from crm_core.netgenium.schema_map import EntityMap, SchemaMap, load_schema_map
from crm_core.netgenium.transport import NetGeniumTransport, RecordTransport

if TYPE_CHECKING:
    from crm_core.domain.settings import Settings

logger = logging.getLogger(__name__)


class NetGeniumClient(CalendarActivities):
    """The NET Genium record API (contract: openapi.yaml) with the schema map applied."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        api_key_header: str = "X-Api-Key",
        schema_map: SchemaMap | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        page_size: int = 500,
        max_in_values: int = 100,
        max_filter_chars: int = 1500,
        max_attachment_bytes: int = 25 * 1024 * 1024,
        max_connections: int = 20,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        http = NetGeniumTransport(
            base_url,
            api_key,
            api_key_header=api_key_header,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry,
            page_size=page_size,
            max_connections=max_connections,
            sleep=sleep,
            transport=transport,
        )
        self._configure(http, schema_map, max_in_values, max_filter_chars, max_attachment_bytes)

    def _configure(
        self,
        transport: RecordTransport,
        schema_map: SchemaMap | None,
        max_in_values: int,
        max_filter_chars: int,
        max_attachment_bytes: int,
    ) -> None:
        self.transport: RecordTransport = transport
        self.schema_map = schema_map or load_schema_map(None)
        self.max_in_values = min(max_in_values, 500)
        self.max_filter_chars = max_filter_chars
        self.max_attachment_bytes = max_attachment_bytes

    @classmethod
    def over(
        cls,
        transport: RecordTransport,
        *,
        schema_map: SchemaMap | None = None,
        max_in_values: int = 100,
        max_filter_chars: int = 1500,
        max_attachment_bytes: int = 25 * 1024 * 1024,
    ) -> NetGeniumClient:
        """The client over a record transport other than HTTP (direct mode's store in this process)."""
        client = cls.__new__(cls)
        client._configure(transport, schema_map, max_in_values, max_filter_chars, max_attachment_bytes)
        return client

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> NetGeniumClient:
        """The client the app uses, configured from its app settings (NETGENIUM_*): the record API
        over HTTP at NETGENIUM_BASE_URL, or, in direct mode (NETGENIUM_DATABASE_URL), the bridge's
        store in this process, imported only then (it brings SQLAlchemy and a database driver)."""
        schema_map = load_schema_map(settings.netgenium_schema_map)
        if settings.netgenium_database_url.get_secret_value():
            from crm_core.netgenium.direct import StoreTransport

            direct = StoreTransport.from_settings(settings, schema_map, **options)
            return cls.over(direct, schema_map=schema_map)
        return cls(
            settings.netgenium_base_url,
            settings.netgenium_api_key,
            api_key_header=settings.netgenium_api_key_header,
            schema_map=schema_map,
            **options,
        )

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    @property
    def api_key_header(self) -> str:
        return self.transport.api_key_header

    @property
    def retry(self) -> RetryPolicy:
        return self.transport.retry

    @property
    def page_size(self) -> int:
        return self.transport.page_size

    async def aclose(self) -> None:
        """Close the transport's pooled connections."""
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- the record API, as the transport offers it ------------------------------------------
    # Kept on the client so that a caller (the schema check, a test, a script) needs one object.

    async def health(self) -> dict[str, Any]:
        return await self.transport.health()

    async def get_table(self, table: str) -> TableInfo:
        return await self.transport.get_table(table)

    def iter_records(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        return self.transport.iter_records(table, filter, columns=columns, orderby=orderby, page_size=page_size)

    async def query(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
    ) -> list[dict[str, Any]]:
        return await self.transport.query(table, filter, columns=columns, orderby=orderby)

    async def get_record(self, table: str, record_id: int, *, columns: Sequence[str] | None = None) -> dict[str, Any]:
        return await self.transport.get_record(table, record_id, columns=columns)

    async def insert(self, table: str, values: dict[str, Any], *, repeatable: bool = False) -> int:
        return await self.transport.insert(table, values, repeatable=repeatable)

    async def update(self, table: str, record_id: int, values: dict[str, Any]) -> None:
        await self.transport.update(table, record_id, values)

    async def delete(self, table: str, record_id: int) -> None:
        await self.transport.delete(table, record_id)

    async def attach_file(self, table: str, record_id: int, column: str, filename: str, content: bytes) -> StoredFile:
        return await self.transport.attach_file(table, record_id, column, filename, content)

    async def _find_by_emails(
        self, entity: EntityMap, emails: Iterable[str], columns: list[str]
    ) -> list[dict[str, Any]]:
        wanted = sorted({normalize_address(email) for email in emails} - {""})
        if not wanted:
            return []
        email_column = entity.column("email")
        keys = [fit_text(email, email_column.max_length) for email in wanted]
        found: dict[int, dict[str, Any]] = {}
        for chunk in f.chunked_in(
            email_column.name,
            keys,
            max_values=self.max_in_values,
            max_chars=self.max_filter_chars,
            base=base_filter(entity),
        ):
            async for record in self.transport.iter_records(entity.table, chunk, columns=columns):
                found[record["id"]] = record
        return [found[key] for key in sorted(found)]

    # --- the domain operations --------------------------------------------------------------

    async def find_contacts_by_emails(self, emails: Iterable[str]) -> list[NgContact]:
        """The address-book contacts with any of these addresses (case-insensitive), by id."""
        entity = self.schema_map.contacts
        columns = ["id", entity.column("email").name, entity.column("company").name]
        records = await self._find_by_emails(entity, emails, columns)
        return [contact_from_record(entity, record) for record in records]

    async def find_users_by_emails(self, emails: Iterable[str]) -> list[NgUser]:
        """The information-system users with any of these addresses, by id."""
        entity = self.schema_map.users
        records = await self._find_by_emails(entity, emails, user_columns(entity))
        return [user_from_record(entity, record) for record in records]

    async def list_users(self) -> list[NgUser]:
        """Every user (calendar sync matches them with Microsoft 365 accounts)."""
        entity = self.schema_map.users
        records = await self.transport.query(
            entity.table, base_filter(entity) or None, columns=user_columns(entity), orderby="id"
        )
        return [user_from_record(entity, record) for record in records]

    async def find_order_by_number(self, number: int) -> NgOrder | None:
        """The order with this number (the lowest id if an installation holds duplicates)."""
        entity = self.schema_map.orders
        column = entity.column("number").name
        records = await self.transport.query(
            entity.table,
            base_filter(entity) & f.eq(column, int(number)),
            columns=["id", column],
            orderby="id",
        )
        if not records:
            return None
        if len(records) > 1:
            logger.warning(
                "order number %d is held by %d records; using the first",
                number,
                len(records),
                extra={"order_number": number, "order_ids": [r["id"] for r in records][:10]},
            )
        return NgOrder(id=records[0]["id"], number=int(number))

    async def find_activity_by_message_id(self, message_id: str) -> int | None:
        """The e-mail activity stored for exactly this Internet Message-ID, letter case included.

        Found by the id's exact key, and then held to the id itself (cut the way inserts cut it),
        so that a record of another mail is never taken for this one's.
        """
        entity = self.schema_map.email_activities
        id_column = entity.column("message_id")
        key_column = entity.column("message_key")
        records = await self.transport.query(
            entity.table,
            base_filter(entity) & f.eq(key_column.name, message_key(message_id)),
            columns=["id", id_column.name],
            orderby="id",
        )
        wanted = fit_identifier(message_id.strip(), id_column.max_length)
        for record in records:
            if record.get(id_column.name) == wanted:
                return int(record["id"])
        if records:
            logger.warning(
                "an activity has this mail's key but another Message-ID; not taken for it",
                extra={"activity_id": records[0]["id"]},
            )
        return None

    async def create_email_activity(self, activity: EmailActivity, attachments: Sequence[Attachment] = ()) -> int:
        """Store a captured e-mail with its attachments and return the activity id.

        Idempotent per Message-ID: when the activity exists already (a retried capture, or an
        insert whose answer was lost) its id is returned and only the attachments it lacks are
        added, so a redelivered mail never becomes a second activity.
        """
        entity = self.schema_map.email_activities
        values = email_activity_values(entity, activity)
        try:
            activity_id = await self.transport.insert(entity.table, values, repeatable=True)
            new = True
        except NetGeniumConflict as exc:
            # Only a record of exactly this Message-ID is ours; any other unique column that
            # refused the insert (a Message-ID column still unique under a case-insensitive
            # collation, say) is a conflict an administrator must resolve: never attach to it.
            found = await self.find_activity_by_message_id(activity.message_id)
            if found is None:
                raise NetGeniumConflict(
                    f"NET Genium refused the activity of {activity.message_id} as a duplicate of a record that "
                    "is not this mail's (is a column other than the message key unique?): "
                    f"{exc}",
                    status=exc.status,
                    code=exc.code,
                ) from exc
            activity_id, new = found, False
        log_extra = {"message_id": activity.message_id, "activity_id": activity_id}
        if not new:
            logger.info("e-mail activity exists already", extra=log_extra)
        await self._attach_all(entity, activity_id, attachments, existing_record=not new)
        return activity_id

    async def link_conversation_activities(self, conversation_id: str, order_id: int) -> list[int]:
        """Link every e-mail activity of a conversation that has no order yet to `order_id`.

        For replies stored before the mail that named the order; an activity linked to another
        order (a salesperson's correction, or another order named) keeps it.
        """
        entity = self.schema_map.email_activities
        conversation = entity.column("conversation_id")
        order = entity.column("order")
        records = await self.transport.query(
            entity.table,
            base_filter(entity) & f.eq(conversation.name, fit_identifier(conversation_id, conversation.max_length)),
            columns=["id", order.name],
            orderby="id",
        )
        linked = [int(r["id"]) for r in records if r.get(order.name) is None]
        for activity_id in linked:
            await self.transport.update(entity.table, activity_id, {order.name: order_id})
        return linked

    async def add_missing_attachments(self, activity_id: int, attachments: Sequence[Attachment]) -> None:
        """Finish an e-mail activity another worker began: store the files it does not hold yet."""
        await self._attach_all(self.schema_map.email_activities, activity_id, attachments, existing_record=True)

    async def _attach_all(
        self,
        entity: EntityMap,
        record_id: int,
        attachments: Sequence[Attachment],
        *,
        existing_record: bool,
    ) -> None:
        if not attachments:
            return
        column = entity.column("attachments").name
        present: set[str] = set()
        if existing_record:
            record = await self.transport.get_record(entity.table, record_id, columns=["id", column])
            for item in record.get(column) or []:
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    present.add(item["filename"].lower())
        taken: set[str] = set()
        for attachment in attachments:
            name = fit_filename(attachment.filename, taken)
            extra = {"activity_id": record_id, "attachment": name, "size": len(attachment.content)}
            if name.lower() in present:
                continue
            if len(attachment.content) > self.max_attachment_bytes:
                logger.warning("attachment too large for NET Genium, not stored", extra=extra)
                continue
            try:
                await self.transport.attach_file(entity.table, record_id, column, name, attachment.content)
            except NetGeniumRejected as exc:
                if exc.status != 413:
                    raise
                logger.warning("NET Genium refused the attachment as too large", extra=extra)
