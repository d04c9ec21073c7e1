"""`python -m sandbox.graph --port P [--token T]`: run the Graph emulator on 127.0.0.1.

It binds to loopback only: it accepts a fixed bearer token and has an unauthenticated admin API, so
it must never be reachable from another machine.
"""

from __future__ import annotations

import argparse
import logging
import uuid

from aiohttp import web

from sandbox.graph.app import GraphEmulator
from sandbox.graph.server import make_app

DEFAULT_TOKEN = "sandbox-graph-token"  # noqa: S105 - the emulator's documented local token, not a secret
DEFAULT_TENANT = str(uuid.uuid5(uuid.NAMESPACE_DNS, "tenant.crmservice.sandbox"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.graph", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token /v1.0 accepts")
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT)
    parser.add_argument("--seed", type=int, default=0, help="seed for fault shares")
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
    emulator = GraphEmulator(
        token=args.token,
        tenant_id=args.tenant_id,
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
