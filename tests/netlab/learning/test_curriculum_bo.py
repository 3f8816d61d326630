"""Genet's curriculum: the training mix's weights, the BO search, the simulator gap."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest

from netlab.errors import NetlabError
from netlab.learning.curriculum import SimGap, TrainingMix, search
from netlab.learning.scenario_set import EnvConfig, ParamSpace

REPO = Path(__file__).resolve().parents[3]


def test_each_added_config_takes_its_weight_of_the_mass() -> None:
    base = [EnvConfig(seed=i) for i in range(4)]
    mix = TrainingMix(base)
    assert mix.weights() == [(None, 1.0)]
    hard = EnvConfig(max_bw_mbps=0.7, delay_ms=90)
    mix.add(hard, 0.3)
    weights = [w for _, w in mix.weights()]
    assert weights == pytest.approx([0.7, 0.3])
    harder = EnvConfig(max_bw_mbps=0.6, delay_ms=95)
    mix.add(harder, 0.3)
    assert [w for _, w in mix.weights()] == pytest.approx([0.49, 0.21, 0.3])
    drawn = mix.sample(random.Random(1), 4000)
    counts = Counter("base" if e.seed < 4 and e.max_bw_mbps == 3.0 else e.max_bw_mbps
                     for e in drawn)
    assert counts[0.6] / 4000 == pytest.approx(0.3, abs=0.03)
    assert counts[0.7] / 4000 == pytest.approx(0.21, abs=0.03)
    # a curriculum config comes back with fresh trace seeds, not one trace
    assert len({e.seed for e in drawn if e.max_bw_mbps == 0.6}) > 100
    with pytest.raises(NetlabError):
        mix.add(hard, 1.5)


def test_bo_search_finds_the_largest_gap() -> None:
    space = ParamSpace.from_config({"max_bw_mbps": [0.5, 5], "delay_ms": [5, 100],
                                    "bw_ratio": 1, "change_interval_s": 2, "queue_pkt": 50,
                                    "loss_pct": 0}, duration_s=10)

    def gap(env: EnvConfig) -> float:  # the policy trails most at 1 Mbit/s, 80 ms
        return -((env.max_bw_mbps - 1.0) ** 2) - ((env.delay_ms - 80) / 40) ** 2

    result = search(gap, space, init_points=4, iterations=12, seed=3)
    assert len(result.trials) == 16
    assert result.best_gap == max(g for _, g in result.trials)
    assert abs(result.best.max_bw_mbps - 1.0) < 0.8 and abs(result.best.delay_ms - 80) < 30
    # fixed dimensions stay fixed
    assert all(e.bw_ratio == 1 and e.queue_pkt == 50 for e, _ in result.trials)
    random_best = max(gap(space.sample(random.Random(9), i)) for i in range(4))
    assert result.best_gap >= random_best


def test_sim_gap_is_measured_in_the_simulator() -> None:
    env = EnvConfig(max_bw_mbps=2.0, bw_ratio=1.0, change_interval_s=0, delay_ms=20,
                    queue_pkt=50, duration_s=6)
    checkpoint = REPO / "models" / "opennetlab-pretrained.pth"
    assert SimGap(checkpoint, checkpoint, k=2)(env) == 0.0  # itself: same sim, same score
    starved = SimGap(checkpoint, 20_000.0, k=1)(env)  # a baseline stuck at 20 kbit/s
    assert math.isfinite(starved) and starved != 0.0
