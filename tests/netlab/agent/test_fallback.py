"""Fallback: a stopped or slowed agent turns decisions into misses within the
deadline, the fallback acts and its time is counted; timely replies end it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import numpy as np

from endpoints.agent_client import AgentClient
from endpoints.agent_rtc import PolicyEstimator
from tests.netlab.agent.conftest import RunningAgent

OBS = np.array([1e6, 10.0, 0.0, 1e6], dtype=np.float32)
DEADLINE_S = 0.02  # generous for a shared 2-core machine: misses here mean "no reply"


def _stats(seq: int) -> dict[str, int]:
    now_ms = time.monotonic_ns() // 1_000_000
    return {"send_time_ms": now_ms - 20, "arrival_time_ms": now_ms, "payload_type": 96,
            "sequence_number": seq, "ssrc": 1, "padding_length": 0, "header_length": 24,
            "payload_size": 1000}


def test_slowed_agent_misses_then_recovers(start_agent: Callable[..., RunningAgent]) -> None:
    agent = start_agent()
    client = AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1,
                         deadline_s=DEADLINE_S)
    try:
        assert client.decide(OBS, wait_s=5).action is not None  # warm, connected
        os.kill(agent.proc.pid, signal.SIGSTOP)  # "slowed": it answers nothing for a while
        try:
            for _ in range(5):
                started = time.monotonic()
                assert client.decide(OBS).action is None
                assert time.monotonic() - started < DEADLINE_S + 0.05  # never blocks longer
            time.sleep(0.2)
        finally:
            os.kill(agent.proc.pid, signal.SIGCONT)
        assert client.in_fallback
        timely = None
        for _ in range(200):  # the backlog is answered late, then replies are on time
            if client.decide(OBS).action is not None:
                timely = client.stats.timely
                break
            time.sleep(0.01)
        assert timely is not None
        assert not client.in_fallback
        assert client.stats.misses >= 5
        assert client.stats.fallback_s >= 0.2
        assert client.stats.late_replies >= 1
    finally:
        client.close()


def test_stopped_agent_switches_estimator_to_gcc(
        start_agent: Callable[..., RunningAgent]) -> None:
    agent = start_agent()
    client = AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1,
                         deadline_s=DEADLINE_S, reconnect_interval_s=0.1)
    estimator = PolicyEstimator(client, fallback="gcc")
    assert estimator.gcc is not None
    seq = 0
    try:
        for _ in range(3):
            for _ in range(10):
                seq += 1
                estimator.report_states(_stats(seq))
            estimator.get_estimated_bandwidth()
        assert estimator.policy_estimates == 3
        agent.stop()  # the agent goes away mid-run
        estimates = []
        for _ in range(5):
            for _ in range(10):
                seq += 1
                estimator.report_states(_stats(seq))
            started = time.monotonic()
            estimates.append(estimator.get_estimated_bandwidth())
            assert time.monotonic() - started < DEADLINE_S + 0.05
            time.sleep(0.03)
        assert estimator.fallback_estimates == 5
        assert estimates[-1] == int(estimator.gcc.bwe.target_bps)
        summary = estimator.summary()
        assert summary["misses"] == 5 and summary["in_fallback"]
        assert summary["fallback_s"] > 0.1
    finally:
        client.close()
