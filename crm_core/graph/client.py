"""The Microsoft Graph adapter: msgraph-sdk behind operations named for what CRMService does.

Why it is built the way it is:

- The SDK's `GraphServiceClient` does the HTTP, auth, JSON and error parsing; every answer is read
  by its own deserializers, so an answer the SDK cannot read fails here, in the emulator tests, and
  not in production.
- The httpx client comes from `GraphClientFactory.create_with_default_middleware`: passing a bare
  client would drop the SDK's retry (429/503/504 with Retry-After) and redirect middleware. The
  number of retries is bounded, and every operation has an overall deadline, so a 429 storm ends in
  `GraphUnavailable` (retryable, with Graph's Retry-After) instead of holding a function hostage.
- Graph allows 4 concurrent requests per mailbox per app; more are answered 429 `MailboxConcurrency`.
  The adapter keeps at most 4 in flight per mailbox itself.
- Ids are immutable (`Prefer: IdType="ImmutableId"`) so a message moved between folders keeps its id
  in the ledger, and `$select` asks for exactly the fields the core reads.
- The SDK (msgraph, kiota, azure-identity) is imported inside functions only: importing this module
  is cheap, and a Functions cold start that only parses a notification never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from crm_core.domain.errors import parse_retry_after
from crm_core.domain.mail import GraphMessage
from crm_core.domain.settings import GraphAuth, Settings
from crm_core.graph.errors import (
    FullResyncNeeded,
    GraphAccessDenied,
    GraphNotFound,
    GraphRejected,
    GraphUnavailable,
)
from crm_core.graph.models import (
    ACTIVITY_PROPERTY_ID,
    DirectoryUser,
    EventDelta,
    EventDraft,
    ExtendedProperty,
    FileAttachment,
    GraphEvent,
    MessageDelta,
    MessageDeltaPage,
    SubscriptionInfo,
)

T = TypeVar("T")

# The message fields crm_core.domain.mail.GraphMessage reads (`@odata.type` always comes with the item).
MESSAGE_FIELDS = (
    "id",
    "internetMessageId",
    "conversationId",
    "subject",
    "body",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "internetMessageHeaders",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
)
USER_FIELDS = ("id", "mail", "userPrincipalName", "proxyAddresses")
ATTACHMENT_FIELDS = ("id", "name", "contentType", "size", "isInline")
IMMUTABLE_IDS = 'IdType="ImmutableId"'
# Graph's longest lifetime for a subscription to Outlook messages or events.
MAX_OUTLOOK_SUBSCRIPTION_MINUTES = 10_080
# Error codes with which Outlook says a delta token is no longer usable.
_RESYNC_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired", "invaliddeltatoken"})
_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"


@dataclass(frozen=True)
class GraphOptions:
    """Limits of the adapter; the defaults suit a Functions host, tests shrink the delays."""

    max_retries: int = 3
    """Retries the SDK makes on 429/503/504 after the first attempt (kiota allows 0..10)."""
    retry_base_delay: float = 1.0
    """Seconds added to the SDK's exponential backoff when Graph sent no Retry-After."""
    request_timeout: float = 30.0
    """Seconds one HTTP request may take."""
    operation_timeout: float = 120.0
    """Seconds one operation may take in all, retries and Retry-After waits included."""
    mailbox_concurrency: int = 4
    """Requests in flight per mailbox (Graph's own limit is 4)."""
    delta_page_size: int = 200
    """`Prefer: odata.maxpagesize` for delta rounds."""
    attachment_max_bytes: int = 25 * 1024 * 1024
    """File attachments larger than this are listed without their bytes."""


class StaticTokenCredential:
    """An async token credential that always returns one fixed token (the Graph emulator's).

    Settings refuse `GRAPH_AUTH=static_token` unless `GRAPH_BASE_URL` is on loopback.
    """

    def __init__(self, token: str, lifetime: int = 3600) -> None:
        self._token = token
        self._lifetime = lifetime

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + self._lifetime)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        return None


def create_credential(settings: Settings) -> Any:
    """The azure-identity async credential that `GRAPH_AUTH` names."""
    if settings.graph_auth is GraphAuth.STATIC_TOKEN:
        return StaticTokenCredential(settings.graph_static_token.get_secret_value())
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    if settings.graph_auth is GraphAuth.CLIENT_SECRET:
        return ClientSecretCredential(
            settings.graph_tenant_id, settings.graph_client_id, settings.graph_client_secret.get_secret_value()
        )
    if settings.graph_auth is GraphAuth.CERTIFICATE:
        return CertificateCredential(
            settings.graph_tenant_id, settings.graph_client_id, certificate_path=settings.graph_certificate_path
        )
    return ManagedIdentityCredential(client_id=settings.graph_client_id or None)


def _scope_for(base_url: str) -> str:
    host = urlsplit(base_url).hostname or "graph.microsoft.com"
    if host.endswith((".microsoft.com", ".microsoftgraph.us", ".microsoftgraph.chinacloudapi.cn", ".microsoft.us")):
        return f"https://{host}/.default"
    return _DEFAULT_SCOPE


def create_graph_service_client(
    settings: Settings, options: GraphOptions | None = None, *, credential: Any = None
) -> Any:
    """A `GraphServiceClient` on `GRAPH_BASE_URL` with the SDK's default middleware kept."""
    import httpx
    from kiota_http.middleware.options import RetryHandlerOption, UrlReplaceHandlerOption
    from msgraph._version import VERSION
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import APIVersion, GraphClientFactory
    from msgraph_core.authentication import AzureIdentityAuthenticationProvider
    from msgraph_core.middleware.options import GraphTelemetryHandlerOption

    opts = options or GraphOptions()
    credential = credential if credential is not None else create_credential(settings)
    base_url = settings.graph_base_url.rstrip("/")
    host = urlsplit(base_url).hostname or "graph.microsoft.com"
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[_scope_for(base_url)], allowed_hosts=[host])
    middleware_options = {
        RetryHandlerOption.get_key(): RetryHandlerOption(
            delay=opts.retry_base_delay, max_retries=opts.max_retries, should_retry=opts.max_retries > 0
        ),
        UrlReplaceHandlerOption.get_key(): UrlReplaceHandlerOption(
            enabled=True, replacement_pairs={"/users/me-token-to-replace": "/me"}
        ),
        GraphTelemetryHandlerOption.get_key(): GraphTelemetryHandlerOption(
            api_version=APIVersion.v1, sdk_version=VERSION
        ),
    }
    http_client = httpx.AsyncClient(
        timeout=httpx.Timeout(opts.request_timeout, connect=min(10.0, opts.request_timeout)), http2=True
    )
    http_client = GraphClientFactory.create_with_default_middleware(client=http_client, options=middleware_options)
    request_adapter = GraphRequestAdapter(auth, client=http_client)
    request_adapter.base_url = base_url
    return GraphServiceClient(request_adapter=request_adapter)


def create_graph_adapter(settings: Settings, options: GraphOptions | None = None) -> GraphAdapter:
    """The adapter the use cases call; close it with `await adapter.aclose()` (or `async with`)."""
    if options is None:
        limit = getattr(settings, "crm_attachment_max_bytes", None)
        options = GraphOptions(attachment_max_bytes=limit) if isinstance(limit, int) else GraphOptions()
    opts = options
    credential = create_credential(settings)
    client = create_graph_service_client(settings, opts, credential=credential)
    return GraphAdapter(client, opts, credential=credential)


# ---- translation helpers ------------------------------------------------------------------------


def _to_json(parsable: Any) -> dict[str, Any]:
    """An SDK model back to Graph JSON, through kiota's own serializer."""
    from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter

    writer = JsonSerializationWriter()
    writer.write_object_value(None, parsable)
    data = json.loads(writer.get_serialized_content())
    return data if isinstance(data, dict) else {}


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    with contextlib.suppress(AttributeError, TypeError):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    return None


def _retry_after(headers: Any) -> float | None:
    return parse_retry_after(_header(headers, "Retry-After"))


def _translate(operation: str, exc: BaseException, *, delta: bool) -> Exception | None:
    """The adapter's typed error for an SDK, HTTP or credential failure; None if it is none of those."""
    import httpx
    from kiota_abstractions.api_error import APIError

    if isinstance(exc, APIError):
        status = exc.response_status_code
        code, message = "", exc.message or ""
        odata = getattr(exc, "error", None)
        if odata is not None:
            code = str(getattr(odata, "code", "") or "")
            message = str(getattr(odata, "message", "") or message)
        text = f"{operation}: Graph answered {status} {code}: {message}".strip()
        if delta and (status == 410 or code.lower() in _RESYNC_CODES):
            return FullResyncNeeded(text, status=status, code=code)
        if status is not None and (status in (408, 429) or status >= 500):
            return GraphUnavailable(text, retry_after=_retry_after(exc.response_headers), status=status, code=code)
        if status == 404:
            return GraphNotFound(text, status=status, code=code)
        if status in (401, 403):
            return GraphAccessDenied(text, status=status, code=code)
        return GraphRejected(text, status=status, code=code)
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return GraphUnavailable(f"{operation}: {type(exc).__name__} talking to Graph")
    with contextlib.suppress(ImportError):
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        if isinstance(exc, ClientAuthenticationError):
            return GraphAccessDenied(f"{operation}: could not get a Graph token: {type(exc).__name__}")
        if isinstance(exc, ServiceRequestError):
            return GraphUnavailable(f"{operation}: the token endpoint was unreachable")
    return None


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000")


def _removed(item: Any) -> bool:
    extra = getattr(item, "additional_data", None) or {}
    return "@removed" in extra


class GraphAdapter:
    """The Graph operations CRMService uses; every failure is a typed `crm_core.domain.errors` error."""

    def __init__(self, client: Any, options: GraphOptions | None = None, *, credential: Any = None) -> None:
        self.client = client
        self.options = options or GraphOptions()
        self._credential = credential
        self._limits: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> GraphAdapter:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections and the credential's own session."""
        http_client = getattr(getattr(self.client, "request_adapter", None), "_http_client", None)
        if http_client is not None:
            await http_client.aclose()
        close = getattr(self._credential, "close", None)
        if close is not None:
            await close()

    # ---- plumbing ------------------------------------------------------------------------------

    def _limiter(self, mailbox: str | None) -> contextlib.AbstractAsyncContextManager[Any]:
        if mailbox is None or self.options.mailbox_concurrency <= 0:
            return contextlib.nullcontext()
        key = mailbox.strip().lower()
        if key not in self._limits:
            self._limits[key] = asyncio.Semaphore(self.options.mailbox_concurrency)
        return self._limits[key]

    async def _send(
        self, operation: str, mailbox: str | None, call: Callable[[], Awaitable[T]], *, delta: bool = False
    ) -> T:
        try:
            async with asyncio.timeout(self.options.operation_timeout), self._limiter(mailbox):
                return await call()
        except TimeoutError:
            raise GraphUnavailable(
                f"{operation}: no answer from Graph within {self.options.operation_timeout:g} s"
            ) from None
        except Exception as exc:
            translated = _translate(operation, exc, delta=delta)
            if translated is None:
                raise
            raise translated from exc

    def _config(self, query: Any = None, *, prefer: tuple[str, ...] = (IMMUTABLE_IDS,)) -> Any:
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        config: Any = RequestConfiguration(query_parameters=query)
        for value in prefer:
            config.headers.add("Prefer", value)
        return config

    def _user(self, mailbox: str) -> Any:
        return self.client.users.by_user_id(mailbox)

    # ---- mail ----------------------------------------------------------------------------------

    async def get_message(self, mailbox: str, message_id: str) -> GraphMessage:
        """One message with its body and `internetMessageHeaders`, as the capture decision reads it."""
        from msgraph.generated.users.item.messages.item.message_item_request_builder import (
            MessageItemRequestBuilder,
        )

        builder = self._user(mailbox).messages.by_message_id(message_id)
        query = MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(select=list(MESSAGE_FIELDS))
        message = await self._send("getMessage", mailbox, functools.partial(builder.get, self._config(query)))
        if message is None:
            raise GraphNotFound(f"getMessage: Graph returned no message {message_id}")
        return GraphMessage.model_validate(_to_json(message))

    async def list_file_attachments(
        self, mailbox: str, message_id: str, *, max_bytes: int | None = None
    ) -> list[FileAttachment]:
        """The message's file attachments; bytes only for those up to `max_bytes` (others: content None)."""
        from msgraph.generated.models.file_attachment import FileAttachment as SdkFileAttachment
        from msgraph.generated.users.item.messages.item.attachments.attachments_request_builder import (
            AttachmentsRequestBuilder,
        )

        limit = self.options.attachment_max_bytes if max_bytes is None else max_bytes
        builder = self._user(mailbox).messages.by_message_id(message_id).attachments
        query = AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters(select=list(ATTACHMENT_FIELDS))
        page = await self._send("listAttachments", mailbox, functools.partial(builder.get, self._config(query)))
        items: list[Any] = list(page.value or []) if page is not None else []
        while page is not None and page.odata_next_link:
            follow = functools.partial(builder.with_url(page.odata_next_link).get, self._config())
            page = await self._send("listAttachments", mailbox, follow)
            items.extend(page.value or [] if page is not None else [])
        out: list[FileAttachment] = []
        for item in items:
            if not isinstance(item, SdkFileAttachment) or not item.id:
                continue  # item and reference attachments carry no file bytes
            size = int(item.size or 0)
            content: bytes | None = None
            if size <= limit:
                full = await self._send(
                    "getAttachment",
                    mailbox,
                    functools.partial(builder.by_attachment_id(item.id).get, self._config()),
                )
                content = bytes(full.content_bytes or b"") if isinstance(full, SdkFileAttachment) else None
            out.append(
                FileAttachment(
                    id=item.id,
                    name=item.name or "attachment",
                    content_type=item.content_type,
                    size=size,
                    is_inline=bool(item.is_inline),
                    content=content,
                )
            )
        return out

    async def message_delta(
        self, mailbox: str, folder: str = "inbox", delta_link: str | None = None, *, page_size: int | None = None
    ) -> MessageDelta:
        """One delta round of a folder, every page followed to the new `@odata.deltaLink`.

        Without `delta_link` it is a full sync (every message in the folder). Raises FullResyncNeeded
        when Graph no longer knows the link's sync state; the caller then calls again without one.

        The requests go through the SDK (its request builders, auth, retry and redirect middleware),
        but the pages are read as JSON straight into `GraphMessage`: the SDK's object model costs
        about a fifth of a busy worker's CPU for a burst of mail, and the core needs JSON anyway.
        Tests check that the SDK's deserializers read these pages all the same.
        """
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError
        from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import (
            DeltaRequestBuilder,
        )

        size = page_size or self.options.delta_page_size
        prefer = (IMMUTABLE_IDS, f"odata.maxpagesize={size}")
        builder = self._user(mailbox).mail_folders.by_mail_folder_id(folder).messages.delta
        query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=list(MESSAGE_FIELDS))
        adapter = self.client.request_adapter
        messages: dict[str, GraphMessage] = {}
        removed: dict[str, None] = {}
        link, requests = delta_link, 0
        while True:
            request = (
                builder.with_url(link).to_get_request_information(self._config(prefer=prefer))
                if link
                else builder.to_get_request_information(self._config(query, prefer=prefer))
            )
            call = functools.partial(adapter.send_primitive_async, request, "bytes", {"XXX": ODataError})
            raw = await self._send("messageDelta", mailbox, call, delta=True)
            requests += 1
            try:
                page = MessageDeltaPage.model_validate_json(raw or b"{}")
            except ValidationError as exc:
                raise GraphRejected(
                    f"messageDelta: a delta page Graph sent is not readable ({exc.error_count()} errors)"
                ) from None
            for item in page.value:
                item_id = item.get("id")
                if not isinstance(item_id, str) or not item_id:
                    continue
                if "@removed" in item:
                    messages.pop(item_id, None)
                    removed[item_id] = None
                else:
                    removed.pop(item_id, None)
                    messages[item_id] = GraphMessage.model_validate(item)
            if page.next_link:
                link = page.next_link
                continue
            if page.delta_link:
                return MessageDelta(
                    messages=list(messages.values()),
                    removed_ids=list(removed),
                    delta_link=page.delta_link,
                    requests=requests,
                )
            raise GraphRejected("messageDelta: a delta page carried neither @odata.nextLink nor @odata.deltaLink")

    # ---- directory -----------------------------------------------------------------------------

    async def list_users(self) -> list[DirectoryUser]:
        """Every user with `mail`, `userPrincipalName` and `proxyAddresses` (for matching sync users)."""
        from msgraph.generated.users.users_request_builder import UsersRequestBuilder

        builder = self.client.users
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=list(USER_FIELDS), top=999)
        page = await self._send("listUsers", None, functools.partial(builder.get, self._config(query, prefer=())))
        out: list[DirectoryUser] = []
        while page is not None:
            for user in page.value or []:
                if user.id:
                    out.append(
                        DirectoryUser(
                            id=user.id,
                            mail=user.mail,
                            userPrincipalName=user.user_principal_name,
                            proxyAddresses=list(user.proxy_addresses or []),
                        )
                    )
            if not page.odata_next_link:
                break
            follow = functools.partial(builder.with_url(page.odata_next_link).get, self._config(prefer=()))
            page = await self._send("listUsers", None, follow)
        return out

    # ---- subscriptions -------------------------------------------------------------------------

    async def create_subscription(
        self,
        *,
        resource: str,
        notification_url: str,
        lifecycle_notification_url: str | None,
        client_state: str,
        expiration: datetime,
        change_type: str = "created,updated,deleted",
    ) -> SubscriptionInfo:
        """Subscribe; Graph validates both URLs before it answers (our webhook must echo the token)."""
        from msgraph.generated.models.subscription import Subscription

        body = Subscription(
            change_type=change_type,
            notification_url=notification_url,
            lifecycle_notification_url=lifecycle_notification_url,
            resource=resource,
            expiration_date_time=expiration.astimezone(UTC),
            client_state=client_state,
        )
        # The Prefer header makes the notifications' resource ids immutable too.
        created = await self._send(
            "createSubscription", None, functools.partial(self.client.subscriptions.post, body, self._config())
        )
        return self._subscription(created, client_state)

    async def renew_subscription(self, subscription_id: str, expiration: datetime) -> SubscriptionInfo:
        """Move the expiry (PATCH); a 404 means it already expired and must be created anew."""
        from msgraph.generated.models.subscription import Subscription

        body = Subscription(expiration_date_time=expiration.astimezone(UTC))
        builder = self.client.subscriptions.by_subscription_id(subscription_id)
        renewed = await self._send("renewSubscription", None, functools.partial(builder.patch, body))
        return self._subscription(renewed, None)

    async def reauthorize_subscription(self, subscription_id: str) -> None:
        """Answer a `reauthorizationRequired` lifecycle notification."""
        builder = self.client.subscriptions.by_subscription_id(subscription_id).reauthorize
        await self._send("reauthorizeSubscription", None, builder.post)

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Delete; False when Graph no longer had it (expired or removed)."""
        builder = self.client.subscriptions.by_subscription_id(subscription_id)
        try:
            await self._send("deleteSubscription", None, builder.delete)
        except GraphNotFound:
            return False
        return True

    async def list_subscriptions(self) -> list[SubscriptionInfo]:
        """The app's live subscriptions (Graph does not return `clientState` secrets here)."""
        page = await self._send("listSubscriptions", None, self.client.subscriptions.get)
        out: list[SubscriptionInfo] = []
        while page is not None:
            out.extend(self._subscription(item, None) for item in page.value or [])
            if not page.odata_next_link:
                break
            page = await self._send(
                "listSubscriptions", None, self.client.subscriptions.with_url(page.odata_next_link).get
            )
        return out

    @staticmethod
    def _subscription(sdk: Any, client_state: str | None) -> SubscriptionInfo:
        if sdk is None:
            raise GraphRejected("subscription: Graph returned no subscription")
        data = _to_json(sdk)
        if client_state is not None and not data.get("clientState"):
            data["clientState"] = client_state
        return SubscriptionInfo.model_validate(data)

    # ---- calendar ------------------------------------------------------------------------------

    async def event_delta(
        self,
        mailbox: str,
        start: datetime,
        end: datetime,
        delta_link: str | None = None,
        *,
        page_size: int | None = None,
    ) -> EventDelta:
        """One `calendarView/delta` round over [start, end); FullResyncNeeded when the link is dead."""
        from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder

        size = page_size or self.options.delta_page_size
        prefer = (IMMUTABLE_IDS, f"odata.maxpagesize={size}", 'outlook.timezone="UTC"')
        builder = self._user(mailbox).calendar_view.delta
        query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            start_date_time=_iso(start), end_date_time=_iso(end)
        )
        first = functools.partial(builder.get, self._config(query, prefer=prefer))
        events: dict[str, GraphEvent] = {}
        removed: dict[str, None] = {}
        link, requests = delta_link, 0
        while True:
            call = functools.partial(builder.with_url(link).get, self._config(prefer=prefer)) if link else first
            page = await self._send("eventDelta", mailbox, call, delta=True)
            requests += 1
            for item in (page.value or []) if page is not None else []:
                if not item.id:
                    continue
                if _removed(item):
                    events.pop(item.id, None)
                    removed[item.id] = None
                else:
                    removed.pop(item.id, None)
                    events[item.id] = GraphEvent.model_validate(_to_json(item))
            if page is not None and page.odata_next_link:
                link = page.odata_next_link
                continue
            if page is not None and page.odata_delta_link:
                return EventDelta(
                    events=list(events.values()),
                    removed_ids=list(removed),
                    delta_link=page.odata_delta_link,
                    requests=requests,
                )
            raise GraphRejected("eventDelta: a delta page carried neither @odata.nextLink nor @odata.deltaLink")

    def _event_query(self) -> Any:
        from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder

        return EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(
            expand=[f"singleValueExtendedProperties($filter=id eq '{ACTIVITY_PROPERTY_ID}')"]
        )

    async def get_event(self, mailbox: str, event_id: str) -> GraphEvent:
        """One event, with the NET Genium activity id it carries (if any)."""
        builder = self._user(mailbox).events.by_event_id(event_id)
        prefer = (IMMUTABLE_IDS, 'outlook.timezone="UTC"')
        event = await self._send(
            "getEvent", mailbox, functools.partial(builder.get, self._config(self._event_query(), prefer=prefer))
        )
        if event is None:
            raise GraphNotFound(f"getEvent: Graph returned no event {event_id}")
        return GraphEvent.model_validate(_to_json(event))

    async def find_event_by_activity(self, mailbox: str, activity_id: str) -> GraphEvent | None:
        """The event that carries this activity id, if one exists (reconciliation after a lost answer)."""
        from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder

        escaped = activity_id.replace("'", "''")
        query = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
            filter=f"singleValueExtendedProperties/Any(ep: ep/id eq '{ACTIVITY_PROPERTY_ID}' and ep/value eq "
            f"'{escaped}')",
            expand=[f"singleValueExtendedProperties($filter=id eq '{ACTIVITY_PROPERTY_ID}')"],
            top=1,
        )
        builder = self._user(mailbox).events
        page = await self._send(
            "findEvent",
            mailbox,
            functools.partial(builder.get, self._config(query, prefer=(IMMUTABLE_IDS, 'outlook.timezone="UTC"'))),
        )
        items = list(page.value or []) if page is not None else []
        return GraphEvent.model_validate(_to_json(items[0])) if items else None

    @staticmethod
    def _sdk_event(draft: EventDraft) -> Any:
        from msgraph.generated.models.body_type import BodyType
        from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
        from msgraph.generated.models.event import Event
        from msgraph.generated.models.item_body import ItemBody
        from msgraph.generated.models.location import Location

        return Event(
            subject=draft.subject,
            body=ItemBody(content_type=BodyType.Html if draft.body_is_html else BodyType.Text, content=draft.body),
            start=DateTimeTimeZone(date_time=_iso(draft.start), time_zone="UTC"),
            end=DateTimeTimeZone(date_time=_iso(draft.end), time_zone="UTC"),
            is_all_day=draft.is_all_day,
            location=Location(display_name=draft.location) if draft.location is not None else None,
        )

    async def create_event(
        self, mailbox: str, draft: EventDraft, *, transaction_id: str, activity_id: str
    ) -> GraphEvent:
        """Create the event once: a retry with the same `transaction_id` returns the first event.

        The activity id goes into a single-value extended property; no attendees are set, so no
        invitation is sent.
        """
        from msgraph.generated.models.single_value_legacy_extended_property import (
            SingleValueLegacyExtendedProperty,
        )

        event = self._sdk_event(draft)
        event.transaction_id = transaction_id
        event.single_value_extended_properties = [
            SingleValueLegacyExtendedProperty(id=ACTIVITY_PROPERTY_ID, value=str(activity_id))
        ]
        builder = self._user(mailbox).events
        prefer = (IMMUTABLE_IDS, 'outlook.timezone="UTC"')
        created = await self._send(
            "createEvent", mailbox, functools.partial(builder.post, event, self._config(prefer=prefer))
        )
        if created is None:
            raise GraphRejected("createEvent: Graph returned no event")
        result = GraphEvent.model_validate(_to_json(created))
        if result.activity_id is None:
            result = result.model_copy(
                update={
                    "single_value_extended_properties": [
                        ExtendedProperty(id=ACTIVITY_PROPERTY_ID, value=str(activity_id))
                    ]
                }
            )
        return result

    async def update_event(self, mailbox: str, event_id: str, draft: EventDraft) -> GraphEvent:
        """Write the synced fields of an existing event."""
        builder = self._user(mailbox).events.by_event_id(event_id)
        prefer = (IMMUTABLE_IDS, 'outlook.timezone="UTC"')
        updated = await self._send(
            "updateEvent",
            mailbox,
            functools.partial(builder.patch, self._sdk_event(draft), self._config(prefer=prefer)),
        )
        if updated is None:
            raise GraphRejected("updateEvent: Graph returned no event")
        return GraphEvent.model_validate(_to_json(updated))

    async def delete_event(self, mailbox: str, event_id: str) -> bool:
        """Delete; False when it was already gone (404 or 410), which is the outcome we wanted."""
        builder = self._user(mailbox).events.by_event_id(event_id)
        try:
            await self._send("deleteEvent", mailbox, functools.partial(builder.delete, self._config()))
        except GraphNotFound:
            return False
        except GraphRejected as exc:
            if exc.status == 410:
                return False
            raise
        return True


__all__ = [
    "MAX_OUTLOOK_SUBSCRIPTION_MINUTES",
    "MESSAGE_FIELDS",
    "GraphAdapter",
    "GraphOptions",
    "StaticTokenCredential",
    "create_credential",
    "create_graph_adapter",
    "create_graph_service_client",
]
