"""The whole service through the local runner: Azurite, both emulators, the real function_app.py.

The Graph emulator runs its default, Graph's documented worst case, seeded from `CRM_TEST_SEED`
(default 1): every stack a test starts uses that seed, so a failure repeats with the same value.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_core.domain.directory import Contact, DirectoryFile, Order, User
from sandbox.stack import SandboxStack

CRM = "crm@firma.example"
USERS = [User(id=n, email=f"user{n}@firma.example", name=f"User {n}") for n in range(1, 6)]
CONTACTS = [
    Contact(id=100 + n, email=f"contact{n}@customer{n % 7}.example", company_id=10 + n % 7) for n in range(1, 41)
]
ORDERS = [Order(id=1000 + n, number=n) for n in range(1, 21)]
DIRECTORY = DirectoryFile(
    crm_address=CRM,
    users=USERS,
    contacts=CONTACTS,
    orders=ORDERS,
    excluded=["@newsletter.example"],
    order_keywords=["Order", "Objednávka"],
)


@pytest.fixture(scope="module")
def stack() -> Iterator[SandboxStack]:
    with SandboxStack(DIRECTORY, seed=SEED) as running:
        yield running


ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("CRM_TEST_SEED", "1"))
SandboxStack.default_seed = SEED  # also for the stacks tests start themselves


def crmservice(stack: SandboxStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script, as an operator runs it against this sandbox's storage."""
    assert stack.azurite is not None
    script = Path(sys.executable).parent / "crmservice"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "crm_core.cli"]
    env = {**os.environ, "AzureWebJobsStorage": stack.azurite.connection_string}
    return subprocess.run([*command, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False)
