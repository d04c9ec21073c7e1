"""Direct mode's opt-in requirements pin what the bridge pins, so both modes run the same store."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$")


def _pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text("utf-8").splitlines():
        match = PIN.match(line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_direct_mode_pins_the_bridges_versions_and_nothing_the_default_deployment_needs() -> None:
    direct = _pins(ROOT / "requirements-direct.txt")
    bridge = _pins(ROOT / "bridge" / "requirements.txt")
    default = _pins(ROOT / "requirements.txt")
    assert {"sqlalchemy", "firebird-driver", "sqlalchemy-firebird", "pyodbc"} <= set(direct)
    assert {name: version for name, version in direct.items() if bridge.get(name) != version} == {}
    assert set(direct) & set(default) == set()  # the default deployment carries none of them
