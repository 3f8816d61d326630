"""The Gymnasium environment over a real lab: the env checker, real steps, wall-clock info."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import netlab.gym  # noqa: F401  (registers netlab/LabRtc-v0)
from netlab.errors import NetlabError
from netlab.learning.scenario_set import EnvConfig

ENV = EnvConfig(max_bw_mbps=2.0, bw_ratio=1.0, change_interval_s=0.0, delay_ms=10,
                queue_pkt=40, duration_s=4.0, seed=3)


@pytest.fixture
def env() -> Iterator[Any]:
    made = gymnasium.make("netlab/LabRtc-v0", envs=[ENV], lab="fttgym")
    try:
        yield made
    finally:
        made.close()


def test_env_checker_passes(env: Any) -> None:
    check_env(env.unwrapped, skip_render_check=True)


def test_steps_are_wall_clock_and_apply_the_action(env: Any) -> None:
    obs, info = env.reset(seed=5)
    assert obs.shape == (4,) and "run_dir" in info
    delays, waits, rewards, steps = [], [], [], 0
    truncated = False
    # A fixed high action (≈ 4.6 Mbit/s on OpenNetLab's log scale): the estimate
    # the flow reports back (obs[3], the last estimate) must be that action.
    action = np.array([0.93], dtype=np.float32)
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(action)
        assert not terminated
        steps += 1
        if not truncated:
            delays.append(info["action_delay_ms"])
            waits.append(info["wait_ms"])
            rewards.append(float(reward))
    # 4 s of 200 ms receiver polls: about 20 steps, each waiting for real time.
    assert 12 <= steps <= 24, steps
    assert float(np.median(waits)) > 100.0
    assert float(np.median(delays)) < 50.0  # the deadline the flow waits for
    assert info["late_actions"] <= steps // 4
    expected = float(env.unwrapped._to_action(np.array([[0.93]]))[0, 0])
    assert info["action_bps"] == pytest.approx(expected)
    # last-estimate feature, normalised like OpenNetLab: log(4.6M) on 10k..8M.
    assert obs[3] == pytest.approx(0.93, abs=0.02)
    assert max(rewards) > 0.3  # receiving at a Mbit/s rate scores on the log scale


def test_reward_is_a_parameter_and_capacity_reads_the_trace() -> None:
    with pytest.raises(NetlabError, match="unknown reward"):
        gymnasium.make("netlab/LabRtc-v0", envs=[ENV], reward="score")
    made = gymnasium.make("netlab/LabRtc-v0", envs=[ENV], lab="fttgymc", reward="capacity")
    try:
        made.reset(seed=1)
        rewards, capacities, truncated = [], [], False
        while not truncated:
            _, reward, _, truncated, info = made.step(np.array([0.8], dtype=np.float32))
            if not truncated:
                rewards.append(float(reward))
                capacities.append(info["capacity_bps"])
    finally:
        made.close()
    # A constant 2 Mbit/s trace (bw_ratio 1): what it offered over every window.
    assert capacities and all(c == pytest.approx(2e6) for c in capacities), capacities
    assert all(0.0 <= r <= 1.0 for r in rewards) and max(rewards) > 0.5, rewards


def test_a_history_env_speaks_rtc_hist() -> None:
    """``history=3``: 12-value observations whose older states are the earlier
    steps', and actions that multiply the flow's estimate (×2 from the top)."""
    with pytest.raises(NetlabError, match="no RTC contract"):
        gymnasium.make("netlab/LabRtc-v0", envs=[ENV], history=0)
    made = gymnasium.make("netlab/LabRtc-v0", envs=[ENV], lab="fttgymh", history=3)
    try:
        first, _ = made.reset(seed=2)
        assert first.shape == (12,) and made.observation_space.contains(first)
        seen = [first]
        truncated = False
        while not truncated and len(seen) < 6:
            obs, _, _, truncated, info = made.step(np.array([1.0], dtype=np.float32))
            if not truncated:
                seen.append(obs)
        assert info["action_factor"] == pytest.approx(2.0)
    finally:
        made.close()
    for older, newer in itertools.pairwise(seen[1:]):
        np.testing.assert_array_equal(newer[4:8], older[:4])
    assert seen[5][3] > seen[2][3] > 0  # the last estimate grows as it is doubled
