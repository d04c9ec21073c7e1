"""Who is who: NET Genium users, address-book contacts and orders, indexed by normalized address.

The capture decision asks the directory a handful of questions per mail, so every answer is a hash
lookup; an address book of 100,000 contacts is never scanned. The same index serves the live
service (built from the few records NET Genium returns for one mail's addresses) and
`crmservice explain` (built from a whole directory file).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from crm_core.domain.addresses import normalize_address


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Record):
    """A NET Genium user (an employee): the company side of a mail."""

    id: int
    email: str
    name: str | None = None


class Contact(_Record):
    """An address-book contact (a customer person), with the company it belongs to."""

    id: int
    email: str
    company_id: int | None = None


class Order(_Record):
    """An order as the `Order:<number>` keyword names it."""

    id: int
    number: int


class DirectoryFile(BaseModel):
    """The directory file of `crmservice explain`: the directory plus the capture settings."""

    model_config = ConfigDict(extra="forbid")

    crm_address: str
    users: list[User] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    orders: list[Order] = Field(default_factory=list)
    excluded: list[str] = Field(default_factory=list)
    order_keywords: list[str] = Field(default_factory=lambda: ["Order"])


class UserRecord(Protocol):
    """Anything with a user's id and e-mail (the NET Genium adapter's records, or `User`)."""

    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str: ...


class ContactRecord(Protocol):
    """Anything with a contact's id, e-mail and company."""

    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str: ...
    @property
    def company_id(self) -> int | None: ...


class OrderRecord(Protocol):
    """Anything with an order's id and number."""

    @property
    def id(self) -> int: ...
    @property
    def number(self) -> int: ...


class ContactRef(NamedTuple):
    """What the decision needs of a contact: its id and its company."""

    id: int
    company_id: int | None


class Directory:
    """Hashed lookups by normalized address and by order number."""

    __slots__ = ("_contacts", "_orders", "_users")

    def __init__(
        self,
        users: Iterable[UserRecord] = (),
        contacts: Iterable[ContactRecord] = (),
        orders: Iterable[OrderRecord] = (),
    ) -> None:
        self._users: dict[str, int] = {}
        for user in users:
            # The first user with an address wins: two user accounts on one mailbox is a data error,
            # and picking one consistently beats linking the mail to both.
            self._users.setdefault(normalize_address(user.email), user.id)
        self._contacts: dict[str, tuple[ContactRef, ...]] = {}
        for contact in contacts:
            address = normalize_address(contact.email)
            if not address:
                continue
            ref = ContactRef(contact.id, contact.company_id)
            known = self._contacts.get(address)
            # One person may be in the address book under two companies; the mail belongs to both.
            self._contacts[address] = (ref,) if known is None else (*known, ref)
        self._orders: dict[int, int] = {}
        for order in orders:
            self._orders.setdefault(order.number, order.id)

    def add_order(self, order: OrderRecord) -> None:
        """Make one more order known (the service looks orders up one at a time, when named)."""
        self._orders.setdefault(order.number, order.id)

    def user_id(self, address: str) -> int | None:
        """The user with this normalized address."""
        return self._users.get(address)

    def contacts(self, address: str) -> tuple[ContactRef, ...]:
        """The contacts with this normalized address (usually one)."""
        return self._contacts.get(address, ())

    def order_id(self, number: int) -> int | None:
        """The id of the order with this number."""
        return self._orders.get(number)

    def __len__(self) -> int:
        return len(self._users) + len(self._contacts) + len(self._orders)


@dataclass(frozen=True, slots=True)
class PageContacts:
    """The contacts of a page of mails, looked up in one go (chunked by the adapter).

    `covered` are the addresses whose answer is known: those asked for, and the users' (an address
    that is both a user and a contact counts as a user, so a user's address needs no lookup).
    """

    covered: frozenset[str]
    by_address: dict[str, list[ContactRecord]]

    def lookup(self, addresses: Iterable[str]) -> list[ContactRecord] | None:
        """The contacts of these addresses, or None when one of them was not covered."""
        wanted = set(addresses)
        if not wanted <= self.covered:
            return None
        return [contact for address in sorted(wanted) for contact in self.by_address.get(address, ())]
