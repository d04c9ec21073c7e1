"""Leases stay short and are renewed while their holder works: a process that dies mid-run frees
the mailbox (or calendar) within a lease, and one that runs long never loses it to a second reader.
Each case runs on the in-memory fake and on the real Table leases (Azurite)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from crm_core.storage.leases import MailboxLeases
from crm_core.storage.tables import TableStorage
from crm_core.usecases.leasing import Lease, held
from tests.usecases.fakes import FakeLeases

SHORT = 0.6  # seconds: a lease this short shows renewal within a test


class Busy(Exception):
    pass


@pytest.fixture(params=["memory", "table"])
def leases(request: pytest.FixtureRequest) -> Lease:
    if request.param == "memory":
        return FakeLeases()
    storage: TableStorage = request.getfixturevalue("storage")
    return MailboxLeases(storage)


async def test_a_run_longer_than_its_lease_keeps_it_and_frees_it_at_the_end(leases: Lease) -> None:
    taken_by_other: list[bool] = []
    async with held(leases, "box@x", "first", Busy, seconds=SHORT):
        for _ in range(6):  # three leases long
            await asyncio.sleep(SHORT / 2)
            taken_by_other.append(await leases.acquire("box@x", "second", SHORT))
    assert taken_by_other == [False] * 6
    assert await leases.acquire("box@x", "second", SHORT)  # released at the end


async def test_a_holder_that_died_blocks_the_next_for_one_lease_only(leases: Lease) -> None:
    # A killed process took the lease and never renewed or released it.
    assert await leases.acquire("box@x", "killed", SHORT)
    with pytest.raises(Busy):
        async with held(leases, "box@x", "next", Busy, seconds=SHORT):
            pass
    await asyncio.sleep(SHORT + 0.2)
    async with held(leases, "box@x", "next", Busy, seconds=SHORT):
        assert not await leases.acquire("box@x", "killed-restarted", SHORT)


async def test_a_failed_renewal_is_tried_again_and_the_lease_survives() -> None:
    class Flaky(FakeLeases):
        failures = 1

        async def acquire(self, mailbox: str, holder: str, seconds: float) -> bool:
            if holder == "first" and mailbox in self.held and self.failures:
                self.failures -= 1
                raise OSError("storage hiccup")
            return await super().acquire(mailbox, holder, seconds)

    leases = Flaky()
    async with held(leases, "box@x", "first", Busy, seconds=SHORT):
        await asyncio.sleep(SHORT * 1.5)  # past the first (failed) beat and the second (good) one
        assert leases.failures == 0
        assert not await leases.acquire("box@x", "second", SHORT)


async def test_a_lease_lost_to_a_stall_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    leases = FakeLeases()
    caplog.set_level(logging.WARNING, logger="crm_core.leases")
    async with held(leases, "box@x", "first", Busy, seconds=SHORT):
        leases.held["box@x"] = ("other", datetime.now(UTC) + timedelta(seconds=60))  # it ran out and another took it
        await asyncio.sleep(SHORT / 3 + 0.2)
    assert any("took the lease over" in r.getMessage() for r in caplog.records)
    assert leases.held["box@x"][0] == "other"  # the release left the other holder's lease alone
