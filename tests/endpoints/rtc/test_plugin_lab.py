"""A torch plugin that loads a model in ``Estimator.__init__`` (shaped like the
public OpenNetLab ones) run through ``netlab run``: the sender starts once the
receiver is ready, so the call's start is not lost (issue: media first reached
the receiver 1.9-2.7 s after a sender started on a fixed 0.3 s head start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from endpoints.rtc import logs
from tests.cli.runs import netlab_run
from tests.lab.scenarios import unique_lab

REPO = Path(__file__).resolve().parents[3]
PLUGIN = Path(__file__).resolve().parents[2] / "data" / "plugins" / "hrcc_like" / \
    "BandwidthEstimator.py"


def test_torch_plugin_receives_from_the_start(tmp_path: Path) -> None:
    scenario = tmp_path / "torch.yaml"
    scenario.write_text(f"""
name: {unique_lab("tp")}
duration: 5s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    rate: 2Mbit
    delay: 20ms
    queue: 100pkt
flows:
  - {{kind: rtc, from: alice, to: bob, estimator: "plugin:{PLUGIN}"}}
""")
    run_dir, results = netlab_run(scenario, tmp_path / "runs", timeout=240)
    (flow,) = results["flows"]
    assert flow["ready_s"] is not None and flow["started_s"] is not None
    assert flow["started_s"] >= flow["ready_s"]  # the sender waited for the receiver
    # Its rate counts from its sender's real start (a 300 kbit/s start, encoder lag),
    # not from the run's, which began while the plugin loaded.
    assert flow["metrics"]["recv_rate_bps"] > 170e3, flow["metrics"]
    flow_dir = run_dir / "flows" / flow["id"]
    ready = json.loads((flow_dir / "receiver" / "ready.json").read_text())
    assert ready["state"] == "ready" and "loaded in" in ready["doing"]
    # The load time and the calls' latency are in the results.
    plugin = flow["metrics"]["plugin"]
    assert plugin["load_s"] > 0.05  # torch and a model
    assert plugin["get_estimated_bandwidth"]["calls"] >= 10
    sender_meta = json.loads((flow_dir / "sender" / "sender_meta.json").read_text())
    sent = logs.read_kind(flow_dir / "sender", logs.SENDER_PACKETS)
    received = logs.read_kind(flow_dir / "receiver", logs.RECEIVER_PACKETS)
    # The first packet sent is the first received, within 0.5 s of the sender's start.
    assert received["transport_seq"][0] == sent["transport_seq"][0]
    assert (received["arrival_ns"][0] - sender_meta["start_ns"]) / 1e9 < 0.5
    first_second = sent["send_ns"] < sent["send_ns"][0] + 1e9
    lost_at_start = set(sent["transport_seq"][first_second].tolist()) - set(
        received["transport_seq"].tolist())
    assert not lost_at_start
    estimates = logs.read_kind(flow_dir / "receiver", logs.RECEIVER_ESTIMATES)
    assert len(estimates) >= 10 and (estimates["estimate_bps"] > 0).all()


def _run(scenario: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netlab.cli.main", "run", "--no-plots", "--out",
                           str(out), str(scenario)], cwd=REPO, capture_output=True, text=True,
                          timeout=180)


def _scenario(tmp_path: Path, prefix: str, plugin: Path) -> Path:
    scenario = tmp_path / f"{prefix}.yaml"
    scenario.write_text(f"""
name: {unique_lab(prefix)}
duration: 3s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    rate: 2Mbit
flows:
  - {{kind: rtc, from: alice, to: bob, estimator: "plugin:{plugin}"}}
""")
    return scenario


def test_a_plugin_that_cannot_load_fails_the_run_naming_the_flow(tmp_path: Path) -> None:
    plugin = tmp_path / "plug" / "BandwidthEstimator.py"
    plugin.parent.mkdir()
    plugin.write_text("import torch_for_netlab_test_missing\nclass Estimator: pass\n")
    done = _run(_scenario(tmp_path, "tb", plugin), tmp_path / "runs")
    assert done.returncode == 1
    assert (f"flow rtc-0: the receiver exited (status 1) while loading plugin {plugin}: "
            "receiver_app: error: importing the plugin raised ModuleNotFoundError") in done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    out = (run_dir / "flows" / "rtc-0" / "receiver" / "receiver.out").read_text()
    assert f'File "{plugin}", line 1, in <module>' in out


def test_a_plugin_raising_mid_call_is_one_line_in_the_run_output(tmp_path: Path) -> None:
    plugin = tmp_path / "plug" / "BandwidthEstimator.py"
    plugin.parent.mkdir()
    plugin.write_text("class Estimator:\n    n = 0\n    def report_states(self, stats):\n"
                      "        self.n += 1\n        if self.n > 100:\n            1 / 0\n"
                      "    def get_estimated_bandwidth(self):\n        return 500000\n")
    done = _run(_scenario(tmp_path, "tm", plugin), tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    text = " ".join((done.stdout + done.stderr).split())
    assert ("flow rtc-0: the receiver stopped: Estimator.report_states raised "
            "ZeroDivisionError: division by zero") in text
