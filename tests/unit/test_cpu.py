"""ProcessWork: large bodies are converted in a worker process that a budget can stop."""

from __future__ import annotations

import functools
import os
import time

import pytest

from crm_core.cpu import ProcessWork
from crm_core.domain.email_content import email_content
from crm_core.domain.mail import GraphMessage
from tests.unit.messages import mail


async def test_a_call_runs_in_another_process_and_returns_its_result() -> None:
    work = ProcessWork()
    try:
        assert await work.run(os.getpid) != os.getpid()
        message = GraphMessage.model_validate(mail(body="<p>Order:4</p>" * 10, html=True))
        content = await work.run(functools.partial(email_content, message, direction="incoming"), budget=60)
        assert "Order:4" in content.body_text
    finally:
        work.close()


async def test_a_call_over_its_budget_is_stopped_and_the_next_call_gets_a_new_worker() -> None:
    work = ProcessWork()
    try:
        first = await work.run(os.getpid, budget=60)
        with pytest.raises(TimeoutError):
            await work.run(functools.partial(time.sleep, 30), budget=0.5)
        second = await work.run(os.getpid, budget=60)
        assert second != first  # the stuck worker was killed, not left running
    finally:
        work.close()
