"""A run with one RTC flow under OpenNetLab's checkpoint (served by the host's
agent) and one under GCC; results compare them and count the agent's work."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.cli.runs import bundled_scenario, netlab_run
from tests.lab.scenarios import unique_lab


def test_policy_and_gcc_calls_side_by_side(tmp_path: Path) -> None:
    scenario = bundled_scenario("policy-vs-gcc", tmp_path, {
        "name: policy-gcc": f"name: {unique_lab('pg')}", "duration: 20s": "duration: 8s"})
    _run_dir, results = netlab_run(scenario, tmp_path / "runs", timeout=180)
    flows = {f["id"]: f for f in results["flows"]}
    assert flows["policy"]["estimator"] == "policy" and flows["gcc"]["estimator"] == "gcc"
    for flow in flows.values():
        assert flow["metrics"]["recv_rate_bps"] > 100_000
        assert 0 <= flow["scores"]["network"] <= 100
    (agent,) = results["agents"]
    assert agent["host"] == "bob"
    assert agent["decisions"] >= 20  # a decision every 200 ms for ~8 s
    assert 0 <= agent["misses"] <= agent["decisions"]
    assert agent["fallback_s"] >= 0
    assert agent["latency_us"]["p50"] > 0
    assert len(agent["server"]["gc_collections"]) == 3  # per generation, the last full


def test_decision_interval_sets_how_often_a_policy_flow_asks(tmp_path: Path) -> None:
    """One flow asks every 20 ms, the other at the checkpoint's own 60 ms step; each
    receiver's observation window follows its interval. The agent was asked to serve
    on cuda: where there is no GPU, results say it served on the CPU and why."""
    scenario = bundled_scenario("policy-vs-gcc", tmp_path, {
        "name: policy-gcc": f"name: {unique_lab('pi')}", "duration: 20s": "duration: 6s",
        "fallback: gcc}": "fallback: gcc, device: cuda}",
        "{id: policy, kind: rtc, from: alice, to: bob, estimator: policy}":
            "{id: fast, kind: rtc, from: alice, to: bob, estimator: policy, "
            "decision_interval: 20ms}",
        "{id: gcc, kind: rtc, from: alice, to: bob, estimator: gcc}":
            "{id: step, kind: rtc, from: alice, to: bob, estimator: policy}"})
    _run_dir, results = netlab_run(scenario, tmp_path / "runs", timeout=180)
    (agent,) = results["agents"]
    flows = {f["flow"]: f for f in agent["flows"]}
    assert (flows["fast"]["decision_interval_ms"], flows["fast"]["window_ms"]) == (20, 20)
    assert (flows["step"]["decision_interval_ms"], flows["step"]["window_ms"]) == (60, 60)
    assert agent["policy"]["step_ms"] == 60
    assert agent["device"]["asked"] == "cuda"
    if torch.cuda.is_available():
        assert agent["device"]["used"] == "cuda"
    else:
        assert agent["device"]["used"] == "cpu"
        assert "serving on cpu" in agent["device"]["note"]
    assert flows["fast"]["decisions"] > 1.5 * flows["step"]["decisions"] > 0
    # the flows run unprivileged, allowed the decision-wait rung (labcore.priority)
    assert {f["wait_priority"] for f in flows.values()} == {"fifo"}


def test_history_policy_flow_sends_its_states_and_scales_its_estimate(tmp_path: Path) -> None:
    """An ``rtc-hist`` checkpoint: the lab tells the receiver the contract and history
    the agent serves, the flow sends 4 × N values, and a fresh policy (×1 answers)
    keeps the call at the sender's 300 kbit/s start on a 3 Mbit/s link."""
    from netlab.agent.policies import rtc_history

    checkpoint = tmp_path / "hist.pth"
    torch.save(rtc_history.initial_checkpoint(seed=2, history=6), checkpoint)
    scenario = bundled_scenario("policy-vs-gcc", tmp_path, {
        "name: policy-gcc": f"name: {unique_lab('ph')}", "duration: 20s": "duration: 8s",
        "../models/opennetlab-pretrained.pth": str(checkpoint),
        "deadline: 1ms": "deadline: 20ms"})
    _run_dir, results = netlab_run(scenario, tmp_path / "runs", timeout=180)
    (agent,) = results["agents"]
    assert (agent["policy"]["contract"], agent["policy"]["obs_size"]) == ("rtc-hist", 24)
    (flow,) = [f for f in agent["flows"] if f["flow"] == "policy"]
    assert (flow["contract"], flow["history"]) == ("rtc-hist", 6)
    assert flow["decisions"] >= 20 and not agent["server"]["errors"]
    metrics = {f["id"]: f["metrics"] for f in results["flows"]}
    assert 150_000 < metrics["policy"]["recv_rate_bps"] < 450_000
    assert metrics["gcc"]["recv_rate_bps"] > 1_000_000
