"""What goes into the Function App's package: the app and its direct mode, none of the workbench."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _patterns() -> set[str]:
    lines = (ROOT / ".funcignore").read_text("utf-8").splitlines()
    return {line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")}


def test_the_package_leaves_out_the_workbench_and_secrets() -> None:
    ignored = _patterns()
    assert {".venv", "node_modules", "tests", "bench", "sandbox", "docs", "infra", "local.settings.json"} <= ignored
    assert ".azure" in ignored  # azd's environment values, secrets among them


def test_the_package_keeps_what_the_app_imports_and_reads() -> None:
    ignored = _patterns()
    kept = {"function_app.py", "host.json", "requirements.txt", "requirements-direct.txt", "crm_core", "bridge"}
    assert kept & ignored == set()
    assert all((ROOT / name).exists() for name in kept)
    # Nothing under crm_core may come from a folder the package leaves out.
    imported = {
        line.split()[1].split(".")[0]
        for line in (ROOT / "function_app.py").read_text("utf-8").splitlines()
        if line.startswith(("from ", "import "))
    }
    assert imported & ignored == set()
