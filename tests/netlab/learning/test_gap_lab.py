"""``netlab gap`` end to end: one short scenario in real labs and in the simulator.

A fixed estimate makes the sender's behaviour independent of the path's
timing, so the simulator (the lab's own sender and receiver cores on a
virtual clock) and the emulated call must agree closely on it; GCC and a
policy run too, and the report ranks all three both ways.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SET = """\
envs:
  - {max_bw_mbps: 1.5, bw_ratio: 1, change_interval_s: 0, delay_ms: 15, queue_pkt: 40,
     duration_s: 4, seed: 2}
"""


def test_gap_compares_three_controllers_in_sim_and_lab(tmp_path: Path) -> None:
    scenarios = tmp_path / "set.yaml"
    scenarios.write_text(SET)
    out = tmp_path / "gap"
    done = subprocess.run(
        [sys.executable, "-m", "netlab.cli.main", "gap", "--baseline", "gcc",
         "--fixed", "600kbit", "--policy",
         f"onl={REPO / 'models' / 'opennetlab-pretrained.pth'}",
         "--scenarios", str(scenarios), "--out", str(out), "--keep-unfaithful"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank the controllers" in done.stdout
    report = json.loads((out / "gap.json").read_text())
    assert report["controllers"] == ["onl", "gcc", "fixed-600kbit"]
    assert set(report["episodes_unfaithful"]) == {"onl", "gcc", "fixed-600kbit"}
    by_controller = {e["controller"]: e for e in report["entries"]}
    for entry in by_controller.values():
        (run,) = entry["emulation"]
        assert Path(run["run_dir"], "results.json").is_file()
        assert 3.0 < run["span_s"] <= 4.0
        # The twin starts where the run's sender did: after its receiver was ready.
        flow = json.loads(Path(run["run_dir"], "results.json").read_text())["flows"][0]
        assert flow["started_s"] <= run["trace_offset_s"] < flow["started_s"] + 1.0
    fixed = by_controller["fixed-600kbit"]["emulation"][0]
    assert fixed["metrics"]["recv_rate_bps"] == pytest.approx(
        fixed["sim"]["recv_rate_bps"], rel=0.05)
    assert fixed["metrics"]["loss"] == fixed["sim"]["loss"] == 0.0
    gcc = report["per_controller"]["gcc"]["recv_rate_bps"]
    assert gcc["sim"]["mean"] > 0.6e6 and gcc["emulation"]["mean"] > 0.6e6
    assert report["ranking"]["network_score"]["scenarios"] == 1
    assert report["ranking"]["recv_rate_bps"]["tau"] is not None
