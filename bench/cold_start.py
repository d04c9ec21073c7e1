"""Cold import of the Functions app: `import function_app` in fresh processes, against
`import azure.functions` alone (the floor every Python Functions app pays). Median of N runs.

    python bench/cold_start.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Plausible app settings, so that importing the app gets past its settings check.
SETTINGS = {
    "CRM_MAILBOX": "crm@firma.example",
    "CRM_NOTIFICATION_URL": "https://crm.firma.example/api/notifications?code=k1",
    "CRM_LIFECYCLE_URL": "https://crm.firma.example/api/lifecycle?code=k1",
    "NETGENIUM_BASE_URL": "http://127.0.0.1:9",
    "NETGENIUM_API_KEY": "bench",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "GRAPH_TENANT_ID": "tenant",
    "GRAPH_CLIENT_ID": "client",
    "GRAPH_CLIENT_SECRET": "secret",
}
TIMER = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def cold_import_seconds(module: str, runs: int) -> float:
    env = {**os.environ, **SETTINGS, "PYTHONDONTWRITEBYTECODE": "0"}
    # One untimed run first, so every timed one finds the bytecode cache warm, as a deployed app does.
    times = []
    for index in range(runs + 1):
        out = subprocess.run(
            [sys.executable, "-c", TIMER.format(module=module)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        if index:
            times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    app = cold_import_seconds("function_app", args.runs)
    floor = cold_import_seconds("azure.functions", args.runs)
    print(
        json.dumps(
            {
                "cold_import_s": round(app, 3),
                "cold_import_ratio": round(app / floor, 2),
                "azure_functions_import_s": round(floor, 3),
                "runs": args.runs,
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
