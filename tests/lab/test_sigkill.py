"""A short run of bench/sigkill.py: netlab up -d / netlab run killed with
SIGKILL at random moments of build and run, then netlab down, leave nothing."""

from __future__ import annotations

import pytest

from bench.sigkill import run_trials

TRIALS = 4  # per backend; the bench runs 100


@pytest.mark.parametrize("backend", ["kernel", "user"])
def test_sigkill_at_random_moments_then_down_leaves_nothing(backend: str) -> None:
    outcomes = run_trials(backend, TRIALS, seed=7, report=False)
    assert len(outcomes) == TRIALS
    left = [f"{o.mode} killed at {o.kill_at_s:.2f} s ({o.phase}): {', '.join(o.left)}"
            for o in outcomes if o.left]
    assert not left, left
