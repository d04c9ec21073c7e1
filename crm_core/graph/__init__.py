"""The Microsoft Graph adapter (msgraph-sdk + azure-identity) and Graph's webhook payloads.

Import what you need from the submodules: `crm_core.domain.notifications` for what Graph POSTs to
the webhook (no SDK imported), `crm_core.graph.client` for the adapter (the SDK loads only when a
client is created), `crm_core.graph.errors` and `crm_core.graph.models` for the plain types. This
package module itself imports nothing heavy, so a Functions cold start pays only for what it uses.
"""

from crm_core.graph.errors import (
    FullResyncNeeded,
    GraphAccessDenied,
    GraphNotFound,
    GraphRejected,
    GraphUnavailable,
)

__all__ = ["FullResyncNeeded", "GraphAccessDenied", "GraphNotFound", "GraphRejected", "GraphUnavailable"]
