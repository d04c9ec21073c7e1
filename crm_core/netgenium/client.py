"""The async NET Genium record API client: the operations the service needs, named for the domain.

Everything the service writes to NET Genium goes through here, so this is where "never lose, never
duplicate a customer e-mail" is kept at the NET Genium edge:

- every request has a timeout and a bounded retry (`crm_core.netgenium.retry`) on 429/502/503/504 and on
  connection errors and timeouts, honouring `Retry-After`; other 4xx are not retried;
- a write that may already have been carried out (no answer, or a gateway error) is repeated only
  when repeating is harmless: updates, deletes and file uploads (which replace a file of the same
  name) always; inserts only when a unique column (the Message-ID, the Outlook event id) turns a
  second insert into a 409, which the client resolves to the record that exists;
- values are made to fit their columns (`fit.py`) instead of being refused by SQL Server.

One pooled `httpx.AsyncClient` per instance; create one instance per process and close it
(`aclose()` or `async with`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from crm_core.domain.addresses import normalize_address
from crm_core.domain.errors import parse_retry_after
from crm_core.netgenium import filters as f
from crm_core.netgenium.errors import (
    NetGeniumAuthError,
    NetGeniumConflict,
    NetGeniumNotFound,
    NetGeniumProtocolError,
    NetGeniumRejected,
    NetGeniumUnavailable,
)
from crm_core.netgenium.fit import fit_filename, fit_identifier, fit_text
from crm_core.netgenium.models import (
    Attachment,
    CalendarActivity,
    Created,
    EmailActivity,
    ErrorBody,
    NgContact,
    NgOrder,
    NgUser,
    RecordsPage,
    StoredFile,
    TableInfo,
)
from crm_core.netgenium.retry import RetryPolicy, retry_async
from crm_core.netgenium.schema_map import ColumnMap, EntityMap, SchemaMap, load_schema_map

if TYPE_CHECKING:
    from crm_core.domain.settings import Settings

logger = logging.getLogger(__name__)

API = "/api/v1"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Statuses after which the contract guarantees nothing was done (so even an insert may be repeated).
NOT_CARRIED_OUT = frozenset({429, 503})
IDENTIFIER_COLUMNS = frozenset({"message_id", "conversation_id", "event_id"})

M = TypeVar("M", bound=BaseModel)


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


class NetGeniumClient:
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
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an absolute http(s) URL, got {base_url!r}")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("the NET Genium API needs https (http is allowed on loopback only)")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be 1..1000 (the contract's `top` limit)")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.base_url = base_url.strip().rstrip("/")
        self.api_key_header = api_key_header
        self.schema_map = schema_map or load_schema_map(None)
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.max_in_values = min(max_in_values, 500)
        self.max_filter_chars = max_filter_chars
        self.max_attachment_bytes = max_attachment_bytes
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={api_key_header: key, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> NetGeniumClient:
        """The client the app uses, configured from its app settings (NETGENIUM_*)."""
        return cls(
            settings.netgenium_base_url,
            settings.netgenium_api_key,
            api_key_header=settings.netgenium_api_key_header,
            schema_map=load_schema_map(settings.netgenium_schema_map),
            **options,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- transport -------------------------------------------------------------------------

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None,
        json: Any,
        content: bytes | None,
        headers: dict[str, str] | None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, path, params=params, json=json, content=content, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NetGeniumUnavailable(f"NET Genium is unreachable ({type(exc).__name__}) for {method} {path}") from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise NetGeniumUnavailable(
                f"no answer from NET Genium ({type(exc).__name__}) for {method} {path}",
                ambiguous=True,
            ) from exc
        if response.is_success:
            return response
        raise self._error(method, path, response)

    def _error(self, method: str, path: str, response: httpx.Response) -> Exception:
        status = response.status_code
        code: str | None = None
        detail = ""
        try:
            body = ErrorBody.model_validate_json(response.content)
            code, detail = body.error.code, body.error.message
        except ValidationError:
            detail = f"(not a contract error body: {response.headers.get('content-type', '?')})"
        what = f"NET Genium answered {status} {code or ''} to {method} {path}: {detail}"
        if status in (401, 403):
            return NetGeniumAuthError(
                f"{what}. Check NETGENIUM_API_KEY and that the API expects the key in the "
                f"{self.api_key_header!r} header (NETGENIUM_API_KEY_HEADER)",
                status=status,
                code=code,
            )
        if status == 404:
            return NetGeniumNotFound(what, status=status, code=code)
        if status == 409:
            return NetGeniumConflict(what, status=status, code=code)
        if status == 429 or status >= 500:
            return NetGeniumUnavailable(
                what,
                status=status,
                code=code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                ambiguous=status not in NOT_CARRIED_OUT,
            )
        return NetGeniumRejected(what, status=status, code=code)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, NetGeniumUnavailable):
                return False
            if exc.status is not None and exc.status not in RETRY_STATUSES:
                return False
            return idempotent or not exc.ambiguous

        def hint(exc: BaseException) -> float | None:
            return exc.retry_after if isinstance(exc, NetGeniumUnavailable) else None

        return await retry_async(
            lambda: self._send_once(method, path, params=params, json=json, content=content, headers=headers),
            policy=self.retry,
            is_retryable=retryable,
            retry_after_of=hint,
            sleep=self._sleep,
            description=f"NET Genium {method} {path}",
        )

    @staticmethod
    def _parse(model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise NetGeniumProtocolError(
                f"NET Genium answered {response.status_code} to {response.request.method} "
                f"{response.request.url.path} with a body the contract does not allow "
                f"({exc.error_count()} problems, e.g. {exc.errors()[0]['msg']})",
                status=response.status_code,
            ) from None

    @staticmethod
    def _records_path(table: str, record_id: int | None = None) -> str:
        path = f"{API}/tables/{quote(table, safe='')}/records"
        return path if record_id is None else f"{path}/{int(record_id)}"

    # --- the record API --------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """The API's health answer (no key needed); raises when it is unreachable."""
        response = await self._request("GET", f"{API}/health")
        data = response.json()
        if not isinstance(data, dict):
            raise NetGeniumProtocolError("the health answer is not a JSON object")
        return data

    async def get_table(self, table: str) -> TableInfo:
        """A table's columns with types and lengths, as `crmservice netgenium check` compares them."""
        response = await self._request("GET", f"{API}/tables/{quote(table, safe='')}")
        return self._parse(TableInfo, response)

    async def iter_records(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching record, page by page, following the continuation token."""
        params: dict[str, str] = {"top": str(page_size or self.page_size)}
        if filter:
            params["filter"] = filter.text()
        if columns:
            params["columns"] = ",".join(columns)
        if orderby:
            params["orderby"] = orderby
        path = self._records_path(table)
        while True:
            page = self._parse(RecordsPage, await self._request("GET", path, params=params))
            for record in page.records:
                yield record
            if not page.continuation:
                return
            params = {**params, "continuation": page.continuation}

    async def query(
        self,
        table: str,
        filter: f.Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        orderby: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every matching record in one list."""
        return [record async for record in self.iter_records(table, filter, columns=columns, orderby=orderby)]

    async def get_record(self, table: str, record_id: int, *, columns: Sequence[str] | None = None) -> dict[str, Any]:
        """One record; NetGeniumNotFound when it does not exist."""
        params = {"columns": ",".join(columns)} if columns else None
        response = await self._request("GET", self._records_path(table, record_id), params=params)
        data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise NetGeniumProtocolError(f"the record {table}/{record_id} is not a JSON object with id")
        return data

    async def insert(self, table: str, values: dict[str, Any], *, repeatable: bool = False) -> int:
        """Insert a record and return its id.

        `repeatable` says a unique column makes a second insert fail with 409 rather than store a
        duplicate, so the insert may be repeated after a lost answer.
        """
        response = await self._request("POST", self._records_path(table), json=values, idempotent=repeatable)
        return self._parse(Created, response).id

    async def update(self, table: str, record_id: int, values: dict[str, Any]) -> None:
        """Change some columns of a record; NetGeniumNotFound when it does not exist."""
        await self._request("PATCH", self._records_path(table, record_id), json=values)

    async def delete(self, table: str, record_id: int) -> None:
        """Delete a record; NetGeniumNotFound when it does not exist."""
        await self._request("DELETE", self._records_path(table, record_id))

    async def attach_file(self, table: str, record_id: int, column: str, filename: str, content: bytes) -> StoredFile:
        """Attach (or replace, by name) a file in a record's files column."""
        response = await self._request(
            "POST",
            self._records_path(table, record_id) + "/files",
            params={"column": column, "filename": filename},
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        return self._parse(StoredFile, response)

    # --- helpers over the schema map --------------------------------------------------------

    def _value(self, logical: str, column: ColumnMap, value: Any) -> Any:
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

    def _values(self, entity: EntityMap, data: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = dict(entity.fixed_values())
        for logical, value in data.items():
            column = entity.column(logical)
            if column.auto or column.type == "files":
                continue
            values[column.name] = self._value(logical, column, value)
        return values

    @staticmethod
    def _base_filter(entity: EntityMap) -> f.Filter:
        return f.all_of(f.eq(name, value) for name, value in entity.fixed_values().items())

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
            base=self._base_filter(entity),
        ):
            async for record in self.iter_records(entity.table, chunk, columns=columns):
                found[record["id"]] = record
        return [found[key] for key in sorted(found)]

    # --- the domain operations --------------------------------------------------------------

    async def find_contacts_by_emails(self, emails: Iterable[str]) -> list[NgContact]:
        """The address-book contacts with any of these addresses (case-insensitive), by id."""
        entity = self.schema_map.contacts
        email, company = entity.column("email").name, entity.column("company").name
        records = await self._find_by_emails(entity, emails, ["id", email, company])
        return [
            NgContact(
                id=r["id"],
                email=normalize_address(r.get(email)),
                company_id=_int_or_none(r.get(company)),
            )
            for r in records
        ]

    def _user(self, record: dict[str, Any]) -> NgUser:
        entity = self.schema_map.users
        name = record.get(entity.column("name").name)
        return NgUser(
            id=record["id"],
            email=normalize_address(record.get(entity.column("email").name)),
            name=name if isinstance(name, str) else "",
        )

    def _user_columns(self) -> list[str]:
        entity = self.schema_map.users
        return ["id", entity.column("email").name, entity.column("name").name]

    async def find_users_by_emails(self, emails: Iterable[str]) -> list[NgUser]:
        """The information-system users with any of these addresses, by id."""
        records = await self._find_by_emails(self.schema_map.users, emails, self._user_columns())
        return [self._user(record) for record in records]

    async def list_users(self) -> list[NgUser]:
        """Every user (calendar sync matches them with Microsoft 365 accounts)."""
        entity = self.schema_map.users
        records = await self.query(
            entity.table, self._base_filter(entity) or None, columns=self._user_columns(), orderby="id"
        )
        return [self._user(record) for record in records]

    async def find_order_by_number(self, number: int) -> NgOrder | None:
        """The order with this number (the lowest id if an installation holds duplicates)."""
        entity = self.schema_map.orders
        column = entity.column("number").name
        records = await self.query(
            entity.table,
            self._base_filter(entity) & f.eq(column, int(number)),
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
        """The e-mail activity stored for this Internet Message-ID (cut the way inserts cut it)."""
        entity = self.schema_map.email_activities
        column = entity.column("message_id")
        key = fit_identifier(message_id, column.max_length)
        records = await self.query(
            entity.table,
            self._base_filter(entity) & f.eq(column.name, key),
            columns=["id"],
            orderby="id",
        )
        return records[0]["id"] if records else None

    async def create_email_activity(self, activity: EmailActivity, attachments: Sequence[Attachment] = ()) -> int:
        """Store a captured e-mail with its attachments and return the activity id.

        Idempotent per Message-ID: when the activity exists already (a retried capture, or an
        insert whose answer was lost) its id is returned and only the attachments it lacks are
        added, so a redelivered mail never becomes a second activity.
        """
        entity = self.schema_map.email_activities
        message_column = entity.column("message_id")
        values = self._values(
            entity,
            {
                "subject": activity.subject,
                "body_text": activity.body_text,
                "body_html": activity.body_html,
                "direction": activity.direction,
                "date": activity.date,
                "message_id": activity.message_id,
                "conversation_id": activity.conversation_id,
                "contact": activity.contact_id,
                "company": activity.company_id,
                "user": activity.user_id,
                "order": activity.order_id,
            },
        )
        existing: int | None = None
        if not message_column.unique:
            # Without a unique column, a lookup is the only guard against a second activity.
            existing = await self.find_activity_by_message_id(activity.message_id)
        if existing is None:
            try:
                activity_id = await self.insert(entity.table, values, repeatable=message_column.unique)
                new = True
            except NetGeniumConflict:
                found = await self.find_activity_by_message_id(activity.message_id)
                if found is None:
                    raise
                activity_id, new = found, False
        else:
            activity_id, new = existing, False
        log_extra = {"message_id": activity.message_id, "activity_id": activity_id}
        if not new:
            logger.info("e-mail activity exists already", extra=log_extra)
        await self._attach_all(entity, activity_id, attachments, existing_record=not new)
        return activity_id

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
            record = await self.get_record(entity.table, record_id, columns=["id", column])
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
                await self.attach_file(entity.table, record_id, column, name, attachment.content)
            except NetGeniumRejected as exc:
                if exc.status != 413:
                    raise
                logger.warning("NET Genium refused the attachment as too large", extra=extra)

    def _calendar(self, record: dict[str, Any]) -> CalendarActivity:
        entity = self.schema_map.calendar_activities

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

    async def find_calendar_activity_by_event_id(self, event_id: str) -> int | None:
        """The calendar activity that mirrors this Outlook event, if any."""
        entity = self.schema_map.calendar_activities
        column = entity.column("event_id")
        records = await self.query(
            entity.table,
            self._base_filter(entity) & f.eq(column.name, fit_identifier(event_id, column.max_length)),
            columns=["id"],
            orderby="id",
        )
        return records[0]["id"] if records else None

    async def upsert_calendar_activity(self, activity: CalendarActivity) -> int:
        """Write a calendar activity: by its id when known, else by its Outlook event id.

        An id that no longer exists raises NetGeniumNotFound: the activity was deleted in NET
        Genium, and whether to recreate it is the sync's decision, not the adapter's.
        """
        entity = self.schema_map.calendar_activities
        values = self._values(
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
        if activity.id is not None:
            await self.update(entity.table, activity.id, values)
            return activity.id
        event_column = entity.column("event_id")
        if activity.event_id:
            found = await self.find_calendar_activity_by_event_id(activity.event_id)
            if found is not None:
                await self.update(entity.table, found, values)
                return found
        try:
            return await self.insert(entity.table, values, repeatable=event_column.unique and bool(activity.event_id))
        except NetGeniumConflict:
            if not activity.event_id:
                raise
            found = await self.find_calendar_activity_by_event_id(activity.event_id)
            if found is None:
                raise
            await self.update(entity.table, found, values)
            return found

    async def delete_calendar_activity(self, activity_id: int) -> bool:
        """Delete a calendar activity; False when it is gone already (deletes are idempotent).

        The record is read first when the table is shared, so a wrong id can never delete an
        e-mail activity.
        """
        entity = self.schema_map.calendar_activities
        fixed = entity.fixed_values()
        try:
            if fixed:
                record = await self.get_record(entity.table, activity_id, columns=["id", *fixed])
                if any(record.get(name) != value for name, value in fixed.items()):
                    raise NetGeniumRejected(f"record {activity_id} of {entity.table} is not a calendar activity")
            await self.delete(entity.table, activity_id)
        except NetGeniumNotFound:
            return False
        return True

    async def list_calendar_activities_modified_since(self, watermark: datetime) -> list[CalendarActivity]:
        """Calendar activities modified at or after `watermark`, oldest change first.

        `ge` rather than `gt`: an activity saved in the same millisecond as the watermark is read
        again rather than missed; the sync drops such repeats by their fingerprint.
        """
        entity = self.schema_map.calendar_activities
        modified = entity.column("modified").name
        records = await self.query(
            entity.table,
            self._base_filter(entity) & f.ge(modified, watermark),
            columns=["id", *(column.name for column in entity.columns.values())],
            orderby=f"{modified} asc,id asc",
        )
        return [self._calendar(record) for record in records]
