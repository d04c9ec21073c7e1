"""`python -m sandbox.netgenium --port P --db FILE|URL`: the bridge with faults, on 127.0.0.1.

It binds to the loopback interface only: it has an unauthenticated admin API and a well-known
default key, and is meant for tests, benchmarks and the local demo, never for a network. `--db`
is a SQLite file, `:memory:` (the default), or a SQLAlchemy URL (the tests' Firebird database);
the NET Genium-like tables are created in SQLite when missing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from aiohttp import web

from bridge.app import BridgeState
from bridge.database import open_database
from bridge.files import FileStore
from bridge.keys import KeyVerifier, hash_key
from bridge.store import Store
from bridge.values import LocalTime
from crm_core.netgenium.schema_map import SchemaMapError, load_schema_map
from sandbox.netgenium.app import Emulator, build_app
from sandbox.netgenium.ddl import create_tables

DEFAULT_API_KEY = "sandbox-netgenium-key"
SANDBOX_KEY_ITERATIONS = 1_000  # a well-known loopback key: the hash guards nothing worth the time


def database_url(db: str) -> str:
    """A SQLAlchemy URL for `--db`: URLs as given, anything else a SQLite file (or :memory:)."""
    return db if "://" in db else f"sqlite:///{db}"


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, open the database, and serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.netgenium", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default=":memory:", help="SQLite file, :memory: (the default), or a SQLAlchemy URL")
    parser.add_argument("--schema-map", default="", help="schema map file (default: the shipped one)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("NETGENIUM_API_KEY", DEFAULT_API_KEY),
        help="the key the API expects (default: $NETGENIUM_API_KEY or a fixed sandbox key)",
    )
    parser.add_argument("--api-key-header", default="X-Api-Key")
    parser.add_argument("--max-file-bytes", type=int, default=25 * 1024 * 1024)
    parser.add_argument("--time-zone", default="UTC", help="the installation's time zone (default UTC)")
    parser.add_argument("--files-strategy", choices=["blob", "folder"], default="blob")
    parser.add_argument("--files-folder", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        schema_map = load_schema_map(args.schema_map)
    except SchemaMapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    engine, workers = open_database(database_url(args.db))
    if engine.url.get_backend_name() == "sqlite":
        create_tables(engine, schema_map)
    files = FileStore(engine, table="ng_bridge_files", strategy=args.files_strategy, folder=args.files_folder)
    store = Store(engine, schema_map, files=files, clock=LocalTime(args.time_zone))
    state = BridgeState(
        store=store,
        keys=KeyVerifier([hash_key(args.api_key, iterations=SANDBOX_KEY_ITERATIONS)]),
        api_key_header=args.api_key_header,
        max_body_bytes=max(args.max_file_bytes, 8 * 1024 * 1024),
        max_file_bytes=args.max_file_bytes,
        workers=workers,
    )
    web.run_app(build_app(Emulator(state)), host="127.0.0.1", port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
