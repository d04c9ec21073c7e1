"""The app settings, read once from the environment (Azure app settings, or `.env` locally).

Each field's upper-case name is the app setting (`crm_mailbox` is `CRM_MAILBOX`, `crmMailbox` in
Bicep). A missing or invalid setting stops the start with one message that names the setting and
says what is expected, because a Functions host that starts half-configured loses mail silently.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from crm_core.domain.addresses import is_plausible_address, normalize_address


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it and what is expected."""


class GraphAuth(StrEnum):
    """How the app proves its identity to Microsoft Graph."""

    CLIENT_SECRET = "client_secret"  # noqa: S105 - a mode name
    CERTIFICATE = "certificate"
    MANAGED_IDENTITY = "managed_identity"
    # Only for the local Graph emulator: a fixed bearer token, refused for a non-loopback Graph URL.
    STATIC_TOKEN = "static_token"  # noqa: S105 - a mode name


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# RFC 9110 section 5.1: a field name is a token; a CR or LF would let a value inject headers.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _checked_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an absolute http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("expected https (http is allowed on loopback only)")
    return value.strip().rstrip("/")


def _split_list(value: Any) -> Any:
    """Accept a JSON-free comma or semicolon separated app setting as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Everything the app reads from its environment."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=None, populate_by_name=True)

    crm_mailbox: str = Field(description="the e-mail address of the CRM mailbox, e.g. crm@company.example")
    crm_order_keywords: CommaList = Field(
        default_factory=lambda: ["Order"],
        description="comma-separated order keywords, e.g. Order,Objednávka (letters only)",
    )
    crm_excluded_addresses: CommaList = Field(
        default_factory=list,
        description="comma-separated addresses or @domains that never count as participants",
    )

    # Secrets: the `code=` query parameter is the function key that lets anyone post to the app.
    crm_notification_url: SecretStr = Field(
        description="the public URL of the notifications function (https://<app>.azurewebsites.net/api/"
        "notifications?code=<key>) that Graph subscriptions post to"
    )
    crm_lifecycle_url: SecretStr = Field(
        description="the public URL of the lifecycle function (https://<app>.azurewebsites.net/api/lifecycle?code=<key>)"
    )
    crm_subscription_minutes: int = Field(
        default=10_000, ge=60, le=10_080, description="minutes a mail subscription lives (60..10080, Graph's most)"
    )
    crm_attachment_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=0, le=150 * 1024 * 1024, description="bytes; larger attachments are not stored"
    )
    crm_include_inline_attachments: bool = Field(
        default=False, description="true to store inline images (signatures, logos) as attachments too"
    )
    crm_initial_sync_days: int = Field(
        default=30,
        ge=0,
        le=3650,
        description="days of mail a new delta round reads back (the first run, and after Graph forgot the sync "
        "state); older mail is the backfill's (0..3650)",
    )
    crm_run_budget_seconds: int = Field(
        default=180,
        ge=10,
        le=3600,
        description="seconds one capture run may read delta pages before it stores its cursor and queues its own "
        "continuation; keep it well under host.json's functionTimeout (10..3600)",
    )
    crm_max_body_chars: int = Field(
        default=1_000_000, ge=10_000, le=50_000_000, description="characters of a body that are stored"
    )

    graph_auth: GraphAuth = Field(
        default=GraphAuth.CLIENT_SECRET,
        description="one of client_secret, certificate, managed_identity, static_token",
    )
    graph_tenant_id: str = Field(default="", description="the Microsoft Entra tenant id (a GUID or a verified domain)")
    graph_client_id: str = Field(
        default="",
        description="the app registration's client id (with managed_identity: a user-assigned "
        "identity's client id, or empty for the system-assigned one)",
    )
    graph_client_secret: SecretStr = Field(default=SecretStr(""), description="the app registration's client secret")
    graph_certificate_path: str = Field(
        default="", description="the path of the app registration's PEM or PFX certificate"
    )
    graph_base_url: str = Field(
        default="https://graph.microsoft.com/v1.0",
        description="the Microsoft Graph base URL (the sandbox points it at the Graph emulator)",
    )
    graph_static_token: SecretStr = Field(
        default=SecretStr(""), description="the bearer token the Graph emulator accepts"
    )

    netgenium_base_url: str = Field(
        default="", description="the NET Genium record API base URL, https (http only on loopback)"
    )
    netgenium_api_key: SecretStr = Field(default=SecretStr(""), description="the NET Genium record API key")
    netgenium_database_url: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "direct mode instead of NETGENIUM_BASE_URL: the NET Genium database's SQLAlchemy URL "
            "(mssql+pyodbc://... or firebird://...), for the bridge's store run in this process"
        ),
    )
    netgenium_files_folder: str = Field(
        default="",
        description=(
            "direct mode: the installation's files folder when file columns keep file names and the "
            "bytes live in that folder (empty: the bytes are kept in the database)"
        ),
    )
    netgenium_api_key_header: str = Field(
        default="X-Api-Key", description="the header that carries the NET Genium API key"
    )
    netgenium_schema_map: str = Field(
        default="",
        description="the path of the NET Genium schema map file (empty: the shipped defaults)",
    )

    azure_web_jobs_storage: SecretStr = Field(
        default=SecretStr(""),
        alias="AzureWebJobsStorage",
        description="a storage connection string (or AzureWebJobsStorage__accountName instead, for a managed identity)",
    )
    azure_web_jobs_storage_account_name: str = Field(
        default="",
        alias="AzureWebJobsStorage__accountName",
        description="the storage account name, reached with the managed identity",
    )

    sync_days_back: int = Field(default=30, ge=0, le=3650, description="days back (0..3650)")
    sync_days_ahead: int = Field(default=365, ge=1, le=3650, description="days ahead (1..3650)")
    crm_calendar_time_zone: str = Field(
        default="Europe/Prague",
        description=(
            "the IANA time zone NET Genium keeps dates in (all-day activities are midnights there; "
            "direct mode converts the database's dates with it)"
        ),
    )
    crm_calendar_private_subject: str = Field(
        default="Busy",
        min_length=1,
        max_length=255,
        description="the subject a private event shows in NET Genium",
    )
    crm_calendar_poll_schedule: str = Field(
        default="0 */2 * * * *",
        pattern=r"^\S+( \S+){5}$",
        description="the NCRONTAB schedule (six fields) of the NET Genium calendar poll",
    )
    crm_calendar_users_schedule: str = Field(
        default="0 */30 * * * *",
        pattern=r"^\S+( \S+){5}$",
        description="the NCRONTAB schedule (six fields) of refreshing who is in calendar sync",
    )
    crm_calendar_sync_private_details: bool = Field(
        default=False, description="true to copy a private event's subject, body and location to NET Genium"
    )

    @field_validator("crm_calendar_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is no IANA time zone (e.g. Europe/Prague)") from exc
        return value

    @field_validator("crm_order_keywords", "crm_excluded_addresses", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("crm_mailbox")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        address = normalize_address(value)
        if not is_plausible_address(address):
            raise ValueError("expected an e-mail address such as crm@company.example")
        return address

    @field_validator("crm_order_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected at least one keyword")
        for keyword in value:
            if not keyword.isalpha():
                raise ValueError(f"expected keywords of letters only, got {keyword!r}")
        return value

    @field_validator("crm_excluded_addresses")
    @classmethod
    def _excluded(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            address = normalize_address(item)
            if not (address.startswith("@") and "." in address) and not is_plausible_address(address):
                raise ValueError(f"expected addresses or @domains, got {item!r}")
            out.append(address)
        return out

    @field_validator("graph_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _checked_url(value)

    @field_validator("netgenium_base_url")
    @classmethod
    def _optional_url(cls, value: str) -> str:
        return _checked_url(value) if value.strip() else ""

    @field_validator("netgenium_database_url")
    @classmethod
    def _database_url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if text and not re.fullmatch(r"(mssql|firebird|sqlite)(\+[a-z0-9_]+)?://.*", text):
            # the message names the problem, never the URL (it holds the database password)
            raise ValueError("expected an SQLAlchemy URL of mssql+pyodbc://, firebird:// or sqlite://")
        return SecretStr(text)

    @field_validator("crm_notification_url", "crm_lifecycle_url")
    @classmethod
    def _secret_url(cls, value: SecretStr) -> SecretStr:
        try:
            return SecretStr(_checked_url(value.get_secret_value()))
        except ValueError as exc:  # the message names the problem, never the URL with its key
            raise ValueError(str(exc)) from None

    @field_validator("netgenium_api_key_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError("expected an HTTP header name (letters, digits and !#$%&'*+-.^_`|~; no space, CR or LF)")
        return value

    @field_validator("netgenium_api_key")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and not text.strip():  # empty is unset (direct mode needs none); spaces are a mistake
            raise ValueError("expected a non-empty value")
        return value

    @model_validator(mode="after")
    def _netgenium_mode(self) -> Self:
        """NET Genium over its record API (a base URL and a key), or direct mode (a database URL)."""
        over_http = bool(self.netgenium_base_url)
        direct = bool(self.netgenium_database_url.get_secret_value())
        if over_http and direct:
            raise SettingsError(
                "NETGENIUM_BASE_URL and NETGENIUM_DATABASE_URL are both set: expected one of them "
                "(the record API over HTTP, or direct mode on the database)"
            )
        if not over_http and not direct:
            raise SettingsError(
                "NETGENIUM_BASE_URL is missing: expected the NET Genium record API base URL, https "
                "(or NETGENIUM_DATABASE_URL for direct mode)"
            )
        if over_http and not self.netgenium_api_key.get_secret_value().strip():
            raise SettingsError("NETGENIUM_API_KEY is missing: expected the NET Genium record API key")
        return self

    @model_validator(mode="after")
    def _storage(self) -> Self:
        if not (
            self.azure_web_jobs_storage.get_secret_value().strip() or self.azure_web_jobs_storage_account_name.strip()
        ):
            raise SettingsError(
                "AzureWebJobsStorage is missing: expected a storage connection string, or "
                "AzureWebJobsStorage__accountName for a managed identity"
            )
        return self

    @model_validator(mode="after")
    def _graph_credentials(self) -> Self:
        needs: list[tuple[str, bool]] = []
        if self.graph_auth in (GraphAuth.CLIENT_SECRET, GraphAuth.CERTIFICATE):
            needs += [("graph_tenant_id", bool(self.graph_tenant_id.strip()))]
            needs += [("graph_client_id", bool(self.graph_client_id.strip()))]
        if self.graph_auth is GraphAuth.CLIENT_SECRET:
            needs += [("graph_client_secret", bool(self.graph_client_secret.get_secret_value()))]
        if self.graph_auth is GraphAuth.CERTIFICATE:
            needs += [("graph_certificate_path", bool(self.graph_certificate_path.strip()))]
        if self.graph_auth is GraphAuth.STATIC_TOKEN:
            needs += [("graph_static_token", bool(self.graph_static_token.get_secret_value()))]
            if not _is_loopback(urlsplit(self.graph_base_url).hostname):
                raise SettingsError(
                    "GRAPH_AUTH=static_token is only for the local Graph emulator: expected GRAPH_BASE_URL on loopback"
                )
        for name, present in needs:
            if not present:
                field = type(self).model_fields[name]
                raise SettingsError(
                    f"{name.upper()} is missing: expected {field.description} "
                    f"(GRAPH_AUTH={self.graph_auth.value} needs it)"
                )
        return self


def _setting_name(field_name: str) -> str:
    field = Settings.model_fields.get(field_name)
    if field is not None and field.alias:
        return field.alias
    return field_name.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, or raise SettingsError naming every setting that is wrong."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = [str(part) for part in error["loc"] if isinstance(part, str)]
            if not location:
                problems.append(str(error["msg"]).removeprefix("Value error, "))
                continue
            name = location[0]
            field = Settings.model_fields.get(name) or next(
                (f for f in Settings.model_fields.values() if f.alias == name), None
            )
            expected = field.description if field is not None else ""
            if error["type"] == "missing":
                problems.append(f"{_setting_name(name)} is missing: expected {expected}")
            else:
                detail = str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"{_setting_name(name)} is invalid: {detail} ({expected})")
        raise SettingsError("; ".join(problems)) from None
