"""Every .bicep file under infra/ parses with a real Bicep parser (pycep-parser), offline."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.infra.bicep_tree import INFRA, bicep_files, parse_file

FILES = bicep_files()


def test_the_deployment_has_its_files() -> None:
    names = {path.relative_to(INFRA).as_posix() for path in FILES}
    assert {
        "main.bicep",
        "graph.bicep",
        "modules/function-app.bicep",
        "modules/keyvault.bicep",
        "modules/monitoring.bicep",
        "modules/storage.bicep",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=[path.relative_to(INFRA).as_posix() for path in FILES])
def test_parses(path: Path) -> None:
    tree = parse_file(path)
    assert tree.get("resources") or tree.get("modules"), f"{path.name}: parsed, but declares nothing"


# Ways to break a file that the Bicep compiler refuses: an object left open, a stray token where a
# declaration must start, a resource without its type string.
def _drop_last_closing_brace(text: str) -> str:
    lines = text.splitlines()
    last = max(index for index, line in enumerate(lines) if line.strip() == "}")
    return "\n".join(lines[:last] + lines[last + 1 :]) + "\n"


BREAKAGES = [
    ("object left open", _drop_last_closing_brace),
    ("stray token", lambda text: text + "\nthis is not bicep\n"),
    ("resource without a type", lambda text: text + "\nresource broken = {\n  name: 'x'\n}\n"),
]


@pytest.mark.parametrize("label,breaks", BREAKAGES, ids=[label for label, _ in BREAKAGES])
@pytest.mark.parametrize("path", FILES, ids=[path.relative_to(INFRA).as_posix() for path in FILES])
def test_a_broken_copy_fails_the_check(tmp_path: Path, path: Path, label: str, breaks: Callable[[str], str]) -> None:
    """The check above is no rubber stamp: the same file, broken, in a copy of infra/, fails it."""
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    target = copy / path.relative_to(INFRA)
    target.write_text(breaks(target.read_text()))
    with pytest.raises(Exception) as caught:
        parse_file(target)
    assert not isinstance(caught.value, AssertionError), label
    # The unbroken files of the copy still parse: only the broken one fails.
    for other in bicep_files(copy):
        if other != target:
            parse_file(other)
