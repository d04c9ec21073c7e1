"""The tenant's directory and mailboxes: users, their folders and messages, and the numbered changes.

Everything lives in memory. Every change gets a sequence number and goes into the change log of
the folder (or calendar) it happened in; delta reads those logs. The sync-state generation lets the
admin API make every token stale at once, as after Graph's `syncStateNotFound`. Calendars are in
`events`, which works on the same store.
"""

from __future__ import annotations

import base64
import copy
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox.graph.odata import (
    GraphError,
    apply_select,
    bad_request,
    change_key,
    etag,
    iso,
    new_id,
    not_found,
    now_utc,
)
from sandbox.graph.records import (
    CREATED,
    DELETED,
    MESSAGE_ONLY_WHEN_SELECTED,
    MESSAGE_PROPERTIES,
    UPDATED,
    WELL_KNOWN_FOLDERS,
    Folder,
    MessageRecord,
    User,
    text_preview,
)

# A change seen by subscriptions: (kind "message"|"event", user, item id, changeType, folder ids).
ChangeListener = Callable[[str, User, str, str, tuple[str, ...]], None]


class Store:
    """Users and their mail; every change is numbered, logged and told to the change listeners."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.users: dict[str, User] = {}
        self.seq = 0
        self.sync_generation = 1
        self.listeners: list[ChangeListener] = []

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def notify(self, kind: str, user: User, item_id: str, change: str, folders: tuple[str, ...]) -> None:
        for listener in list(self.listeners):
            listener(kind, user, item_id, change, folders)

    # ---- users -------------------------------------------------------------------------------

    def add_user(self, body: dict[str, Any]) -> User:
        upn = str(body.get("userPrincipalName") or body.get("mail") or "").strip()
        if "@" not in upn:
            raise bad_request("userPrincipalName (or mail) is required and must be an address.")
        if self.find_user(upn) is not None:
            raise GraphError(
                400,
                "Request_BadRequest",
                "Another object with the same value for property userPrincipalName already exists.",
            )
        proxies = body.get("proxyAddresses") or []
        if not isinstance(proxies, list) or not all(isinstance(item, str) for item in proxies):
            raise bad_request("proxyAddresses must be a list of strings.")
        user_id = str(body.get("id") or uuid.uuid4())
        user = User(
            id=user_id,
            user_principal_name=upn,
            mail=body.get("mail", upn),
            proxy_addresses=list(proxies),
            display_name=str(body.get("displayName") or upn.split("@")[0]),
        )
        for well_known, name in WELL_KNOWN_FOLDERS.items():
            folder = Folder(id=new_id("AQMkA"), display_name=name, well_known=well_known)
            user.folders[folder.id] = folder
        user.created_seq = self.next_seq()
        self.users[user_id] = user
        return user

    def find_user(self, key: str) -> User | None:
        if key in self.users:
            return self.users[key]
        lowered = key.lower()
        for user in self.users.values():
            if user.user_principal_name.lower() == lowered or user.id.lower() == lowered:
                return user
        return None

    def user(self, key: str) -> User:
        """`/users/{id | userPrincipalName}` as Graph resolves it."""
        found = self.find_user(key)
        if found is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
            )
        return found

    def folder(self, user: User, key: str) -> Folder:
        """A folder by id or well-known name (``inbox``, ``sentitems``...), compared case-insensitively."""
        if key in user.folders:
            return user.folders[key]
        lowered = key.strip("'\"").lower()
        for folder in user.folders.values():
            if folder.well_known == lowered or folder.id.lower() == lowered:
                return folder
        raise GraphError(404, "ErrorInvalidIdMalformed", "Id is malformed.") if len(key) < 20 else not_found()

    # ---- messages ------------------------------------------------------------------------------

    def deliver_message(self, user: User, body: dict[str, Any], folder_key: str = "inbox") -> MessageRecord:
        """A message arrives (or is saved) in a folder, as Exchange would store it."""
        folder = self.folder(user, folder_key)
        if not isinstance(body, dict):
            raise bad_request("A message must be a JSON object.")
        now = now_utc()
        message_id = new_id()
        attachments_in = body.get("attachments") or []
        if not isinstance(attachments_in, list):
            raise bad_request("attachments must be a list.")
        attachments = [self._attachment(item, now) for item in attachments_in]
        data: dict[str, Any] = {
            "createdDateTime": iso(now),
            "lastModifiedDateTime": iso(now),
            "changeKey": change_key(),
            "categories": [],
            "receivedDateTime": iso(now),
            "sentDateTime": None,
            "hasAttachments": any(not item["isInline"] for item in attachments),
            "internetMessageId": f"<{uuid.uuid4().hex}@emulator.invalid>",
            "subject": "",
            "bodyPreview": "",
            "importance": "normal",
            "parentFolderId": folder.id,
            "conversationId": new_id("AAQkA"),
            "conversationIndex": base64.b64encode(secrets.token_bytes(22)).decode(),
            "isDeliveryReceiptRequested": False,
            "isReadReceiptRequested": False,
            "isRead": False,
            "isDraft": folder.well_known == "drafts",
            "webLink": f"https://outlook.office365.com/owa/?ItemID={message_id}&exvsurl=1&viewmodel=ReadMessageItem",
            "inferenceClassification": "focused",
            "body": {"contentType": "text", "content": ""},
            "sender": None,
            "from": None,
            "toRecipients": [],
            "ccRecipients": [],
            "bccRecipients": [],
            "replyTo": [],
            "flag": {"flagStatus": "notFlagged"},
            "internetMessageHeaders": [],
            "uniqueBody": None,
        }
        for key, value in body.items():
            if key in ("attachments", "id", "@odata.type", "parentFolderId") or key.startswith("@odata"):
                continue
            data[key] = value
        if data.get("sentDateTime") is None:
            data["sentDateTime"] = data["receivedDateTime"]
        if data.get("sender") is None:
            data["sender"] = data.get("from")
        if not data.get("bodyPreview"):
            data["bodyPreview"] = text_preview(data.get("body"))
        if data.get("uniqueBody") is None:
            data["uniqueBody"] = data.get("body")
        if not data.get("internetMessageHeaders"):
            data["internetMessageHeaders"] = self._default_headers(data)
        data["id"] = message_id
        record = MessageRecord(
            data=data, folder_id=folder.id, attachments=attachments, odata_type=body.get("@odata.type")
        )
        user.messages[message_id] = record
        folder.log.record(self.next_seq(), message_id, CREATED)
        self.notify("message", user, message_id, CREATED, (folder.id,))
        return record

    @staticmethod
    def _default_headers(data: dict[str, Any]) -> list[dict[str, str]]:
        def addresses(items: Any) -> str:
            out = []
            for item in items or []:
                address = ((item or {}).get("emailAddress") or {}).get("address")
                if address:
                    out.append(str(address))
            return ", ".join(out)

        html = str((data.get("body") or {}).get("contentType")).lower() == "html"
        headers = [
            {"name": "Message-ID", "value": str(data.get("internetMessageId") or "")},
            {"name": "Subject", "value": str(data.get("subject") or "")},
            {"name": "From", "value": addresses([data.get("from")])},
            {"name": "To", "value": addresses(data.get("toRecipients"))},
            {"name": "Content-Type", "value": "text/html; charset=utf-8" if html else "text/plain; charset=utf-8"},
        ]
        if data.get("ccRecipients"):
            headers.append({"name": "Cc", "value": addresses(data.get("ccRecipients"))})
        return headers

    @staticmethod
    def _attachment(item: Any, now: datetime) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise bad_request("Each attachment must be a JSON object.")
        raw = item.get("contentBytes") or ""
        try:
            size = len(base64.b64decode(str(raw), validate=True))
        except ValueError:
            raise bad_request("contentBytes must be base64.") from None
        return {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": str(item.get("contentType") or "application/octet-stream"),
            "id": new_id("AAMkA"),
            "lastModifiedDateTime": iso(now),
            "name": str(item.get("name") or "attachment"),
            "contentType": str(item.get("contentType") or "application/octet-stream"),
            "size": size,
            "isInline": bool(item.get("isInline", False)),
            "contentId": item.get("contentId"),
            "contentLocation": None,
            "contentBytes": str(raw),
        }

    def message(self, user: User, message_id: str) -> MessageRecord:
        record = user.messages.get(message_id)
        if record is None:
            raise not_found()
        return record

    def update_message(self, user: User, message_id: str, changes: dict[str, Any]) -> MessageRecord:
        """A user edits a message in Outlook (read flag, categories, subject) or moves it."""
        record = self.message(user, message_id)
        old_folder = record.folder_id
        changed: set[str] = set()
        for key, value in changes.items():
            if key == "parentFolderId":
                record.folder_id = self.folder(user, str(value)).id
            elif key not in ("id", "attachments") and not key.startswith("@odata"):
                record.data[key] = value
                changed.add(key)
        record.data["parentFolderId"] = record.folder_id
        record.data["lastModifiedDateTime"] = iso(now_utc())
        record.data["changeKey"] = change_key()
        seq = self.next_seq()
        if record.folder_id != old_folder:
            user.folders[old_folder].log.record(seq, message_id, DELETED)
            user.folders[record.folder_id].log.record(seq, message_id, CREATED)
            # Outlook reports a move as a delete in the old folder and a create in the new one.
            self.notify("message", user, message_id, DELETED, (old_folder,))
            self.notify("message", user, message_id, CREATED, (record.folder_id,))
        else:
            user.folders[old_folder].log.record(seq, message_id, UPDATED, frozenset(changed))
            self.notify("message", user, message_id, UPDATED, (old_folder,))
        return record

    def delete_message(self, user: User, message_id: str) -> None:
        record = self.message(user, message_id)
        del user.messages[message_id]
        user.folders[record.folder_id].log.record(self.next_seq(), message_id, DELETED)
        self.notify("message", user, message_id, DELETED, (record.folder_id,))

    def message_json(self, record: MessageRecord, select: list[str] | None) -> dict[str, Any]:
        """The message as GET returns it (`internetMessageHeaders` and `uniqueBody` only when selected)."""
        full: dict[str, Any] = {}
        if record.odata_type:
            full["@odata.type"] = record.odata_type
        full["@odata.etag"] = etag(record.data["changeKey"])
        full["id"] = record.data["id"]
        for key in MESSAGE_PROPERTIES:
            full[key] = copy.deepcopy(record.data.get(key))
        for key, value in record.data.items():
            if key not in full and key not in MESSAGE_ONLY_WHEN_SELECTED and key != "id":
                full[key] = copy.deepcopy(value)
        if select is not None:
            for key in MESSAGE_ONLY_WHEN_SELECTED:
                if key in select:
                    full[key] = copy.deepcopy(record.data.get(key))
        return apply_select(full, select, ("id",))

    @staticmethod
    def message_changes_json(record: MessageRecord, props: frozenset[str], select: list[str] | None) -> dict[str, Any]:
        """An updated message as delta reports it: its id with the properties that changed (those selected)."""
        out: dict[str, Any] = {"@odata.etag": etag(record.data["changeKey"]), "id": record.data["id"]}
        for key in sorted(props):
            if select is None or key in select:
                out[key] = copy.deepcopy(record.data.get(key))
        return out
