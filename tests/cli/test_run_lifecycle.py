"""The lifecycle rules of the README ("What up, up -d and down do"), one test each:
``up -d`` starts everything that shapes or sends and keeps it until ``down``;
foreground ``up`` writes results at the end or on Ctrl-C and leaves the lab up;
nothing sends traffic the scenario did not ask for; the link probe is explicit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from netlab.lab import state
from netlab.probes.links import WIRE_GOODPUT
from tests.cli.runs import netlab_run
from tests.lab.scenarios import unique_lab

NETLAB = [sys.executable, "-m", "netlab.cli.main"]
TWO_HOSTS = "hosts: [alice, bob]\nlinks:\n  - endpoints: [alice, bob]\n"


def netlab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETLAB, *args], capture_output=True, text=True, check=check,
                          timeout=180)


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}")
    return path


def _alive_processes(name: str) -> list[int]:
    lab = state.load(name)
    assert lab is not None
    return [int(o.name) for o in lab.objects if o.kind == "process"
            and psutil.pid_exists(int(o.name))]


def _tx_packets(name: str, host: str) -> int:
    links = json.loads(netlab("exec", name, host, "--", "ip", "-j", "-s", "link", "show").stdout)
    return sum(int(link["stats64"]["tx"]["packets"]) for link in links
               if link["ifname"] != "lo")


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def _results(out: Path) -> tuple[Path, dict[str, Any]]:
    (run_dir,) = out.iterdir()
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_up_detached_replays_the_trace_and_runs_the_flows_until_down(tmp_path: Path) -> None:
    name = unique_lab("lud")
    path = _write(tmp_path, name, "duration: 5s\n" + TWO_HOSTS
                  + "    up: {trace: steps/10-2-10mbit.json}\n    down: {rate: 20Mbit}\n"
                  "flows:\n  - {kind: tcp, from: alice, to: bob, start: 1s, stop: 4s}\n")
    out = tmp_path / "runs"
    began = time.monotonic()
    running: list[int] = []
    try:
        netlab("up", "-d", "-q", "--no-plots", "--backend", "user", "--out", str(out), str(path))
        assert time.monotonic() - began < 5.0 + 10.0  # returns once started, not after the run
        assert len(_alive_processes(name)) >= 3  # link, detached run, receiver
        run_dir = next(out.iterdir())
        _wait_for(run_dir / "results.json", 30.0)  # written when the flows end
        _, first = _results(out)
        (flow,) = first["flows"]
        # The trace's first 10 s are 10 Mbit/s (TCP goodput: 0.957 of it at most).
        assert 7e6 < flow["metrics"]["recv_rate_bps"] < 9.6e6, flow
        assert state.load(name) is not None  # the lab stays up after the flows
        running = _alive_processes(name)
        assert len(running) >= 2  # the link process and the detached run, until down
    finally:
        netlab("down", name, check=False)
    assert state.load(name) is None
    assert not any(psutil.pid_exists(pid) for pid in running)
    _, final = _results(out)
    assert final["flows"] == first["flows"]  # the flows' figures are their own interval's
    assert final["ended"] > first["ended"]  # fidelity brought up to date at down
    up = next(e for e in final["fidelity"]["links"] if e["direction"] == "up")
    assert up["changes"] >= 1 and up["capacity_mape"] is not None, up  # the trace replayed


def test_up_detached_on_the_kernel_backend_runs_the_replayer(tmp_path: Path) -> None:
    """The issue's case: before, the htb class stayed at 100 Gbit/s under up -d."""
    name = unique_lab("luk")
    path = _write(tmp_path, name, "duration: 3s\n" + TWO_HOSTS
                  + "    up: {trace: cellular/verizon-lte-short.up}\n")
    try:
        netlab("up", "-d", "-q", "--no-plots", "--backend", "kernel", "--out",
               str(tmp_path / "runs"), str(path))
        time.sleep(4.0)  # past the duration: the replay goes on until down
        classes = netlab("exec", name, "alice", "--", "tc", "class", "show",
                         "dev", "to-bob").stdout
        assert "htb" in classes and "100Gbit" not in classes, classes
        assert len(_alive_processes(name)) >= 2  # the replayer and the detached run
    finally:
        netlab("down", name, check=False)
    assert state.load(name) is None


def test_foreground_up_without_flows_sends_nothing_and_leaves_the_lab_up(
        tmp_path: Path) -> None:
    name = unique_lab("lfn")
    path = _write(tmp_path, name, "duration: 3s\n" + TWO_HOSTS + "    rate: 10Mbit\n")
    out = tmp_path / "runs"
    try:
        netlab("up", "-q", "--no-plots", "--backend", "kernel", "--out", str(out), str(path))
        _, results = _results(out)
        assert results["flows"] == []
        sent = _tx_packets(name, "alice") + _tx_packets(name, "bob")
        assert sent < 20, f"{sent} packets left the hosts of a scenario without flows"
        assert state.load(name) is not None
        assert _alive_processes(name)  # the rate replayers keep sampling until down
    finally:
        netlab("down", name, check=False)
    assert state.load(name) is None


def test_ctrl_c_of_a_foreground_up_writes_results_and_leaves_the_lab_up(
        tmp_path: Path) -> None:
    name = unique_lab("lcc")
    path = _write(tmp_path, name, "duration: 60s\n" + TWO_HOSTS + "    rate: 10Mbit\n"
                  "flows:\n  - {kind: tcp, from: alice, to: bob}\n")
    out = tmp_path / "runs"
    log = tmp_path / "up.log"
    try:
        with log.open("wb") as sink:
            proc = subprocess.Popen([*NETLAB, "up", "-q", "--no-plots", "--backend", "kernel",
                                     "--out", str(out), str(path)], stdout=sink,
                                    stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not list(out.glob("*/flows/*/receiver/live.jsonl")) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")
        _, results = _results(out)
        (flow,) = results["flows"]
        assert flow["metrics"]["recv_rate_bps"] > 1e6, flow
        assert state.load(name) is not None, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        netlab("down", name, check=False)
    assert state.load(name) is None


def test_a_probe_flow_measures_its_path(tmp_path: Path) -> None:
    path = _write(tmp_path, unique_lab("lpr"), "duration: 4s\n" + TWO_HOSTS
                  + "    up: {rate: 5Mbit}\n    down: {rate: 20Mbit}\n"
                  "flows:\n  - {kind: probe, id: measure, from: alice, to: bob}\n")
    _, results = netlab_run(path, tmp_path / "runs", "--backend", "kernel")
    (flow,) = results["flows"]
    assert flow["id"] == "measure" and flow["kind"] == "probe"
    share = flow["metrics"]["recv_rate_bps"] / 5e6
    assert 0.9 * WIRE_GOODPUT < share < 1.01, flow
    up = next(e for e in results["fidelity"]["links"] if e["direction"] == "up")
    assert up["source"] != "not measured", up


def test_check_rate_measures_every_link_direction(tmp_path: Path) -> None:
    name = unique_lab("lck")
    path = _write(tmp_path, name, "duration: 60s\n" + TWO_HOSTS
                  + "    up: {rate: 10Mbit}\n    down: {rate: 5Mbit}\n")
    try:
        netlab("up", "-d", "-q", "--no-plots", "--backend", "kernel", "--out",
               str(tmp_path / "runs"), str(path))
        checked = json.loads(netlab("check", name, "--rate", "--seconds", "2",
                                    "--json").stdout)
    finally:
        netlab("down", name, check=False)
    rates = {r["direction"]: r for r in checked["rates"]}
    assert 4.2e6 < rates["down"]["goodput_bps"] < 5.0e6, rates
    assert 8.4e6 < rates["up"]["goodput_bps"] < 10.0e6, rates
    assert all(p["ok"] for p in checked["pairs"])
