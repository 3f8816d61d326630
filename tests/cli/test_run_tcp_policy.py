"""A run of scenarios/tcp-policy.yaml: a TCP flow whose pacing rate alice's agent
sets every 100 ms beside a cubic flow; results count the agent's decisions and
carry both flows' metrics."""

from __future__ import annotations

import json
from pathlib import Path

from endpoints.agent_tcp import read_policy_log
from tests.cli.runs import bundled_scenario, netlab_run
from tests.lab.scenarios import unique_lab


def test_policy_paced_tcp_beside_cubic(tmp_path: Path) -> None:
    scenario = bundled_scenario("tcp-policy", tmp_path, {
        "name: tcp-policy": f"name: {unique_lab('tp')}", "duration: 30s": "duration: 6s"})
    run_dir, results = netlab_run(scenario, tmp_path / "runs", timeout=180)
    flows = {f["id"]: f for f in results["flows"]}
    assert flows["policy"]["rate_control"] == "policy"
    assert flows["cubic"]["rate_control"] == "kernel"
    for flow in flows.values():
        assert flow["kind"] == "tcp"
        assert 200_000 < flow["metrics"]["recv_rate_bps"] < 10e6
        assert flow["metrics"]["rtt_p50_ms"] >= 40  # 2 × 20 ms through the bottleneck
    (agent,) = results["agents"]
    assert agent["host"] == "alice" and agent["policy"]["contract"] == "tcp-mi5"
    assert agent["decisions"] >= 30  # one per 100 ms for ~6 s
    assert 0 <= agent["misses"] <= agent["decisions"]
    assert agent["fallback_s"] >= 0
    assert agent["latency_us"]["p50"] > 0
    (client,) = agent["flows"]
    assert client["flow"] == "policy" and client["wait_priority"] == "fifo"
    steps = read_policy_log(run_dir / "flows" / "policy" / "sender")
    assert len(steps) == client["decisions"]
    sender = json.loads((run_dir / "flows" / "policy" / "sender" / "sender.json").read_text())
    assert sender["policy"] and sender["policy_steps"] == int(steps["timely"].sum())
