"""`python -m bridge serve --config bridge.toml` and `python -m bridge hash-key`.

serve     the record API (crm_core/netgenium/openapi.yaml) over the NET Genium database
hash-key  a new API key and the hash for bridge.toml (or the hash of a key given on stdin)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bridge.config import ConfigError, load_config
from bridge.keys import DEFAULT_ITERATIONS, hash_key, new_key
from crm_core.netgenium.schema_map import SchemaMapError


class _JsonLines(logging.Formatter):
    """One JSON object a line: the write log is read by programs as much as by people."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name}
        message = record.getMessage()
        try:
            parsed = json.loads(message)
            entry.update(parsed if isinstance(parsed, dict) else {"message": message})
        except ValueError:
            entry["message"] = message
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _hash_key(iterations: int) -> int:
    if sys.stdin.isatty():
        key = new_key()
        print(f"key:  {key}   (give it to the service as NETGENIUM_API_KEY; it is shown only now)")
    else:
        key = sys.stdin.readline().rstrip("\r\n")
        if len(key) < 16:
            print("error: a key needs at least 16 characters", file=sys.stderr)
            return 2
    print(f"hash: {hash_key(key, iterations=iterations)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the record API")
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument("--certfile", type=Path)
    serve.add_argument("--keyfile", type=Path)
    serve.add_argument("--allow-plain-http", action="store_true", help="IIS or nginx in front terminates TLS")
    hashing = commands.add_parser("hash-key", help="make a key and its hash (or hash a key read from stdin)")
    hashing.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    args = parser.parse_args(argv)
    if args.command == "hash-key":
        return _hash_key(args.iterations)
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
        from bridge.server import serve as run  # the database drivers load only for serve

        return run(config, certfile=args.certfile, keyfile=args.keyfile, allow_plain_http=args.allow_plain_http)
    except (ConfigError, SchemaMapError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
