"""Which part of a mailbox the service watches, named once for the delta cursor and the subscription.

The CRM mailbox's inbox is where the copies land that employees send to the CRM address (To, CC,
BCC) and where customers' mail to it arrives; the delta round and the Graph subscription must name
the same folder, or notifications arrive for mail the round never reads.
"""

from __future__ import annotations

from urllib.parse import quote

MAIL_FOLDER = "inbox"


def _user(mailbox: str) -> str:
    return quote(mailbox, safe="@.")


def mail_resource(mailbox: str) -> str:
    """The subscription resource of the CRM mailbox's inbox (where CC and BCC copies land)."""
    return f"users/{_user(mailbox)}/mailFolders('{MAIL_FOLDER}')/messages"


def event_resource(mailbox: str) -> str:
    """The subscription resource of a user's calendar events."""
    return f"users/{_user(mailbox)}/events"
