"""``netlab eval``: intervals, Genet's beat fraction, and a real two-controller run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from netlab.learning.evaluate import EvalReport, evaluate, t_interval
from netlab.learning.scenario_set import EnvConfig

REPO = Path(__file__).resolve().parents[3]


def test_t_interval_matches_the_t_table() -> None:
    mean, half = t_interval([1.0, 2.0, 3.0, 4.0])
    # sd = 1.29099, sem = 0.645497, t(0.975, 3) = 3.182446
    assert mean == 2.5 and half == pytest.approx(3.182446 * 0.645497, rel=1e-5)
    assert math.isnan(t_interval([5.0])[1])


def test_report_pairs_scenarios_and_counts_beats() -> None:
    envs = [EnvConfig(seed=i) for i in range(3)]
    scores = {"tuned": {0: [50.0, 52.0], 1: [40.0, 42.0], 2: [60.0, 60.0]},
              "gcc": {0: [45.0, 45.0], 1: [44.0, 46.0], 2: [55.0, 57.0]}}
    report = EvalReport(["tuned", "gcc"], "gcc", envs, scores)
    assert report.beats("tuned", "gcc") == pytest.approx(2 / 3)
    diff = report.difference("tuned", "gcc")
    assert diff.mean == pytest.approx((6 - 4 + 4) / 3) and diff.n == 3
    data = report.as_dict()
    assert data["vs_baseline"]["tuned"]["fraction_beats_baseline"] == pytest.approx(2 / 3)
    assert data["scenarios"][1]["gcc"]["mean"] == 45.0


def test_evaluate_runs_policy_and_gcc_in_labs(tmp_path: Path) -> None:
    env = EnvConfig(max_bw_mbps=2.0, bw_ratio=1.5, change_interval_s=2, delay_ms=15,
                    queue_pkt=40, duration_s=4, seed=2)
    report = evaluate({"onl": REPO / "models" / "opennetlab-pretrained.pth"}, [env], tmp_path,
                      repeat=2, parallel=2, lab_prefix="ftte")
    # Two labs share two vCPUs on the CI machine: now and then one is judged unfaithful
    # (a user-space link held a packet 2.5 ms over its asked delay at p99, limit 1 ms)
    # and left out, counted. Nothing may fail outright, and each controller keeps a score.
    assert sum(report.dropped.values()) == report.unfaithful, (report.dropped, report.unfaithful)
    for name in ("onl", "gcc"):
        scores = report.scores[name].get(0, [])
        assert len(scores) + report.dropped[name] == 2, (name, scores, report.dropped)
        assert scores and all(0 < s <= 70 for s in scores), (name, scores)
    data = json.loads((tmp_path / "eval.json").read_text())
    assert 0.0 <= data["vs_baseline"]["onl"]["fraction_beats_baseline"] <= 1.0
    assert data["aggregate"]["gcc"]["n"] == 1
    assert (tmp_path / "eval.png").stat().st_size > 5000
    rows = (tmp_path / "eval.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
