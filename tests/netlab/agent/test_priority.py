"""The agent's serving thread takes the ladder's agent rung: below the links it must not delay."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from labcore.priority import AGENT, SHAPING
from tests.netlab.agent.conftest import RunningAgent


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs CAP_SYS_NICE")
def test_the_serving_thread_sits_below_the_link_and_replayers(
    start_agent: Callable[..., RunningAgent],
) -> None:
    agent = start_agent(checkpoint=None)  # the initial policy: no checkpoint file needed
    deadline = time.monotonic() + 30
    while "agent: scheduling" not in agent.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "agent: scheduling fifo" in agent.log.read_text()
    pid = agent.proc.pid  # the main thread serves
    assert os.sched_getscheduler(pid) == os.SCHED_FIFO
    assert os.sched_getparam(pid).sched_priority == AGENT.fifo
    assert AGENT.fifo is not None and SHAPING.fifo is not None and AGENT.fifo < SHAPING.fifo
