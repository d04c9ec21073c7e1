"""What the health endpoint reports: that the app started, and with which non-secret settings."""

from __future__ import annotations

from typing import Any

from crm_core.domain.settings import Settings

VERSION = "0.1.0"


def report(settings: Settings) -> dict[str, Any]:
    """A liveness answer an operator can read; never a secret, never a key."""
    return {
        "status": "ok",
        "version": VERSION,
        "crm_mailbox": settings.crm_mailbox,
        "graph_auth": settings.graph_auth.value,
        "order_keywords": settings.crm_order_keywords,
    }
