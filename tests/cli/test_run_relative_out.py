"""``netlab run --out runs`` from the user's folder: children run in their own
working directories, so the run directory must reach them as an absolute path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.lab.scenarios import unique_lab

REPO = Path(__file__).resolve().parents[2]


def test_a_relative_out_folder_holds_the_whole_run(tmp_path: Path) -> None:
    name = unique_lab("rel")
    (tmp_path / "call.yaml").write_text(f"""
name: {name}
duration: 4s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    rate: 5Mbit
    delay: 10ms
flows:
  - {{id: call, kind: rtc, from: alice, to: bob, estimator: fixed:1Mbit}}
""")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "netlab.cli.main", "run", "-q", "--out", "runs",
                           "call.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    (flow,) = results["flows"]
    assert flow["metrics"]["recv_rate_bps"] > 0.3e6
    logs = run_dir / "flows" / "call"
    assert any((logs / "receiver").iterdir()) and any((logs / "sender").iterdir())
    assert not list((logs / "sender").rglob("runs"))  # nothing landed in a child's cwd
