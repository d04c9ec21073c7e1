"""`crmservice netgenium check` as an administrator runs it: settings from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandbox.launch import ServerProcess
from tests.netgenium.ng_helpers import API_KEY, API_KEY_HEADER

ROOT = Path(__file__).resolve().parents[2]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "crmservice"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETGENIUM_")}
    return subprocess.run(
        [*command, "netgenium", "check", *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_reads_the_environment_and_answers(emulator: ServerProcess) -> None:
    env = {
        "NETGENIUM_BASE_URL": emulator.base_url,
        "NETGENIUM_API_KEY": API_KEY,
        "NETGENIUM_API_KEY_HEADER": API_KEY_HEADER,
    }
    result = run(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK")
    wrong_key = run({**env, "NETGENIUM_API_KEY": "not-the-key"})
    assert wrong_key.returncode == 2
    assert API_KEY not in wrong_key.stdout + wrong_key.stderr


def test_check_names_missing_settings() -> None:
    result = run({})
    assert result.returncode == 2
    assert "NETGENIUM_BASE_URL and NETGENIUM_API_KEY must be set" in result.stderr
