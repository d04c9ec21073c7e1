"""The NET Genium adapter: the record API contract (openapi.yaml), the schema map, the HTTP transport and the client."""

from crm_core.netgenium.client import NetGeniumClient
from crm_core.netgenium.errors import (
    NetGeniumAuthError,
    NetGeniumConflict,
    NetGeniumNotFound,
    NetGeniumProtocolError,
    NetGeniumRejected,
    NetGeniumUnavailable,
)
from crm_core.netgenium.models import (
    Attachment,
    CalendarActivity,
    EmailActivity,
    NgContact,
    NgOrder,
    NgUser,
)
from crm_core.netgenium.schema_map import SchemaMap, SchemaMapError, default_schema_map, load_schema_map

__all__ = [
    "Attachment",
    "CalendarActivity",
    "EmailActivity",
    "NetGeniumAuthError",
    "NetGeniumClient",
    "NetGeniumConflict",
    "NetGeniumNotFound",
    "NetGeniumProtocolError",
    "NetGeniumRejected",
    "NetGeniumUnavailable",
    "NgContact",
    "NgOrder",
    "NgUser",
    "SchemaMap",
    "SchemaMapError",
    "default_schema_map",
    "load_schema_map",
]
