"""`python -m sandbox.graph --port P [--token T] [--seed N] [--ideal]`: run the Graph emulator on 127.0.0.1.

By default it behaves as Graph's documentation says Graph may behave at worst (the `real` profile:
delta items in any order, updated items with only what changed, pages that take time, sync states
that expire); `--ideal` gives the happy path, for a test that needs it. `--seed` seeds everything
random. It binds to loopback only: it accepts a fixed bearer token and has an unauthenticated admin
API, so it must never be reachable from another machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import uuid

from aiohttp import web

from sandbox.graph.app import GraphEmulator
from sandbox.graph.profile import IDEAL, REAL
from sandbox.graph.server import make_app

DEFAULT_TOKEN = "sandbox-graph-token"  # noqa: S105 - the emulator's documented local token, not a secret
DEFAULT_TENANT = str(uuid.uuid5(uuid.NAMESPACE_DNS, "tenant.crmservice.sandbox"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.graph", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token /v1.0 accepts")
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT)
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for everything random (orders, expiries, fault shares)"
    )
    parser.add_argument(
        "--ideal", action="store_true", help="Graph's happy path instead of its documented worst case (the default)"
    )
    parser.add_argument("--page-latency-ms", type=float, help="time every page takes (real: 20, ideal: 0)")
    parser.add_argument("--item-latency-ms", type=float, help="time a page takes per item (real: 1.5, ideal: 0)")
    parser.add_argument(
        "--sync-state-expiry-rate",
        type=float,
        help="share of delta/skip token uses answered 410 SyncStateNotFound (real: 0.02, ideal: 0)",
    )
    parser.add_argument(
        "--mailbox-concurrency",
        type=int,
        default=4,
        help="concurrent requests per mailbox before 429 MailboxConcurrency (0: no limit)",
    )
    parser.add_argument(
        "--validation-timeout",
        type=float,
        default=10.0,
        help="seconds a subscriber has to echo the validation token (Graph: 10)",
    )
    parser.add_argument(
        "--delivery-timeout",
        type=float,
        default=3.0,
        help="seconds a subscriber has to accept a notification (Graph: 3)",
    )
    parser.add_argument(
        "--batch-window-ms", type=int, default=100, help="changes within this window go out in one POST"
    )
    parser.add_argument(
        "--retry-base",
        type=float,
        default=5.0,
        help="first delay before redelivering a failed notification; doubles each time",
    )
    parser.add_argument(
        "--retry-window",
        type=float,
        default=4 * 3600.0,
        help="seconds after which a failing delivery is abandoned (Graph: 4 hours)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    profile = IDEAL if args.ideal else REAL
    overrides = {
        "page_latency_ms": args.page_latency_ms,
        "item_latency_ms": args.item_latency_ms,
        "sync_state_expiry_rate": args.sync_state_expiry_rate,
    }
    for name, value in overrides.items():
        limit = 1.0 if name == "sync_state_expiry_rate" else 60_000.0
        if value is not None and not 0 <= value <= limit:
            parser.error(f"--{name.replace('_', '-')} must be from 0 to {limit:g}")
    profile = dataclasses.replace(profile, **{k: v for k, v in overrides.items() if v is not None})
    emulator = GraphEmulator(
        token=args.token,
        tenant_id=args.tenant_id,
        profile=profile,
        seed=args.seed,
        mailbox_concurrency=args.mailbox_concurrency,
        validation_timeout=args.validation_timeout,
        delivery_timeout=args.delivery_timeout,
        batch_window=args.batch_window_ms / 1000,
        retry_base=args.retry_base,
        retry_window=args.retry_window,
    )
    web.run_app(make_app(emulator), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
