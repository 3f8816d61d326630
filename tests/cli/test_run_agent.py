"""A run with one RTC flow under OpenNetLab's checkpoint (served by the host's
agent) and one under GCC; results compare them and count the agent's work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.lab.scenarios import unique_lab

REPO = Path(__file__).resolve().parents[2]


def test_policy_and_gcc_calls_side_by_side(tmp_path: Path) -> None:
    text = (REPO / "scenarios" / "policy-vs-gcc.yaml").read_text()
    text = text.replace("name: policy-gcc", f"name: {unique_lab('pg')}")
    text = text.replace("duration: 20s", "duration: 8s")
    text = text.replace("../models/", f"{REPO}/models/")
    scenario = tmp_path / "policy.yaml"
    scenario.write_text(text)
    out = tmp_path / "runs"
    subprocess.run([sys.executable, "-m", "netlab.cli.main", "run", "-q", "--out", str(out),
                    str(scenario)], check=True, timeout=180, capture_output=True)
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
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
