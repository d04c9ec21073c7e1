"""No secret value, and no connection string with a key, in infra/, azure.yaml or local.settings.example.json.

Secrets reach the deployment as secure parameters (from the azd environment) and the app as Key
Vault references; files in the repository hold names and placeholders only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_tree import INFRA, LOCAL_SETTINGS_EXAMPLE, ROOT, bicep_files, decorators, parse_file

SCANNED = [*sorted(path for path in INFRA.rglob("*") if path.is_file()), LOCAL_SETTINGS_EXAMPLE, ROOT / "azure.yaml"]

# Connection strings and URLs that carry a key or a signature.
KEYED_CONNECTION = re.compile(
    r"AccountKey=|SharedAccessSignature=|SharedAccessKey=|InstrumentationKey=|[?&]sig=|[?&]sv=\d", re.IGNORECASE
)
# user:password@host in a URL, unless the password is a placeholder.
PASSWORD_IN_URL = re.compile(r"://[^/\s:@'\"]+:(?P<password>[^/\s@'\"]+)@")
# Password=... / Pwd=... in a connection string.
PASSWORD_FIELD = re.compile(r"\b(?:password|pwd)\s*=\s*(?P<value>[^;'\"\s]+)", re.IGNORECASE)
# A long run of key-like characters: base64 with both cases and digits (an account key, a token),
# or hex (a generated secret). GUIDs (role and app role ids) have hyphens every few characters and
# never match; lower-case paths such as a registry reference have no upper case and are not hex.
KEY_LIKE = re.compile(r"[A-Za-z0-9+/_]{32,}={0,2}")
HEX = re.compile(r"[0-9a-fA-F]{32,}")
# Names of settings and parameters whose values are secrets (a header's name is not one).
SECRET_NAME = re.compile(
    r"secret|password|token|api_?key(?!_?header)|webhookkey|database_?url|notification_url|lifecycle_url", re.I
)


def is_placeholder(value: str) -> bool:
    """Empty, an azd substitution (${NAME}), a <placeholder>, replace-with-..., or Azurite's well-known setting."""
    value = value.strip()
    return (
        value == ""
        or bool(re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(=[^}]*)?\}", value))
        or (value.startswith("<") and value.endswith(">"))
        or "replace-with-" in value
        or value == "UseDevelopmentStorage=true"
    )


def text_findings(text: str) -> list[str]:
    findings = [f"keyed connection string or URL: {match.group(0)!r}" for match in KEYED_CONNECTION.finditer(text)]
    for match in PASSWORD_IN_URL.finditer(text):
        if not is_placeholder(match.group("password")):
            findings.append(f"password in a URL: {match.group(0)!r}")
    for match in PASSWORD_FIELD.finditer(text):
        if not is_placeholder(match.group("value")):
            findings.append(f"password field: {match.group(0)!r}")
    for match in KEY_LIKE.finditer(text):
        token = match.group(0)
        mixed = re.search(r"\d", token) and re.search(r"[a-z]", token) and re.search(r"[A-Z]", token)
        if mixed or HEX.search(token):
            findings.append(f"key-like literal: {token[:6]}...")
    return findings


def json_findings(data: Any, path: str = "") -> list[str]:
    """In JSON, every value under a secret-looking name is a placeholder."""
    findings: list[str] = []
    if isinstance(data, dict):
        for name, value in data.items():
            where = f"{path}.{name}" if path else str(name)
            if isinstance(value, str) and SECRET_NAME.search(str(name)) and not is_placeholder(value):
                findings.append(f"{where} holds a value, not a placeholder")
            if isinstance(value, dict) and "value" in value and SECRET_NAME.search(str(name)):
                inner = value["value"]
                if isinstance(inner, str) and not is_placeholder(inner):
                    findings.append(f"{where} holds a value, not a placeholder")
            findings += json_findings(value, where)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            findings += json_findings(value, f"{path}[{index}]")
    return findings


def bicep_findings(tree: dict[str, Any]) -> list[str]:
    """Secure parameters have no default but empty; secret-looking parameters are @secure()."""
    findings: list[str] = []
    for name, declaration in tree.get("parameters", {}).items():
        secure = "secure" in decorators(declaration)
        default = declaration.get("default")
        if secure and default not in (None, ""):
            findings.append(f"@secure() param {name} has a default value")
        if SECRET_NAME.search(name) and not secure and declaration.get("type") in ("string", "object"):
            findings.append(f"param {name} looks secret but is not @secure()")
    for name, output in tree.get("outputs", {}).items():
        if SECRET_NAME.search(name) and "URL" not in name:
            findings.append(f"output {name} looks secret")
        if "listKeys" in json.dumps(output):
            findings.append(f"output {name} reads keys")
    return findings


@pytest.mark.parametrize("path", SCANNED, ids=[path.relative_to(ROOT).as_posix() for path in SCANNED])
def test_no_secret_in_the_text(path: Path) -> None:
    assert text_findings(path.read_text()) == []


@pytest.mark.parametrize(
    "path",
    [path for path in SCANNED if path.suffix == ".json"],
    ids=[path.relative_to(ROOT).as_posix() for path in SCANNED if path.suffix == ".json"],
)
def test_no_secret_in_json_values(path: Path) -> None:
    assert json_findings(json.loads(path.read_text())) == []


@pytest.mark.parametrize("path", bicep_files(), ids=[path.relative_to(INFRA).as_posix() for path in bicep_files()])
def test_secure_parameters_and_outputs(path: Path) -> None:
    assert bicep_findings(parse_file(path)) == []


def test_the_secrets_are_secure_parameters() -> None:
    tree = parse_file(INFRA / "main.bicep")
    secure = {name for name, item in tree["parameters"].items() if "secure" in decorators(item)}
    assert {"webhookKey", "graphClientSecret", "netgeniumApiKey", "netgeniumDatabaseUrl"} <= secure


# The scanners themselves: each catches what it is for, and lets placeholders through.

ACCOUNT_KEY = "Zm9vYmFyYmF6cXV4" * 5 + "=="  # shaped like a storage account key, made up


@pytest.mark.parametrize(
    "text",
    [
        f"DefaultEndpointsProtocol=https;AccountName=st1;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
        "https://st1.blob.core.windows.net/c?sv=2022-11-02&ss=b&sig=abc",
        "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=abc",
        "mssql+pyodbc://crm:Tr0ub4dor@sql.example/ng?driver=ODBC+Driver+18",
        "Server=sql;Database=ng;User Id=crm;Password=Tr0ub4dor;",
        f"param apiKey string = '{ACCOUNT_KEY}'",
        "token = 'f3a9c2b7e1d04a6b8c5e2f7a9d1b3c4e5f6a7b8c'",
    ],
)
def test_the_text_scanner_catches(text: str) -> None:
    assert text_findings(text)


@pytest.mark.parametrize(
    "text",
    [
        "AzureWebJobsStorage__credential: 'managedidentity'",
        "'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner",
        "mssql+pyodbc://crm:${DB_PASSWORD}@sql.example/ng",
        "@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/netgenium-api-key)",
        "UseDevelopmentStorage=true",
    ],
)
def test_the_text_scanner_lets_through(text: str) -> None:
    assert text_findings(text) == []


def test_the_json_scanner_catches_a_value_under_a_secret_name() -> None:
    assert json_findings({"Values": {"NETGENIUM_API_KEY": "k3y-for-real"}})
    assert json_findings({"parameters": {"graphClientSecret": {"value": "s3cret"}}})
    assert json_findings({"Values": {"CRM_NOTIFICATION_URL": "https://x.example/api/notifications?code=abc"}})
    assert json_findings({"Values": {"NETGENIUM_API_KEY": "replace-with-the-key"}}) == []
    assert json_findings({"parameters": {"graphClientSecret": {"value": "${GRAPH_CLIENT_SECRET}"}}}) == []


def test_the_bicep_scanner_catches(tmp_path: Path) -> None:
    path = tmp_path / "bad.bicep"
    path.write_text(
        "@secure()\nparam webhookKey string = 'abc'\n"
        "param graphClientSecret string = ''\n"
        "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n  name: 'st'\n}\n"
        "output storageKey string = st.listKeys().keys[0].value\n"
    )
    findings = bicep_findings(parse_file(path))
    assert any("webhookKey has a default" in finding for finding in findings), findings
    assert any("graphClientSecret looks secret" in finding for finding in findings), findings
    assert any("reads keys" in finding for finding in findings), findings
