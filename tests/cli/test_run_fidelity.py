"""`netlab run` end to end on both shaping paths, judged by its own fidelity report.

On this kernel (no netem) a scenario with delay and loss must run on the
user-space link without being asked; a pure-capacity trace replays on the
kernel backend through the real-time replayer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netlab.preflight import probe_kernel
from tests.cli.runs import netlab_run
from tests.lab.scenarios import unique_lab

#: Runs tried before a test gives up on a faithful one.  A shared CI machine
#: can be slow for seconds at a time (its suite once took 1.6x as long as
#: on an idle one, and a p99 delay missed its 1 ms limit by 0.33 ms), so
#: the claim tested is "this lab runs faithfully here", not "every run on
#: any machine is faithful": a lab that is never faithful still fails.
ATTEMPTS = 3


def _run(tmp_path: Path, text: str, *extra: str) -> dict[str, Any]:
    """The first faithful run of up to ATTEMPTS, or the last one (which then
    fails the test's faithful assertion with its own verdicts)."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(text)
    for attempt in range(1, ATTEMPTS + 1):
        out = tmp_path / f"runs-{attempt}"
        run_dir, results = netlab_run(scenario, out, *extra)
        assert (run_dir / "fidelity.json").exists()
        if results["fidelity"]["faithful"]:
            break
        print(f"attempt {attempt} not faithful:", *results["fidelity"]["verdicts"], sep="\n  ")
    return results


@pytest.mark.skipif(probe_kernel().has_qdisc("netem"), reason="this kernel has netem: "
                    "auto picks the kernel backend (the Vagrant smoke test covers it)")
def test_delay_and_loss_run_on_the_user_link_without_asking(tmp_path: Path) -> None:
    results = _run(tmp_path, f"""
name: {unique_lab("fdl")}
duration: 6s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    up: {{rate: 8Mbit, delay: 15ms, loss: 2%}}
    down: {{rate: 4Mbit, delay: 5ms}}
flows:
  - {{kind: probe, from: alice, to: bob, stop: 3s}}
  - {{kind: probe, from: bob, to: alice, start: 3s}}
""")
    assert results["backend"] == "user"
    fidelity = results["fidelity"]
    assert fidelity["faithful"], fidelity["verdicts"]
    up = next(e for e in fidelity["links"] if e["direction"] == "up")
    assert up["source"] == "user-space link log"
    assert up["loss_asked"] == pytest.approx(0.02)
    assert abs(up["loss_seen"] - 0.02) < 0.01
    assert up["delay_err_ms"]["p99"] < 1.0
    rtt = {f["id"]: f["metrics"]["rtt_idle_ms"] for f in results["flows"]}
    assert all(19.5 < value < 22 for value in rtt.values()), rtt  # 15 + 5 ms


def test_trace_replays_on_the_kernel_backend_in_time(tmp_path: Path) -> None:
    results = _run(tmp_path, f"""
name: {unique_lab("ftr")}
duration: 6s
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    up: {{trace: cellular/verizon-lte-short.up}}
    down: {{trace: cellular/tmobile-lte-short.down, queue: 200pkt}}
flows:
  - {{kind: probe, from: alice, to: bob, stop: 3s}}
  - {{kind: probe, from: bob, to: alice, start: 3s}}
""", "--backend", "kernel")
    assert results["backend"] == "kernel"
    fidelity = results["fidelity"]
    for entry in fidelity["links"]:
        assert entry["source"] == "kernel replay log"
        assert entry["changes"] > 50
        assert entry["timing_err_ms"]["p99"] < 2.0, entry
        assert entry["capacity_mape"] is not None and entry["capacity_mape"] < 0.05, entry
    assert fidelity["faithful"], fidelity["verdicts"]
