"""The bridge as installed: files in the folder, the write log, the catalog check, keys, the CLI, TLS."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import bridge.keys
from bridge.keys import KeyVerifier, hash_key, parse_hash
from crm_core.netgenium.check import run_check
from sandbox.launch import REPO_ROOT, free_port
from tests.bridge.conftest import HEADER, KEY, RunningBridge

ACTIVITIES = "/api/v1/tables/ng_activities/records"


def test_files_are_kept_in_the_folder_and_replaced_by_name(bridge: RunningBridge) -> None:
    activity = bridge.api("POST", ACTIVITIES, json={"ng_kind": "email", "ng_message_id": "<files@x>"}).json()["id"]
    files = f"{ACTIVITIES}/{activity}/files"
    first = bridge.api("POST", files, params={"column": "ng_attachments", "filename": "Offer.pdf"}, content=b"one")
    assert first.status_code == 201 and first.json()["size"] == 3
    on_disk = {p.name: p.read_bytes() for p in bridge.files_folder.iterdir()}
    assert b"one" in on_disk.values()
    again = bridge.api("POST", files, params={"column": "ng_attachments", "filename": "OFFER.PDF"}, content=b"two!")
    assert again.json() == {"file_id": first.json()["file_id"], "filename": "Offer.pdf", "size": 4}
    contents = [p.read_bytes() for p in bridge.files_folder.iterdir()]
    assert b"two!" in contents and b"one" not in contents  # the replaced bytes are gone
    got = bridge.api("GET", f"{files}/{first.json()['file_id']}")
    assert got.status_code == 200 and got.content == b"two!"
    assert bridge.api("DELETE", f"{ACTIVITIES}/{activity}").status_code == 204
    assert b"two!" not in [p.read_bytes() for p in bridge.files_folder.iterdir()]


def test_every_write_is_logged_without_its_body(bridge: RunningBridge) -> None:
    secret_body = "a body that must never reach the log"
    created = bridge.api(
        "POST", ACTIVITIES, json={"ng_kind": "email", "ng_message_id": "<logged@x.example>", "ng_body": secret_body}
    ).json()["id"]
    bridge.api("PATCH", f"{ACTIVITIES}/{created}", json={"ng_subject": "s", "ng_body": secret_body})
    bridge.api("DELETE", f"{ACTIVITIES}/{created}")
    entries = [json.loads(line) for line in bridge.log().splitlines() if line.startswith("{")]
    mine = [e for e in entries if e.get("logger") == "bridge.writes" and e.get("id") == created]
    assert [(e["op"], e["table"], e["status"]) for e in mine] == [
        ("insert", "ng_activities", 201),
        ("update", "ng_activities", 200),
        ("delete", "ng_activities", 204),
    ]
    assert mine[0]["ng_message_id"] == "<logged@x.example>"
    assert secret_body not in bridge.log() and KEY not in bridge.log()


def test_crmservice_netgenium_check_reads_the_real_catalog(bridge: RunningBridge) -> None:
    out = io.StringIO()
    assert run_check(bridge.base_url, KEY, HEADER, "", out=out) == 0, out.getvalue()
    described = {c["name"]: c for c in bridge.api("GET", "/api/v1/tables/ng_users").json()["columns"]}
    assert described["ng_name"]["max_length"] == 200 and described["ng_email"]["max_length"] == 255
    activities = {c["name"]: c for c in bridge.api("GET", "/api/v1/tables/ng_activities").json()["columns"]}
    assert activities["ng_message_key"]["unique"] and not activities["ng_message_id"]["unique"]
    assert activities["ng_body"]["type"] == "memo" and activities["ng_attachments"]["type"] == "files"


def test_a_key_is_compared_with_every_hash_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[int] = []
    real = bridge.keys.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(len(a))
        return real(a, b)

    monkeypatch.setattr(bridge.keys.hmac, "compare_digest", counting)
    verifier = KeyVerifier([hash_key("first-key-0123456789", iterations=1000), hash_key(KEY, iterations=1000)])
    assert not verifier.verify("wrong-key-0123456789")
    assert len(compared) == 2  # both hashes, no early exit
    compared.clear()
    assert verifier.verify("first-key-0123456789")
    assert len(compared) == 2  # the first matched, the second was compared all the same
    compared.clear()
    assert verifier.verify("first-key-0123456789")  # remembered: its digest is compared, in constant time
    assert compared == [hashlib.sha256().digest_size]
    assert not verifier.verify("")


def _bridge(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], cwd=REPO_ROOT, input=stdin, capture_output=True, text=True, check=False
    )


def test_hash_key_and_config_errors(tmp_path: Path) -> None:
    made = _bridge("hash-key", "--iterations", "1000", stdin="a-key-of-enough-length\n")
    assert made.returncode == 0, made.stderr
    stored = made.stdout.split("hash: ")[1].strip()
    assert parse_hash(stored)[0] == 1000 and KeyVerifier([stored]).verify("a-key-of-enough-length")
    assert _bridge("hash-key", stdin="short\n").returncode == 2
    config = tmp_path / "bridge.toml"
    config.write_text('database_url = "sqlite://"\napi_key_hashes = ["plain-key"]\ntime_zone = "Mars/Base"\n')
    refused = _bridge("serve", "--config", str(config))
    assert refused.returncode == 2
    assert "api_key_hashes" in refused.stderr and "Mars/Base" in refused.stderr
    config.write_text(f'database_url = "sqlite://"\napi_key_hashes = ["{stored}"]\nlisten = "0.0.0.0:{free_port()}"\n')
    plain = _bridge("serve", "--config", str(config))
    assert plain.returncode == 2 and "--certfile" in plain.stderr


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (cryptography comes with azure-identity)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_serve_with_tls(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    port = free_port()
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'database_url = "sqlite://"\napi_key_hashes = ["{hash_key(KEY, iterations=1000)}"]\n'
        f'listen = "127.0.0.1:{port}"\n'
    )
    command = [sys.executable, "-m", "bridge", "serve", "--config", str(config)]
    process = subprocess.Popen(
        [*command, "--certfile", str(cert_path), "--keyfile", str(key_path)], cwd=REPO_ROOT, stderr=subprocess.DEVNULL
    )
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert_path)), timeout=5) as http:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None and time.monotonic() < deadline
                try:
                    answer = http.get(f"https://127.0.0.1:{port}/api/v1/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert answer.json() == {"status": "ok", "version": "1"}
            listed = http.get(f"https://127.0.0.1:{port}/api/v1/tables/ng_users", headers={"X-Api-Key": KEY})
            assert listed.status_code == 404  # an empty database: the mapped tables are not there
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=10)
