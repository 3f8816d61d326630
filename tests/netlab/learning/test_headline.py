"""The headline's parts that need no lab: trace windows, window sets, the test
set's lock, arms from evaluations, and the nested bootstrap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from netlab.errors import NetlabError
from netlab.learning import headline
from netlab.learning.headline_stats import contrast
from netlab.learning.scenario_set import env_trace, load_set, window_set, write_scenario
from netlab.scenario import load_scenario
from shaping.traces import load_trace

REPO = Path(__file__).resolve().parents[3]


def test_a_mahimahi_window_keeps_its_opportunities_and_bits() -> None:
    trace = load_trace("cellular/verizon-lte-short.up")
    window = trace.window(30, 30)
    assert window.opportunities_ms is not None
    assert 29.9 < window.period_s <= 30.0  # Mahimahi's period is the last opportunity
    wanted = [t - 30_000 for t in trace.opportunities_ms or () if 30_000 < t <= 60_000]
    assert list(window.opportunities_ms) == wanted
    assert window.name == "cellular/verizon-lte-short.up@30s"


def test_a_rate_window_keeps_rates_and_delays() -> None:
    trace = load_trace("opennetlab/low/4g-500kbps")
    window = trace.window(10, 30)
    assert window.period_s == 30
    assert window.mean_rate_bps() == pytest.approx(trace.mean_capacity_bps(10, 40), rel=1e-9)
    assert window.delays_s is not None and set(window.delays_s) == {0.0275}
    with pytest.raises(ValueError, match="runs past"):
        trace.window(100, 30)


def test_window_sets_cut_every_trace_under_every_shape(tmp_path: Path) -> None:
    envs = window_set(["cellular/verizon-lte-short.*"], duration_s=30, every_s=30,
                      shapes=[{"delay_ms": 20, "queue_pkt": 50}, {"delay_ms": 50}], where="t")
    assert len(envs) == 2 * 4 * 2
    assert [e.trace_start_s for e in envs[:8:2]] == [0, 30, 60, 90]
    assert len({e.label for e in envs}) == len(envs)
    onl = window_set(["opennetlab/low/4g-500kbps"], duration_s=15, every_s=45,
                     shapes=[{"delay_ms": 99}], where="t")
    assert {e.delay_ms for e in onl} == {27.5}  # the trace's own delay wins
    path = write_scenario(envs[3], tmp_path, lab="hlt", estimator="gcc")
    scenario = load_scenario(path)
    assert scenario.duration_s == 30
    written = load_trace(str(tmp_path / "trace-window.trace"))
    assert written.opportunities_ms == env_trace(envs[3]).opportunities_ms
    with pytest.raises(NetlabError, match="unknown shape keys"):
        window_set(["opennetlab/low/*"], duration_s=15, every_s=15, shapes=[{"rtt": 1}],
                   where="t")
    with pytest.raises(NetlabError, match="no bundled trace"):
        load_set({"windows": {"traces": ["nope/*"]}}, tmp_path, "t")


def _config(tmp_path: Path) -> headline.HeadlineConfig:
    shutil.copy(REPO / "configs/headline/test-set.yaml", tmp_path / "test-set.yaml")
    (tmp_path / "headline.yaml").write_text(
        "out: runs\nfinetune: ft.yaml\ntest_set: test-set.yaml\nresult: out/h.json\n")
    return headline.load_headline(tmp_path / "headline.yaml")


def test_the_shipped_test_set_matches_its_lock() -> None:
    config = headline.load_headline(REPO / "configs/headline.yaml")
    held = headline.check_lock(config)
    assert len(held["scenarios"]) >= 30
    assert all("lte" in name for name in held["scenarios"])


def test_a_changed_test_set_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(NetlabError, match="never locked"):
        headline.check_lock(config)
    headline.lock(config)
    assert headline.check_lock(config)["scenarios"][0] == "tmobile-lte-short.up/d20/q50"
    config.test_set.write_text(config.test_set.read_text().replace("every_s: 30",
                                                                   "every_s: 15"))
    with pytest.raises(NetlabError, match="changed since it was locked") as caught:
        headline.check_lock(config)
    assert "git checkout" in caught.value.fix


def test_arms_and_seeds_come_from_controller_names() -> None:
    names = ["a", "b"]

    def evaluation(controllers: dict[str, list[float]]) -> dict[str, object]:
        return {"controllers": list(controllers),
                "scenarios": [{"name": n, **{c: {"metrics": {"score": v[i]}}
                                             for c, v in controllers.items()}}
                              for i, n in enumerate(names)]}

    arms = headline.collect([evaluation({"start": [1, 2], "gcc": [3, 4]}),
                             evaluation({"emu_tuned-s1": [5, 6], "emu_tuned-s2": [7, 8],
                                         "gcc": [5, 6]})], "score", names)
    assert arms["start"] == {"-": [1, 2]}
    assert arms["gcc"] == {"-": [4, 5]}  # repeats over groups are averaged
    assert arms["emu_tuned"] == {"1": [5, 6], "2": [7, 8]}


def test_the_bootstrap_sees_a_real_difference_and_no_phantom_one() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(50, 5, size=32)
    better = {str(s): list(base + 2 + rng.normal(0, 0.5, 32)) for s in range(3)}
    same = {str(s): list(base + rng.normal(0, 0.5, 32)) for s in range(3)}
    gcc = {"-": list(base)}
    up = contrast(better, gcc, resamples=2000)
    assert up["low"] > 0 and up["mean"] == pytest.approx(2, abs=0.3)
    flat = contrast(same, gcc, resamples=2000)
    assert flat["low"] < 0 < flat["high"]
    missing = dict(same)
    missing["0"] = [None] * 32
    missing["1"] = [None, *same["1"][1:]]
    missing["2"] = [None, *same["2"][1:]]
    dropped = contrast(missing, gcc, resamples=500)
    assert dropped["scenarios"] == 31 and dropped["dropped"] == 1


def test_a_headline_report_reads_the_evaluations(tmp_path: Path) -> None:
    config = _config(tmp_path)
    headline.lock(config)
    (tmp_path / "ft.yaml").write_text(
        (REPO / "configs/headline/finetune.yaml").read_text())
    scenarios = headline.check_lock(config)["scenarios"]
    rng = np.random.default_rng(0)
    for group, controllers in (("eval-start", ["start"]),
                               ("eval-s1", ["sim_tuned-s1", "emu_tuned-s1"])):
        rows = [{"name": n, **{c: {"metrics": {m: float(rng.normal(40, 3))
                                              for m in ("score", "capacity_score")}}
                               for c in [*controllers, "gcc"]}} for n in scenarios]
        folder = config.out / group
        folder.mkdir(parents=True)
        (folder / "eval.json").write_text(json.dumps(
            {"controllers": [*controllers, "gcc"], "scenarios": rows,
             "episodes": {c: {"ran": 32, "kept": 32} for c in [*controllers, "gcc"]}}))
    report = headline.build_report(config)
    assert set(report["arms"]) == {"start", "sim_tuned", "emu_tuned", "gcc"}
    assert set(report["contrasts"]) >= {"emu_tuned-gcc", "emu_tuned-sim_tuned",
                                        "emu_tuned-start"}
    assert report["contrasts"]["emu_tuned-gcc"]["scenarios"] == len(scenarios)
    assert report["camera"]["fps"] == 30.0
    lines = headline.summary_lines(json.loads(json.dumps(report)))
    assert any(line.strip().startswith("emu_tuned-gcc") for line in lines)


def test_the_shipped_start_is_a_history_policy_and_bad_ppo_is_refused(tmp_path: Path) -> None:
    config = headline.load_headline(REPO / "configs/headline.yaml")
    assert config.start_history == 10
    source = (REPO / "configs/headline.yaml").read_text()
    bad = tmp_path / "headline.yaml"
    bad.write_text(source.replace("ppo: {lr: 0.0003, epochs: 4}", "ppo: {learning_rate: 1}"))
    with pytest.raises(NetlabError) as caught:
        headline.load_headline(bad)
    assert caught.value.where.endswith("start.ppo") and "lr" in (caught.value.fix or "")
