"""What the anonymous health endpoint reports: that the app started, and nothing else.

It answers anyone on the internet, so it names no mailbox, no auth mode, no setting: an app that
reached this code has loaded valid settings (a wrong one stops the start), which is all the
platform's health check needs to know. Operators read the rest with `crmservice` and in
Application Insights.
"""

from __future__ import annotations

VERSION = "0.1.0"


def report() -> dict[str, str]:
    """A liveness answer that tells an outsider nothing about the installation."""
    return {"status": "ok", "version": VERSION}
