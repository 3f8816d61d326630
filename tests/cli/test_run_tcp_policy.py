"""A run of scenarios/tcp-policy.yaml: a TCP flow whose pacing rate alice's agent
sets every 100 ms beside a cubic flow; results count the agent's decisions and
carry both flows' metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from endpoints.agent_tcp import read_policy_log
from tests.lab.scenarios import unique_lab

REPO = Path(__file__).resolve().parents[2]


def test_policy_paced_tcp_beside_cubic(tmp_path: Path) -> None:
    text = (REPO / "scenarios" / "tcp-policy.yaml").read_text()
    text = text.replace("name: tcp-policy", f"name: {unique_lab('tp')}")
    text = text.replace("duration: 30s", "duration: 6s")
    text = text.replace("../models/", f"{REPO}/models/")
    scenario = tmp_path / "tcp-policy.yaml"
    scenario.write_text(text)
    out = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "netlab.cli.main", "run", "-q", "--out",
                           str(out), str(scenario)], timeout=180, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
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
    assert client["flow"] == "policy"
    steps = read_policy_log(run_dir / "flows" / "policy" / "sender")
    assert len(steps) == client["decisions"]
    sender = json.loads((run_dir / "flows" / "policy" / "sender" / "sender.json").read_text())
    assert sender["policy"] and sender["policy_steps"] == int(steps["timely"].sum())
