"""function_app.py imports, registers its functions, and keeps msgraph-sdk out of its import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "CRM_MAILBOX": "crm@firma.example",
    "CRM_NOTIFICATION_URL": "https://crm.firma.example/api/notifications?code=k1",
    "CRM_LIFECYCLE_URL": "https://crm.firma.example/api/lifecycle?code=k1",
    "NETGENIUM_BASE_URL": "http://127.0.0.1:9",
    "NETGENIUM_API_KEY": "k",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "GRAPH_TENANT_ID": "t",
    "GRAPH_CLIENT_ID": "c",
    "GRAPH_CLIENT_SECRET": "s",
}

PROBE = """
import json, sys
import function_app
import azure.functions as func
functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
health = functions["health"]
request = func.HttpRequest(method="GET", url="http://localhost/api/health", body=b"")
answer = health.get_user_function()(request)
print(json.dumps({
    "functions": sorted(functions),
    "status": answer.status_code,
    "body": json.loads(answer.get_body()),
    "heavy": sorted(m for m in sys.modules if m.startswith(("msgraph", "kiota", "azure.identity"))),
}))
"""


def test_function_app_imports_and_answers_health() -> None:
    env = {**os.environ, **ENV}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "health" in report["functions"]
    assert report["status"] == 200
    assert report["body"]["status"] == "ok"
    assert set(report["body"]) == {"status", "version"}  # anonymous: no mailbox, no auth mode, no URL
    assert "firma.example" not in json.dumps(report["body"]) and "k1" not in json.dumps(report["body"])
    assert report["heavy"] == []
