"""The VM smoke test: one scenario in namespaces and across Vagrant VMs.

Deselected by default (``pytest -m vagrant tests/vagrant`` runs it): it
builds or reuses the box, brings two VMs up under QEMU TCG (minutes; the
router lives in a namespace in bob's VM), runs ``smoke.yaml`` both ways and
compares receive rate and p95 one-way delay per flow, then removes everything
it made: VMs, libvirt definitions and volumes, the daemons it started, the
namespace.

The namespace run goes first, before any VM loads the CPU.  On a netem-less
machine it uses the user-space link while the VMs use htb + netem.

What must hold everywhere: both runs complete with results for the same
flows, the VMs' kernel has netem, every VM flow delivers data, and the clock
correction is right — the smallest one-way delay of the RTC flow across VMs
lies within [-1, +10] ms of the namespace run's (both are the path's fixed
delay plus a little).  Receive rate and p95 delay must agree within 10 % only
with NETLAB_VAGRANT_STRICT=1: under QEMU TCG on a small shared machine the
emulated vCPUs starve (GCC then sees delay growth that is CPU, not queue), so
by default the comparison is printed and recorded, not enforced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SMOKE = Path(__file__).with_name("smoke.yaml")
NAMESPACE = "nltv-vg"
NETLAB = [sys.executable, "-m", "netlab.cli.main"]
TOLERANCE = 0.10
STRICT = os.environ.get("NETLAB_VAGRANT_STRICT") == "1"

pytestmark = [pytest.mark.vagrant, pytest.mark.timeout(3600)]


def _netlab(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*NETLAB, *args], env=env, text=True, capture_output=True,
                            timeout=timeout, check=False)
    sys.stderr.write(result.stderr[-3000:])
    sys.stdout.write(result.stdout[-3000:])
    return result


def _newest(directory: Path) -> Path:
    return max(directory.iterdir(), key=lambda p: p.stat().st_mtime)


def _flows(run_dir: Path) -> dict[str, dict[str, Any]]:
    results = json.loads((run_dir / "results.json").read_text())
    return {flow["id"]: flow for flow in results["flows"]}


def _min_owd_ms(run_dir: Path, flow_id: str) -> float:
    from endpoints.rtc import logs as rtc_logs

    packets = rtc_logs.read_kind(run_dir / "flows" / flow_id / "receiver",
                                 rtc_logs.RECEIVER_PACKETS)
    stamped = packets[packets["send_ns"] >= 0]
    return float((stamped["arrival_ns"] - stamped["send_ns"]).min() / 1e6)


def _qemu_rss_mb() -> list[float]:
    out = subprocess.run(["ps", "-eo", "rss,comm"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) / 1024 for line in out.splitlines()[1:]
            if line.split()[1:] and line.split()[1].startswith("qemu-system")]


@pytest.mark.skipif(shutil.which("vagrant") is None or os.geteuid() != 0,
                    reason="needs root, vagrant and vagrant-libvirt")
def test_namespace_and_vm_runs_agree(tmp_path: Path) -> None:
    env = {**os.environ, "NETLAB_VAGRANT_NETNS": NAMESPACE}
    figures: dict[str, Any] = {}
    started = time.monotonic()
    try:
        ns_out = tmp_path / "ns"
        result = _netlab("run", str(SMOKE), "--out", str(ns_out), "-q", env=env, timeout=300)
        assert result.returncode == 0
        ns_run = _newest(ns_out)

        up_started = time.monotonic()
        result = _netlab("vagrant", "up", "-d", str(SMOKE), env=env, timeout=2400)
        assert result.returncode == 0, "VMs did not come up"
        figures["up_s"] = time.monotonic() - up_started  # includes a box build if one ran
        figures["qemu_rss_mb"] = _qemu_rss_mb()

        vm_out = tmp_path / "vm"
        result = _netlab("vagrant", "run", str(SMOKE), "--out", str(vm_out), "-q", env=env,
                         timeout=900)
        assert result.returncode == 0
        vm_run = _newest(vm_out)
        vm_results = json.loads((vm_run / "results.json").read_text())
        assert vm_results["backend"] == "kernel"
        assert all(vm_results["vagrant"]["netem"].values()), "the VMs' kernel has no netem"
        figures["clock"] = vm_results["vagrant"]["clock"]
        assert vm_results["vagrant"]["placement"] == {"alice": "alice", "router": "bob",
                                                      "bob": "bob"}
        # was the host the cause: every VM's vCPU thread measured, and inside each guest
        machine = vm_results["vagrant"]["machine"]
        assert {p["role"].split()[1] for p in machine["host"]["processes"]} == {"alice", "bob"}
        assert set(machine["guests"]) == {"alice", "bob"}
        assert machine["guests"]["bob"]["replayers"], "no replayer ran in bob's VM"
        figures["fidelity"] = vm_results["fidelity"]["verdicts"]
        figures["host"] = {p["role"]: p["runqueue_wait_share"]
                           for p in machine["host"]["processes"]}

        report = _netlab("report", str(ns_run), str(vm_run), "--out", str(tmp_path / "report"),
                         env=env, timeout=120)
        assert report.returncode == 0

        ns_flows, vm_flows = _flows(ns_run), _flows(vm_run)
        assert set(ns_flows) == set(vm_flows) == {"rtc-0", "tcp-1"}
        problems = []
        for flow_id, ns_flow in ns_flows.items():
            ns_m, vm_m = ns_flow["metrics"], vm_flows[flow_id]["metrics"]
            assert vm_m["recv_rate_bps"] > 0, f"{flow_id} delivered nothing across the VMs"
            rate_diff = vm_m["recv_rate_bps"] / ns_m["recv_rate_bps"] - 1
            # TCP's delay is its sender's RTT (TCP_INFO): one machine, no clock question
            p95 = "delay_p95_ms" if ns_m.get("delay_p95_ms") is not None else "rtt_p95_ms"
            figures[flow_id] = {"ns_rate_bps": ns_m["recv_rate_bps"],
                                "vm_rate_bps": vm_m["recv_rate_bps"], "rate_diff": rate_diff,
                                f"ns_{p95}": ns_m.get(p95), f"vm_{p95}": vm_m.get(p95)}
            if abs(rate_diff) > TOLERANCE:
                problems.append(f"{flow_id} rate differs by {rate_diff:+.0%}")
            if ns_m.get(p95) and vm_m.get(p95):
                p95_diff = vm_m[p95] / ns_m[p95] - 1
                figures[flow_id]["p95_diff"] = p95_diff
                if abs(p95_diff) > TOLERANCE:
                    problems.append(f"{flow_id} p95 delay differs by {p95_diff:+.0%}")
        ns_min, vm_min = _min_owd_ms(ns_run, "rtc-0"), _min_owd_ms(vm_run, "rtc-0")
        figures["rtc_min_owd_ms"] = {"ns": ns_min, "vm": vm_min}
        assert ns_min - 1.0 <= vm_min <= ns_min + 10.0, "the VMs' clock correction is off"
        figures["disagreements"] = problems
        assert not (STRICT and problems), problems
    finally:
        result = _netlab("vagrant", "down", "--all", env=env, timeout=600)
        figures["total_s"] = time.monotonic() - started
        print("vagrant smoke figures:", json.dumps(figures, indent=1))
        leftover_ns = subprocess.run(["ip", "netns", "list"], capture_output=True,
                                     text=True).stdout
        assert NAMESPACE not in leftover_ns
        assert not _qemu_rss_mb(), "a VM is still running"
        assert result.returncode == 0
