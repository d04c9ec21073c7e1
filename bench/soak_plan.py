"""What a soak run does, decided up front from its seed: the mails, the calendar edits, the faults.

Everything here is pure and drawn from `random.Random(seed)` in a fixed order, so the same seed
gives the same plan (`plan_digest`), and a failing seed is rerun as it ran. The mails are built
with the builder the end-to-end tests use (`tests.unit.messages.mail`) over the directory of
`bench/capture.py`; what each mail should become is what `crmservice explain` decides for it
(`crm_core.domain.capture_decision.decide`, with the conversation's order for a reply), which is
also what `crmservice sandbox replay` reports.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import capture
from crm_core.domain.capture_decision import CaptureRules, ConversationOrder, decide
from crm_core.domain.directory import Directory, DirectoryFile
from crm_core.domain.mail import GraphMessage
from tests.unit.messages import mail

CRM = capture.CRM
USERS = capture.USERS[:6]  # each user is also synced both ways: six keep the calendar load small
DIRECTORY = DirectoryFile(
    crm_address=CRM,
    users=USERS,
    contacts=capture.CONTACTS,
    orders=capture.DIRECTORY.orders,
    excluded=["@newsletter.example"],
    order_keywords=["Order"],
)

# Shares of the mail mix (the rest of the weight is irrelevant mail, below).
MAIL_KINDS: tuple[tuple[str, float], ...] = (
    ("incoming", 0.34),
    ("order", 0.08),  # names Order:N and opens a thread later mails reply in
    ("reply", 0.12),  # In-Reply-To an order thread's first mail, names no order: inherits it
    ("outgoing", 0.08),
    ("attachments", 0.07),
    ("duplicate", 0.07),  # a mail delivered again (same Internet Message-ID): one activity
    ("newsletter", 0.06),  # excluded domain
    ("bulk", 0.06),  # Precedence: bulk from a contact
    ("stranger", 0.07),  # sender not in the address book
    ("internal", 0.05),  # user to user
)

FAULT_KINDS = (
    "graph_429",
    "graph_503",
    "graph_mailbox_concurrency",
    "notifications_dropped",
    "lifecycle_missed",
    "subscription_removed",
    "netgenium_slow",
    "netgenium_failing",
    "netgenium_down",
    "worker_killed",
    "queue_message_twice",
    "delta_tokens_expired",
)


@dataclass(frozen=True)
class Expected:
    """What NET Genium must hold for one Internet Message-ID (None: no activity)."""

    direction: str | None
    contact_id: int | None
    company_id: int | None
    user_id: int | None
    order_id: int | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    """One thing done at `at` seconds after the start."""

    at: float
    kind: str  # "mail", "calendar", "fault_start", "fault_end"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    seed: int
    messages: int
    minutes: float
    steps: list[Step]
    expected: dict[str, Expected]

    def digest(self) -> str:
        document = json.dumps([asdict(s) for s in self.steps], sort_keys=True, default=str)
        return hashlib.sha256(document.encode()).hexdigest()[:16]

    def relevant(self) -> set[str]:
        return {m for m, e in self.expected.items() if e.direction is not None}


def _address(person: Any) -> str:
    return str(person.email)


def _mails(rng: random.Random, seed: int, count: int) -> tuple[list[dict[str, Any]], dict[str, Expected]]:
    directory = Directory(DIRECTORY.users, DIRECTORY.contacts, DIRECTORY.orders)
    rules = CaptureRules.build(DIRECTORY.crm_address, DIRECTORY.excluded, DIRECTORY.order_keywords)
    orders = {o.number: o.id for o in DIRECTORY.orders}
    kinds = [k for k, _ in MAIL_KINDS]
    weights = [w for _, w in MAIL_KINDS]
    threads: list[tuple[str, str, int, str, str]] = []  # (conversation, first id, order number, contact, user)
    delivered: list[dict[str, Any]] = []
    expected: dict[str, Expected] = {}
    for n in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind == "reply" and not threads:
            kind = "order"
        if kind == "duplicate" and not delivered:
            kind = "incoming"
        contact = rng.choice(DIRECTORY.contacts)
        user = rng.choice(DIRECTORY.users)
        message_id = f"<soak{seed}-{n}-{kind}@soak.example>"
        conversation = f"soak{seed}-conv-{n}"
        inherited: ConversationOrder | None = None
        if kind == "duplicate":
            delivered.append(dict(rng.choice(delivered)))
            continue
        if kind in ("incoming", "attachments"):
            data = mail(
                sender=_address(contact),
                to=[_address(user)],
                cc=[CRM],
                subject=f"Delivery {n}",
                body=f"Hello, when does delivery {n} arrive?",
                message_id=message_id,
            )
            if kind == "attachments":
                data["attachments"] = [
                    {
                        "name": f"offer-{n}-{k}.txt",
                        "contentType": "text/plain",
                        "contentBytes": base64.b64encode(f"offer {n} part {k}".encode()).decode(),
                    }
                    for k in range(rng.randint(1, 2))
                ]
        elif kind == "order":
            number = rng.randint(1, 100) if rng.random() < 0.9 else 500 + n  # now and then an unknown order
            data = mail(
                sender=_address(contact),
                to=[_address(user)],
                cc=[CRM],
                subject=f"Quote Order:{number}",
                body=f"Please quote order {number}.",
                message_id=message_id,
            )
            if number in orders:
                threads.append((conversation, message_id, number, _address(contact), _address(user)))
        elif kind == "reply":
            conversation, first, number, customer, employee = rng.choice(threads)
            outgoing = rng.random() < 0.5
            sender, to = (employee, customer) if outgoing else (customer, employee)
            data = mail(
                sender=sender,
                to=[to],
                cc=[CRM],
                subject="RE: Quote",
                body=f"Reply {n}.",
                message_id=message_id,
                headers={"In-Reply-To": first},
            )
            inherited = ConversationOrder(number, orders[number])
        elif kind == "outgoing":
            data = mail(
                sender=_address(user),
                to=[_address(contact)],
                cc=[CRM],
                subject=f"Offer {n}",
                body="Our offer is attached.",
                message_id=message_id,
            )
        elif kind == "newsletter":
            data = mail(
                sender=f"news{n % 7}@newsletter.example",
                to=[_address(user)],
                cc=[CRM],
                subject=f"News {n}",
                message_id=message_id,
            )
        elif kind == "bulk":
            data = mail(
                sender=_address(contact),
                to=[_address(user)],
                cc=[CRM],
                subject=f"Bulletin {n}",
                message_id=message_id,
                headers={"Precedence": "bulk"},
            )
        elif kind == "stranger":
            data = mail(
                sender=f"someone{n}@unknown.example",
                to=[_address(user)],
                cc=[CRM],
                subject=f"Question {n}",
                message_id=message_id,
            )
        else:  # internal
            other = rng.choice(DIRECTORY.users)
            data = mail(
                sender=_address(user), to=[_address(other)], cc=[CRM], subject=f"Lunch {n}", message_id=message_id
            )
        data["conversationId"] = conversation
        decision = decide(GraphMessage.model_validate(data), directory, rules, conversation_order=inherited)
        expected[message_id] = Expected(
            direction=decision.direction if decision.capture else None,
            contact_id=decision.contact_ids[0] if decision.capture and decision.contact_ids else None,
            company_id=decision.company_ids[0] if decision.capture and decision.company_ids else None,
            user_id=decision.user_ids[0] if decision.capture and decision.user_ids else None,
            order_id=decision.order_id if decision.capture else None,
            reasons=tuple(decision.reasons),
        )
        delivered.append(data)
    return delivered, expected


def _calendar_steps(rng: random.Random, seed: int, count: int) -> list[dict[str, Any]]:
    """Scenario steps (sandbox/calendar_scenario.py) on both sides: creates, updates, deletes, and
    now and then the same item edited on both sides at once (a conflict the later edit wins)."""
    steps: list[dict[str, Any]] = []
    live: list[str] = []
    made = 0
    users = [_address(u) for u in DIRECTORY.users]
    for _ in range(count):
        roll = rng.random()
        side = rng.choice(("outlook", "netgenium"))
        if roll < 0.4 or len(live) < 3:
            ref = f"s{seed}c{made}"
            made += 1
            live.append(ref)
            steps.append(
                {
                    "side": side,
                    "op": "create",
                    "ref": ref,
                    "user": rng.choice(users),
                    "fields": _event_fields(rng, ref, 0),
                }
            )
        elif roll < 0.9:
            ref = rng.choice(live)
            version = rng.randint(1, 10**6)
            steps.append({"side": side, "op": "update", "ref": ref, "fields": _event_fields(rng, ref, version)})
            if rng.random() < 0.15:  # the other side edits the same item before any sync: a conflict
                other = "netgenium" if side == "outlook" else "outlook"
                steps.append(
                    {
                        "side": other,
                        "op": "update",
                        "ref": ref,
                        "conflict": True,
                        "fields": _event_fields(rng, ref, version + 1),
                    }
                )
        else:
            ref = live.pop(rng.randrange(len(live)))
            steps.append({"side": side, "op": "delete", "ref": ref})
    return steps


def _event_fields(rng: random.Random, ref: str, version: int) -> dict[str, Any]:
    """Subject, time (as days and hours from today, made absolute when the step runs) and location."""
    day, hour = rng.randint(1, 60), rng.randint(7, 16)
    return {
        "subject": f"Soak {ref} v{version}",
        "day": day,
        "hour": hour,
        "hours": rng.choice((1, 2)),
        "location": rng.choice(("", "Room A", "Room B", "Online")),
    }


def _faults(rng: random.Random, minutes: float) -> list[Step]:
    """Every kind at least once, more in a longer run; none in the last fifth, so the end is quiet."""
    seconds = minutes * 60
    per_kind = max(1, round(minutes / 10))
    steps: list[Step] = []
    window = max(5.0, min(40.0, seconds * 0.12))  # how long a fault lasts
    for kind in FAULT_KINDS:
        for _ in range(per_kind):
            at = rng.uniform(0.1, 0.4) * seconds if kind == "worker_killed" else rng.uniform(0.05, 0.75) * seconds
            lasting = round(rng.uniform(0.5, 1.0) * window, 1)
            params: dict[str, Any] = {"fault": kind, "seconds": lasting}
            if kind == "graph_429":
                params["retryAfter"] = rng.randint(1, 3)
            elif kind == "worker_killed":
                params["restart_after"] = round(rng.uniform(0.5, 3.0), 1)
            elif kind == "queue_message_twice":
                params["count"] = rng.randint(2, 5)
            steps.append(Step(round(at, 2), "fault_start", params))
            if kind in (
                "graph_429",
                "graph_503",
                "graph_mailbox_concurrency",
                "notifications_dropped",
                "netgenium_slow",
                "netgenium_failing",
                "netgenium_down",
            ):
                steps.append(Step(round(at + lasting, 2), "fault_end", {"fault": kind}))
    return steps


def make_plan(seed: int, messages: int, minutes: float, calendar_edits: int | None = None) -> Plan:
    rng = random.Random(seed)
    mails, expected = _mails(rng, seed, messages)
    edits = max(10, messages // 10) if calendar_edits is None else calendar_edits
    calendar = _calendar_steps(rng, seed, edits)
    faults = _faults(rng, minutes)
    span = minutes * 60 * 0.8  # deliveries and edits end before the last fifth
    steps = [Step(round(span * i / max(1, len(mails)), 2), "mail", {"mail": m}) for i, m in enumerate(mails)]
    slots = max(1, sum(1 for s in calendar if not s.get("conflict")))
    slot = -1
    for edit in calendar:
        if edit.get("conflict"):  # right after the edit it conflicts with
            steps.append(Step(round(span * (slot + 0.5) / slots, 2) + 0.01, "calendar", edit))
        else:
            slot += 1
            steps.append(Step(round(span * (slot + 0.5) / slots, 2), "calendar", edit))
    steps += faults
    order = {"fault_end": 0, "fault_start": 1, "mail": 2, "calendar": 3}
    steps.sort(key=lambda s: (s.at, order[s.kind]))
    return Plan(seed, messages, minutes, steps, expected)
