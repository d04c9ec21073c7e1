"""The Microsoft Graph adapter: msgraph-sdk behind operations named for what CRMService does.

Why it is built the way it is:

- The SDK's `GraphServiceClient` does the HTTP, auth, JSON and error parsing; every answer is read
  by its own deserializers, so an answer the SDK cannot read fails here, in the emulator tests, and
  not in production.
- `$select` asks for exactly the fields the core reads.
- The rest lives next door so that this file is the calls: `crm_core.graph.factory` builds the
  credential, the SDK client and the adapter; `crm_core.graph.translate` bounds every call (deadline,
  4 in flight per mailbox) and types its failure; `crm_core.graph.calendar` holds the event calls.
- The SDK (msgraph, kiota, azure-identity) is imported inside functions only: importing this module
  is cheap, and a Functions cold start that only parses a notification never loads it.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from crm_core.domain.mail import GraphMessage
from crm_core.graph.calendar import CalendarCalls
from crm_core.graph.errors import GraphNotFound, GraphRejected
from crm_core.graph.models import (
    DeltaPage,
    DirectoryUser,
    FileAttachment,
    MessagePage,
    SubscriptionInfo,
)
from crm_core.graph.translate import IMMUTABLE_IDS, to_json, unreadable

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
# Graph's longest lifetime for a subscription to Outlook messages or events.
MAX_OUTLOOK_SUBSCRIPTION_MINUTES = 10_080


def _instant(moment: datetime) -> str:
    """An OData date-time literal in UTC, as `$filter` takes it."""
    if moment.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _received_filter(received_from: datetime | None, received_before: datetime | None) -> str | None:
    """`$filter` for messages received in [`received_from`, `received_before`)."""
    bounds = []
    if received_from is not None:
        bounds.append(f"receivedDateTime ge {_instant(received_from)}")
    if received_before is not None:
        bounds.append(f"receivedDateTime lt {_instant(received_before)}")
    return " and ".join(bounds) if bounds else None


def _partial(item: dict[str, Any]) -> bool:
    """An item that says too little to decide on: Graph's delta returns an updated item "with at
    least the properties that have been updated" (an `isRead` change: `id`, `isRead` and little
    else). A mail we can decide on has its Internet Message-ID and a sender."""
    return "internetMessageId" not in item or not (item.get("from") or item.get("sender"))


class GraphAdapter(CalendarCalls):
    """The Graph operations CRMService uses; every failure is a typed `crm_core.domain.errors` error."""

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
        return GraphMessage.model_validate(to_json(message))

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

    async def message_delta_page(
        self,
        mailbox: str,
        folder: str = "inbox",
        link: str | None = None,
        *,
        received_since: datetime | None = None,
        page_size: int | None = None,
    ) -> DeltaPage:
        """One page of a folder's message delta: from `link` (a stored `@odata.nextLink` or
        `@odata.deltaLink`), or the first page of a new round.

        A new round asks for created items only (`changeType=created`; updated items carry only
        what changed, a read flag say) received since `received_since`. Raises FullResyncNeeded
        when Graph no longer knows the link's sync state; the caller then starts a new round.

        Items come back sorted into full messages, hints (items too partial to decide on: the
        caller reads them by id or ignores them) and removed ids. The requests go through the
        SDK (its auth, retry and redirect middleware), but the page is read as JSON straight into
        `GraphMessage`: the SDK's object model costs about a fifth of a busy worker's CPU for a
        burst of mail, and the core needs JSON anyway. Tests check that the SDK's deserializers
        read these pages all the same.
        """
        from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import (
            DeltaRequestBuilder,
        )

        size = page_size or self.options.delta_page_size
        builder = self._user(mailbox).mail_folders.by_mail_folder_id(folder).messages.delta
        query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            select=list(MESSAGE_FIELDS),
            change_type="created",
            filter=f"receivedDateTime ge {_instant(received_since)}" if received_since else None,
        )
        prefer = (IMMUTABLE_IDS, f"odata.maxpagesize={size}")
        page = await self._json_page("messageDelta", mailbox, builder, link, query, prefer=prefer, delta=True)
        if not page.next_link and not page.delta_link:
            raise GraphRejected("messageDelta: a delta page carried neither @odata.nextLink nor @odata.deltaLink")
        out = DeltaPage(next_link=page.next_link, delta_link=page.delta_link)
        for item in page.value:
            item_id = item.get("id")
            if not isinstance(item_id, str) or not item_id:
                continue
            if "@removed" in item:
                out.removed_ids.append(item_id)
            elif _partial(item):
                out.hints.append(item_id)
            else:
                out.messages.append(GraphMessage.model_validate(item))
        return out

    async def message_list_page(
        self,
        mailbox: str,
        folder: str = "inbox",
        link: str | None = None,
        *,
        received_from: datetime | None = None,
        received_before: datetime | None = None,
        page_size: int | None = None,
    ) -> MessagePage:
        """One page of a folder's messages received in [`received_from`, `received_before`), oldest
        first: from `link` (an `@odata.nextLink` of an earlier page), or the first page.

        `GET /users/{m}/mailFolders/{f}/messages?$filter=receivedDateTime ge {from} and
        receivedDateTime lt {before}&$orderby=receivedDateTime asc`: Graph wants a property of
        `$orderby` in `$filter` too, and first (else 400 InefficientFilter), which this is. Read as
        JSON straight into `GraphMessage`, as delta pages are.
        """
        from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
            MessagesRequestBuilder,
        )

        size = page_size or self.options.delta_page_size
        builder = self._user(mailbox).mail_folders.by_mail_folder_id(folder).messages
        bounds = _received_filter(received_from, received_before)
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            select=list(MESSAGE_FIELDS),
            filter=bounds,
            orderby=["receivedDateTime asc"] if bounds else None,
            top=size,
        )
        prefer = (IMMUTABLE_IDS, f"odata.maxpagesize={size}")
        page = await self._json_page("listMessages", mailbox, builder, link, query, prefer=prefer)
        try:
            messages = [GraphMessage.model_validate(item) for item in page.value if item.get("id")]
        except ValidationError as exc:
            raise unreadable("listMessages", exc) from None
        return MessagePage(messages=messages, next_link=page.next_link)

    async def message_count(
        self,
        mailbox: str,
        folder: str = "inbox",
        *,
        received_from: datetime | None = None,
        received_before: datetime | None = None,
    ) -> int | None:
        """How many messages of a folder were received in [`received_from`, `received_before`):
        `$count=true` with the same `$filter` and `$top=1` (Graph returns `@odata.count`); None
        when Graph sends no count or refuses the question."""
        from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
            MessagesRequestBuilder,
        )

        builder = self._user(mailbox).mail_folders.by_mail_folder_id(folder).messages
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            select=["id"], filter=_received_filter(received_from, received_before), count=True, top=1
        )
        try:
            page = await self._send("listMessages", mailbox, functools.partial(builder.get, self._config(query)))
        except GraphRejected:
            return None  # a count Graph refuses costs the progress bar its total, not the backfill
        count = getattr(page, "odata_count", None) if page is not None else None
        return int(count) if count is not None else None

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

    async def get_user(self, mailbox: str) -> DirectoryUser:
        """One user (the CRM mailbox, say); GraphNotFound when the tenant has no such user."""
        from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=list(USER_FIELDS))
        call = functools.partial(self._user(mailbox).get, self._config(query, prefer=()))
        user = await self._send("getUser", None, call)
        if user is None or not user.id:
            raise GraphNotFound(f"getUser: Graph returned no user for {mailbox}")
        return DirectoryUser(
            id=user.id,
            mail=user.mail,
            userPrincipalName=user.user_principal_name,
            proxyAddresses=list(user.proxy_addresses or []),
        )

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
        data = to_json(sdk)
        if client_state is not None and not data.get("clientState"):
            data["clientState"] = client_state
        return SubscriptionInfo.model_validate(data)


__all__ = ["MAX_OUTLOOK_SUBSCRIPTION_MINUTES", "MESSAGE_FIELDS", "GraphAdapter"]
