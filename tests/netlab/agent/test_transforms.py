"""Small batches are normalised and mapped to actions in Python scalars; the result
is numpy's for the same rows."""

from __future__ import annotations

import numpy as np

from netlab.agent.policies.opennetlab import ACTION, OBSERVATION
from netlab.agent.policies.spec import SMALL_ROWS, ActionTransform, ObservationTransform


def test_small_batches_normalise_and_act_as_large_ones() -> None:
    rng = np.random.default_rng(7)
    raw = np.stack([rng.uniform(0, 2e7, 64), rng.uniform(-50, 3000, 64),
                    rng.uniform(0, 1, 64), rng.uniform(0, 2e7, 64)], axis=1).astype(np.float32)
    raw[0] = [0, 0, 0, 0]  # below the log scale's floor
    raw[1] = [9e6, 1500, 1, 9e6]  # above its ceiling, delay capped
    observe = ObservationTransform(OBSERVATION, 4)
    bulk = observe.numpy(raw)
    for start in range(0, 64, SMALL_ROWS):
        np.testing.assert_allclose(observe.numpy(raw[start:start + SMALL_ROWS]),
                                   bulk[start:start + SMALL_ROWS], rtol=1e-6, atol=1e-7)
    to_action = ActionTransform(ACTION, 1)
    y = rng.uniform(-0.5, 1.5, (64, 1))
    actions = to_action(y)
    for start in range(0, 64, SMALL_ROWS):
        small = to_action(y[start:start + SMALL_ROWS])
        assert small.dtype == np.float32 and small.shape == (SMALL_ROWS, 1)
        np.testing.assert_allclose(small, actions[start:start + SMALL_ROWS], rtol=1e-6)


def test_a_history_normalises_every_state_as_one() -> None:
    """``rtc-hist``'s 4 × N observation: each state as OpenNetLab's, in both paths."""
    rng = np.random.default_rng(8)
    states = np.stack([rng.uniform(0, 4e7, 30), rng.uniform(-50, 3000, 30),
                       rng.uniform(0, 1, 30), rng.uniform(0, 4e7, 30)], axis=1)
    history = states.reshape(-1, 12).astype(np.float32)  # 10 rows of 3 states
    spec = {**OBSERVATION, "high": 32.0}
    one = ObservationTransform(spec, 4).numpy(states.astype(np.float32)).reshape(-1, 12)
    observe = ObservationTransform(spec, 12)
    np.testing.assert_allclose(observe.numpy(history), one, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(observe.numpy(history[:SMALL_ROWS]), one[:SMALL_ROWS],
                               rtol=1e-6, atol=1e-7)
    assert "the last 3 states" in observe.describe()
