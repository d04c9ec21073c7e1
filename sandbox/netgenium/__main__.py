"""`python -m sandbox.netgenium --port P --db FILE`: run the NET Genium emulator on 127.0.0.1.

It binds to the loopback interface only: it has an unauthenticated admin API and a well-known
default key, and is meant for tests, benchmarks and the local demo, never for a network.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from aiohttp import web

from crm_core.netgenium.schema_map import SchemaMapError, load_schema_map
from sandbox.netgenium.app import Emulator, build_app
from sandbox.netgenium.store import Store

DEFAULT_API_KEY = "sandbox-netgenium-key"


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, build the store from the schema map, and serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.netgenium", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default=":memory:", help="SQLite file, or :memory: (the default)")
    parser.add_argument("--schema-map", default="", help="schema map file (default: the shipped one)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("NETGENIUM_API_KEY", DEFAULT_API_KEY),
        help="the key the API expects (default: $NETGENIUM_API_KEY or a fixed sandbox key)",
    )
    parser.add_argument("--api-key-header", default="X-Api-Key")
    parser.add_argument("--max-file-bytes", type=int, default=25 * 1024 * 1024)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        schema_map = load_schema_map(args.schema_map)
    except SchemaMapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    emulator = Emulator(
        Store(args.db, schema_map),
        api_key=args.api_key,
        api_key_header=args.api_key_header,
        max_file_bytes=args.max_file_bytes,
    )
    web.run_app(build_app(emulator), host="127.0.0.1", port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
