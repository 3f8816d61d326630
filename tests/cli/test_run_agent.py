"""A run with one RTC flow under OpenNetLab's checkpoint (served by the host's
agent) and one under GCC; results compare them and count the agent's work."""

from __future__ import annotations

from pathlib import Path

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
