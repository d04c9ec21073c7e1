"""Fixtures shared by every test folder: one Azurite for the whole session, and the property-test profile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from sandbox.azurite import Azurite, azurite_process

# Property tests judge outcomes, not speed: a loaded CI machine must not fail them on a deadline.
settings.register_profile("crmservice", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("crmservice")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    yield from azurite_process()
