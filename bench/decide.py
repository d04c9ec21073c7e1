"""Capture decisions per second, and the memory of a 100,000-contact directory index.

Builds 2,000 users, 100,000 contacts and 5,000 orders, then decides 50,000 generated Graph
messages of mixed relevance (30% HTML bodies, 10% naming an order) on one core, each one parsed
from Graph JSON first, as the service does. Prints one JSON object.

    python bench/decide.py [--messages N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import time
import tracemalloc
from typing import Any

from crm_core.domain.capture_decision import CaptureRules, decide
from crm_core.domain.directory import Contact, Directory, Order, User
from crm_core.domain.mail import GraphMessage

USERS, CONTACTS, ORDERS = 2_000, 100_000, 5_000
CRM = "crm@firma.example"


def user_address(i: int) -> str:
    return f"user{i}@firma.example"


def contact_address(i: int) -> str:
    return f"Contact.{i}@customer{i % 7919}.example"


def build_records() -> tuple[list[User], list[Contact], list[Order]]:
    users = [User(id=i, email=user_address(i), name=f"User {i}") for i in range(1, USERS + 1)]
    contacts = [Contact(id=10_000 + i, email=contact_address(i), company_id=i % 20_000) for i in range(CONTACTS)]
    orders = [Order(id=500_000 + n, number=n) for n in range(1, ORDERS + 1)]
    return users, contacts, orders


def address(value: str) -> dict[str, Any]:
    return {"emailAddress": {"name": "Someone", "address": value}}


def generate(count: int, rng: random.Random) -> list[dict[str, Any]]:
    messages = []
    filler = "Thank you for your message. We will look at the delivery schedule and come back to you.\n" * 12
    for n in range(count):
        kind = rng.random()
        contact = contact_address(rng.randrange(CONTACTS))
        user = user_address(rng.randrange(1, USERS + 1))
        if kind < 0.40:  # incoming from a customer
            sender, to, cc = contact, [user], [CRM]
        elif kind < 0.70:  # outgoing, CRM in BCC
            sender, to, cc = user, [contact, contact_address(rng.randrange(CONTACTS))], []
        elif kind < 0.80:  # internal
            sender, to, cc = user, [user_address(rng.randrange(1, USERS + 1))], [CRM]
        elif kind < 0.90:  # unknown sender
            sender, to, cc = f"prospect{n}@unknown{n % 97}.example", [user], [CRM]
        else:  # newsletter
            sender, to, cc = f"news@list{n % 13}.example", [CRM], []
        order_line = f"Order: {rng.randrange(1, ORDERS * 2)}" if rng.random() < 0.10 else ""
        html = rng.random() < 0.30
        if html:
            paragraphs = "".join(f"<p>{line}</p>" for line in filler.splitlines())
            body = {"contentType": "html", "content": f"<html><body>{paragraphs}<div>{order_line}</div></body></html>"}
        else:
            body = {"contentType": "text", "content": f"{filler}{order_line}\n> quoted text\n"}
        headers = [{"name": "Received", "value": "from mx.example"}]
        if kind >= 0.90:
            headers.append({"name": "Precedence", "value": "bulk"})
        messages.append(
            {
                "@odata.type": "#microsoft.graph.message",
                "id": f"AAMk{n}",
                "internetMessageId": f"<{n}@bench.example>",
                "conversationId": f"conv{n // 3}",
                "subject": f"Re: delivery {n}",
                "receivedDateTime": "2026-11-20T09:15:00Z",
                "from": address(sender),
                "toRecipients": [address(a) for a in to],
                "ccRecipients": [address(a) for a in cc],
                "bccRecipients": [address(CRM)] if not cc else [],
                "body": body,
                "internetMessageHeaders": headers,
            }
        )
    return messages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    rng = random.Random(7)
    users, contacts, orders = build_records()

    gc.collect()
    tracemalloc.start()
    directory = Directory(users, contacts, orders)
    index_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    rules = CaptureRules.build(CRM, ["@list0.example"], ["Order", "Objednávka"])
    messages = generate(args.messages, rng)
    captured = 0
    start = time.perf_counter()
    for data in messages:
        captured += decide(GraphMessage.model_validate(data), directory, rules).capture
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "decide_msgs_per_s": round(len(messages) / elapsed),
                "directory_100k_mb": round(index_bytes / 1_000_000, 1),
                "messages": len(messages),
                "captured": captured,
                "contacts": CONTACTS,
                "users": USERS,
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
