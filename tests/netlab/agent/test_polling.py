"""Predictive polling: per-flow arrival prediction, the CPU budget, the wire
encoding's fast path, and a real agent that polls for a periodic flow within budget."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from endpoints import agent_protocol as proto
from endpoints.agent_client import AgentClient
from netlab.agent.arrivals import MARGIN_NS, MIN_ERRORS, ArrivalPredictor
from netlab.agent.polling import SpinBudget
from tests.netlab.agent.conftest import RunningAgent

PERIOD = 20_000_000  # 50 Hz


def _feed(predictor: ArrivalPredictor, times: list[int]) -> None:
    for t in times:
        predictor.arrived(t)


def test_periodic_flow_gets_a_window_around_its_next_request() -> None:
    rng = np.random.default_rng(3)
    jitter = rng.normal(150_000, 30_000, 60).astype(int)  # a woken flow: late, jittery
    times = [10**12 + k * PERIOD + int(j) for k, j in enumerate(jitter)]
    predictor = ArrivalPredictor()
    _feed(predictor, times[:MIN_ERRORS])
    assert predictor.window(times[MIN_ERRORS - 1]) is None  # too few checked predictions
    covered = 0
    for t in times[MIN_ERRORS:]:
        window = predictor.window(t - 5_000_000)
        if window is not None and window[0] <= t <= window[1]:
            covered += 1
            assert window[1] - window[0] < 2_000_000  # narrow: a few jitters wide
        predictor.arrived(t)
    assert covered >= 0.8 * (len(times) - MIN_ERRORS)
    assert abs(predictor.period_ns - PERIOD) < 100_000


def test_irregular_and_stopped_flows_get_no_window() -> None:
    rng = np.random.default_rng(4)
    irregular = ArrivalPredictor()
    _feed(irregular, list(np.cumsum(rng.integers(1_000_000, 40_000_000, 60)) + 10**12))
    last = irregular.last_ns
    assert irregular.window(last + 1000) is None  # its errors exceed the largest window
    regular = ArrivalPredictor()
    _feed(regular, [10**12 + k * PERIOD for k in range(30)])
    window = regular.window(regular.last_ns + 1000)
    assert window is not None
    assert window[0] <= regular.last_ns + PERIOD - MARGIN_NS + 1
    assert regular.window(regular.last_ns + 6 * PERIOD) is None  # it stopped asking


def test_lag_to_the_socket_shifts_the_window() -> None:
    predictor = ArrivalPredictor()
    _feed(predictor, [10**12 + k * PERIOD for k in range(30)])
    before = predictor.window(predictor.last_ns + 1000)
    for _ in range(MIN_ERRORS):
        predictor.reached(120_000)
    after = predictor.window(predictor.last_ns + 1000)
    assert before is not None and after is not None
    assert after[0] - before[0] == 120_000  # opens when requests reach the socket


def test_spin_budget_is_a_share_of_one_core() -> None:
    never = SpinBudget(0.0)
    assert not never.available(1)
    budget = SpinBudget(0.1)
    now = 10**12
    assert budget.available(now)
    budget.spend(200_000_000)  # a 200 ms burst: over the 100 ms bucket
    assert not budget.available(now + 50_000_000)  # refills at 0.1 s per s: 5 ms so far
    assert budget.available(now + 1_050_000_000)
    assert budget.refused == 1


@given(st.lists(st.floats(allow_nan=False, width=32) | st.integers(-2**24, 2**24),
                max_size=80))
def test_struct_encoding_matches_numpy_bytes(values: list[float]) -> None:
    """The struct fast path (small vectors) writes the same bytes as numpy would."""
    expected = np.ascontiguousarray(values, dtype="<f4").ravel().tobytes()
    data = proto.encode(proto.Kind.OBSERVE, 1, 2, 3, values)
    assert data[proto.HEADER_SIZE:] == expected
    data = proto.encode(proto.Kind.OBSERVE, 1, 2, 3, np.asarray(values, dtype=np.float32))
    assert data[proto.HEADER_SIZE:] == expected


def test_encoding_edge_cases_follow_numpy() -> None:
    for vector in ([[1.0, 2.0]], np.zeros((1, 4)), [True, False], np.arange(300.0)):
        expected = np.ascontiguousarray(vector, dtype="<f4").ravel().tobytes()
        assert proto.encode(proto.Kind.ACTION, 0, 0, 0, vector)[proto.HEADER_SIZE:] == expected
    with pytest.warns(RuntimeWarning):  # beyond float32: numpy's inf, not an exception
        data = proto.encode(proto.Kind.ACTION, 0, 0, 0, [1e40])
    assert np.isinf(np.frombuffer(data, "<f4", offset=proto.HEADER_SIZE)).all()


def test_agent_polls_for_a_periodic_flow_within_its_budget(
        start_agent: Callable[..., RunningAgent]) -> None:
    agent = start_agent("--poll-budget", "0.1", "--priority", "none")
    client = AgentClient(agent.socket, policy="rtc-onl4", obs_size=4, action_size=1,
                         deadline_s=0.05)
    obs = np.array([1e6, 10.0, 0.0, 1e6], dtype=np.float32)
    started = time.monotonic()
    try:
        assert client.decide(obs, wait_s=5).action is not None
        next_t = time.monotonic()
        for _ in range(100):  # 2 s at 50 Hz
            next_t += PERIOD / 1e9
            time.sleep(max(0.0, next_t - time.monotonic()))
            client.decide(obs)
    finally:
        client.close()
        agent.stop()
    elapsed = time.monotonic() - started
    stats = json.loads(agent.stats.read_text())
    assert stats["decisions"] == 101
    assert stats["spins"] > 0  # windows were predicted and polled in
    # a 0.1-core bucket: at most 0.1 s of burst plus 0.1 s per second of running
    assert stats["polling"]["spin_s"] <= 0.1 + 0.1 * (elapsed + 5)
    assert stats["breakdown_us"]["to_agent"]["p50"] is not None


def test_a_scenario_agent_poll_share_reaches_the_agent_command(tmp_path: Path) -> None:
    """``agents.<host>.poll`` is the agent's ``--poll-budget``, within the agent's own
    limit, and absent (no poller is built) when it is 0."""
    from netlab.agent.lab import agent_command
    from netlab.agent.polling import MAX_POLL_BUDGET
    from netlab.scenario.model import Agent
    from netlab.scenario.values import MAX_POLL_SHARE

    assert MAX_POLL_SHARE == MAX_POLL_BUDGET
    polling = agent_command(Agent("bob", None, poll_share=0.3), tmp_path / "a.sock",
                            tmp_path / "a.ctl", tmp_path, None, seed=1)
    assert polling[polling.index("--poll-budget") + 1] == "0.3"
    plain = agent_command(Agent("bob", None), tmp_path / "a.sock", tmp_path / "a.ctl",
                          tmp_path, None, seed=1)
    assert "--poll-budget" not in plain
