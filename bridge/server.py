"""Putting a bridge together from its settings, and serving it (plain HTTP or TLS).

Plain HTTP is for loopback or behind IIS/nginx, which then terminate TLS; anything else should
run with `--certfile/--keyfile`. The bridge refuses to listen on a non-loopback address without
TLS unless `--allow-plain-http` says a proxy in front terminates it.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import sys
from pathlib import Path

from aiohttp import web

from bridge.app import BridgeState, build_app
from bridge.config import BridgeConfig
from bridge.continuations import Continuations
from bridge.database import open_database
from bridge.files import FileStore
from bridge.keys import KeyVerifier
from bridge.store import Store
from bridge.values import LocalTime
from crm_core.netgenium.schema_map import load_schema_map

logger = logging.getLogger("bridge")


def make_state(config: BridgeConfig) -> BridgeState:
    """The store over the configured database, with the key check and the limits."""
    engine, workers = open_database(config.database_url)
    files = FileStore(engine, table=config.files.table, strategy=config.files.strategy, folder=config.files.folder)
    secret = config.continuation_secret.encode() or None
    store = Store(
        engine,
        load_schema_map(config.schema_map),
        files=files,
        clock=LocalTime(config.time_zone),
        continuations=Continuations(secret),
    )
    return BridgeState(
        store=store,
        keys=KeyVerifier(config.api_key_hashes),
        api_key_header=config.api_key_header,
        max_body_bytes=config.max_body_bytes,
        max_file_bytes=config.max_file_bytes,
        workers=workers,
    )


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: BridgeConfig, *, certfile: Path | None, keyfile: Path | None, allow_plain_http: bool) -> int:
    """Serve until stopped; 2 when the settings do not allow it."""
    host, port = config.host_port()
    context: ssl.SSLContext | None = None
    if certfile is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile, keyfile)
    elif not is_loopback(host) and not allow_plain_http:
        print(
            f"error: {host} is not a loopback address: give --certfile/--keyfile, or --allow-plain-http "
            "when IIS or nginx in front terminates TLS",
            file=sys.stderr,
        )
        return 2
    state = make_state(config)
    missing = sorted(set(state.store.schema_map.tables()) - set(state.store.tables))
    for table in missing:
        logger.warning("the database has no table %s that the schema map names", table)
    web.run_app(build_app(state), host=host, port=port, ssl_context=context, print=None, access_log=None)
    return 0
