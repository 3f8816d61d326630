"""The simulator's gym env takes its reward as a parameter; the capacity reward reads
the trace over the state's window."""

from __future__ import annotations

import numpy as np
import pytest

from endpoints.metrics.objectives import capacity_reward
from netlab.learning.sim import SimConfig
from netlab.learning.sim.env import SimEnv, action_to_bps
from shaping.traces import Trace


def _mean_reward(reward: str, action: float, rate_bps: float) -> float:
    env = SimEnv([Trace.constant(rate_bps, 6.0)], SimConfig(duration_s=6.0, step_s=0.2,
                                                            record=False), reward=reward)
    env.reset(seed=0)
    rewards, truncated = [], False
    while not truncated:
        _, value, _, truncated, _ = env.step(np.array([action], dtype=np.float32))
        rewards.append(float(value))
    return float(np.mean(rewards[len(rewards) // 2:]))  # after the start-up


def test_capacity_reward_scales_with_the_link_and_qoe_does_not() -> None:
    half_of_1m = 0.5  # action 0.5 is about 0.28 Mbit/s on OpenNetLab's log scale
    assert action_to_bps(half_of_1m) == pytest.approx(282_843, rel=0.01)
    # On a 0.3 Mbit/s link the action nearly fills it; on 3 Mbit/s it uses a tenth.
    slow = _mean_reward("capacity", half_of_1m, 0.3e6)
    fast = _mean_reward("capacity", half_of_1m, 3e6)
    assert slow - fast > 0.15, (slow, fast)
    # qoe prices the rate on a fixed log scale: the same action earns about the same.
    assert abs(_mean_reward("qoe", half_of_1m, 0.3e6)
               - _mean_reward("qoe", half_of_1m, 3e6)) < 0.05


def test_step_reward_is_the_shared_function_of_state_and_window_capacity() -> None:
    trace = Trace(times_s=(0.0, 2.0), rates_bps=(1e6, 2e6), period_s=4.0)
    env = SimEnv([trace], SimConfig(duration_s=4.0, step_s=0.2, record=False),
                 reward="capacity")
    env.reset(seed=3)
    for _ in range(15):
        obs, value, *_ = env.step(np.array([0.6], dtype=np.float32))
        sim = env.sim
        assert sim is not None
        end_s = sim.now_us / 1e6
        offered = trace.mean_capacity_bps(end_s - 0.06, end_s)
        assert float(value) == pytest.approx(capacity_reward(list(obs), offered))


def test_unknown_reward_is_refused() -> None:
    with pytest.raises(ValueError, match="one of capacity, onl, qoe"):
        SimEnv([Trace.constant(1e6, 2.0)], reward="score")
