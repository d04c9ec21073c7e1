"""Fixtures shared by every test folder: one Azurite for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.azurite import Azurite, azurite_process


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    yield from azurite_process()
