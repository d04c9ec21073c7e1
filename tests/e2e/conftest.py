"""The whole service through the local runner: Azurite, both emulators, the real function_app.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_core.directory import Contact, DirectoryFile, Order, User
from sandbox.stack import SandboxStack

CRM = "crm@firma.example"
USERS = [User(id=n, email=f"user{n}@firma.example", name=f"User {n}") for n in range(1, 6)]
CONTACTS = [
    Contact(id=100 + n, email=f"contact{n}@customer{n % 7}.example", company_id=10 + n % 7) for n in range(1, 41)
]
ORDERS = [Order(id=1000 + n, number=n) for n in range(1, 21)]
DIRECTORY = DirectoryFile(
    crm_address=CRM,
    users=USERS,
    contacts=CONTACTS,
    orders=ORDERS,
    excluded=["@newsletter.example"],
    order_keywords=["Order", "Objednávka"],
)


@pytest.fixture(scope="module")
def stack() -> Iterator[SandboxStack]:
    with SandboxStack(DIRECTORY) as running:
        yield running
