"""`python -m sandbox.runner --port P [--app-dir DIR]`: run a Functions app until SIGTERM/SIGINT.

The options are those of `func start` that tests need, so a test starts the runner the way an
operator starts Core Tools; exit status 0 on a clean stop, 1 when the app cannot start, 2 for a
host.json the host would refuse.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from azure.core.exceptions import AzureError

from sandbox import runner
from sandbox.launch import REPO_ROOT
from sandbox.runner.functions import FunctionLoadError
from sandbox.runner.host import FunctionsHost
from sandbox.runner.host_config import load_host_config
from sandbox.runner.indexing import load_local_settings
from sandbox.runner.supervisor import WORKER_SETTING, run_supervisor

log = logging.getLogger("sandbox.runner")

MESSAGE_LEASE_SETTING = "SANDBOX_RUNNER_MESSAGE_LEASE"


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The storage SDK logs every request's headers at INFO; the host's own lines say what matters.
    logging.getLogger("azure").setLevel(max(level, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """host.json's logging level applies from the start, so it is read before the app is imported."""
    description = (runner.__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m sandbox.runner", description=description)
    parser.add_argument("--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (Core Tools uses 7071)")
    parser.add_argument("--app-dir", type=Path, default=REPO_ROOT, help="folder with function_app.py and host.json")
    parser.add_argument(
        "--message-lease",
        type=float,
        default=float(os.environ.get(MESSAGE_LEASE_SETTING) or 600.0),
        help="seconds a received queue message stays invisible while it runs, renewed at half (host: 600; "
        f"the app setting {MESSAGE_LEASE_SETTING} sets the default)",
    )
    parser.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds running invocations get at stop")
    parser.add_argument("--disable", action="append", default=[], metavar="FUNCTION", help="do not run this function")
    parser.add_argument(
        "--functions", nargs="+", metavar="FUNCTION", help="run only these functions (as `func start --functions`)"
    )
    parser.add_argument(
        "--worker-process",
        action="store_true",
        default=os.environ.get(WORKER_SETTING, "").lower() in ("1", "true"),
        help="run the host and the app in a child process that POST /admin/sandbox/worker/kill can kill and "
        f"restart (the app setting {WORKER_SETTING}=1 sets this)",
    )
    args = parser.parse_args(argv)
    if args.worker_process:
        return run_supervisor(args.port, sys.argv[1:] if argv is None else argv, args.shutdown_grace)
    app_dir: Path = args.app_dir.resolve()
    load_local_settings(app_dir, os.environ)
    try:
        config = load_host_config(app_dir)
    except ValueError as error:
        print(f"sandbox.runner: {error}", file=sys.stderr)
        return 2
    _configure_logging(config.log_level)
    host = FunctionsHost(
        app_dir,
        port=args.port,
        message_lease=args.message_lease,
        shutdown_grace=args.shutdown_grace,
        disabled=args.disable,
        only=args.functions,
    )
    try:
        asyncio.run(host.serve_until_signalled())
    except (FunctionLoadError, ValueError) as error:
        log.error("Host could not start: %s", error)
        return 1
    except AzureError as error:
        log.error("Host could not start: storage is unreachable (%s: %s)", type(error).__name__, error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
