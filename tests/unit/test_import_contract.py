"""The import contract of docs/DESIGN.md section 2 holds, and it bites: a forbidden import fails it by name.

`scripts/test.sh` runs `lint-imports` on the tree itself; these tests prove that the contracts in
pyproject.toml are not vacuous, by planting one forbidden import per layer in a copy of the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tree, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    for name in ("crm_core", "sandbox"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "named"),
    [
        ("crm_core/domain/orders.py", "import crm_core.storage.tables", "crm_core.domain.orders -> crm_core.storage"),
        ("crm_core/domain/addresses.py", "import httpx", "crm_core.domain.addresses -> httpx"),
        ("crm_core/usecases/mailbox_sync.py", "import crm_core.graph.errors", "mailbox_sync -> crm_core.graph"),
        ("crm_core/usecases/mail_capture.py", "import azure.data.tables", "mail_capture -> azure"),
        ("crm_core/storage/ledger.py", "import crm_core.usecases.mail_capture", "ledger -> crm_core.usecases"),
        ("crm_core/netgenium/client.py", "import crm_core.graph.errors", "crm_core.netgenium.client -> crm_core.graph"),
        ("crm_core/runtime.py", "import sandbox.stack", "crm_core.runtime -> sandbox"),
    ],
)
def test_a_forbidden_import_fails_the_contract_by_name(
    tree: Path, tmp_path: Path, module: str, planted: str, named: str
) -> None:
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    with (copy / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{planted}  # planted by the test\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert named in result.stdout, result.stdout
