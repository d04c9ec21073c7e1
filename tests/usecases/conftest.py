"""Fakes for the use cases' ports; the capture ledger is either the in-memory fake or the real
CaptureLedger over the session's Azurite (per-test tables), so that the fake stays honest."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from crm_core.storage.ledger import CaptureLedger
from crm_core.storage.tables import TableStorage
from crm_core.usecases.mail_capture import CaptureOptions, MailCapture
from sandbox.azurite import Azurite
from tests.unit.messages import CRM, RULES
from tests.usecases.fakes import FakeActivityStore, FakeCorrespondents, FakeLedger, FakeMailSource

WORKER = "worker-a"


@pytest.fixture
async def storage(azurite: Azurite) -> AsyncIterator[TableStorage]:
    # Tables are per test (by prefix), so that tests never see each other's rows.
    prefix = "u" + uuid.uuid4().hex[:10]
    async with TableStorage.from_connection_string(azurite.connection_string, prefix=prefix) as store:
        yield store


@pytest.fixture(params=["memory", "table"])
def ledger(request: pytest.FixtureRequest) -> FakeLedger | CaptureLedger:
    if request.param == "memory":
        return FakeLedger()
    return CaptureLedger(request.getfixturevalue("storage"))


@pytest.fixture
def source() -> FakeMailSource:
    return FakeMailSource(CRM)


@pytest.fixture
def crm() -> FakeActivityStore:
    return FakeActivityStore()


@pytest.fixture
def correspondents() -> FakeCorrespondents:
    return FakeCorrespondents()


MakeCapture = Callable[..., MailCapture]


@pytest.fixture
def make_capture(
    source: FakeMailSource, crm: FakeActivityStore, ledger: Any, correspondents: FakeCorrespondents
) -> MakeCapture:
    def build(*, worker: str = WORKER, ledger_: Any = None, **options: Any) -> MailCapture:
        return MailCapture(
            source,
            crm,
            ledger_ if ledger_ is not None else ledger,
            correspondents,
            RULES,
            worker=worker,
            options=CaptureOptions(**options),
        )

    return build


@pytest.fixture
def capture(make_capture: MakeCapture) -> MailCapture:
    return make_capture()
