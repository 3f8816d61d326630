"""The lifecycle from the command line, as a user drives it: up -d, status,
exec, check, down; run with results; SIGTERM and SIGKILL of a foreground up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from netlab.lab import netns, state
from tests.lab.scenarios import unique_lab

NETLAB = [sys.executable, "-m", "netlab.cli.main"]


def _scenario_file(tmp_path: Path, name: str, duration: str = "2s") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nduration: {duration}\nhosts: [alice, router, bob]\n"
        "links:\n"
        "  - endpoints: [alice, router]\n    rate: 50Mbit\n"
        "  - endpoints: [router, bob]\n    up: {rate: 10Mbit}\n    down: {rate: 5Mbit}\n"
    )
    return path


def netlab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETLAB, *args], capture_output=True, text=True, check=check,
                          timeout=120)


def _wait_up(name: str, proc: subprocess.Popen[bytes], log: Path,
             timeout_s: float = 30.0) -> state.LabState:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = state.load(name)
        if current is not None and current.status == "up":
            return current
        if proc.poll() is not None:
            raise AssertionError(f"netlab up of {name} exited {proc.returncode} before the "
                                 f"lab was up:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise AssertionError(f"lab {name} did not come up in {timeout_s} s:\n"
                         f"{log.read_text(errors='replace')}")


def test_up_detached_then_status_exec_check_down(tmp_path: Path) -> None:
    name = unique_lab("cud")
    path = _scenario_file(tmp_path, name)
    try:
        netlab("up", "-d", "-q", str(path))
        listed = json.loads(netlab("status", "--json").stdout)
        mine = next(lab for lab in listed if lab["lab"] == name)
        assert mine["health"] == "up" and mine["backend"] == "kernel"
        assert sorted(mine["hosts"]) == ["alice", "bob", "router"]
        addr = netlab("exec", name, "bob", "--", "ip", "-o", "-4", "addr", "show").stdout
        assert mine["hosts"]["bob"]["interfaces"][0]["address"] in addr
        checked = netlab("check", name, "--json")
        pairs = json.loads(checked.stdout)
        assert len(pairs) == 6 and all(p["ok"] for p in pairs), pairs
    finally:
        netlab("down", name, check=False)
    assert state.load(name) is None
    assert not any(netns.exists(f"nl-{name}-{h}") for h in ("alice", "router", "bob"))


def test_run_writes_results_with_the_contract_keys(tmp_path: Path) -> None:
    name = unique_lab("crn")
    out = tmp_path / "runs"
    netlab("run", "-q", "--out", str(out), str(_scenario_file(tmp_path, name, "4s")))
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("netlab_version", "kernel", "backend", "scenario", "flows", "agents", "fidelity"):
        assert key in results
    assert results["backend"] == "kernel"
    assert len(results["flows"]) == 4  # two links, both directions
    for flow in results["flows"]:
        assert {"id", "kind", "from", "to", "metrics", "scores"} <= flow.keys()
        assert {"recv_rate_bps", "delay_p50_ms", "delay_p95_ms", "delay_p99_ms",
                "loss"} <= flow["metrics"].keys()
    by_id = {f["id"]: f["metrics"] for f in results["flows"]}
    assert 4.2e6 < by_id["probe-router-bob-down"]["recv_rate_bps"] < 5.0e6
    assert {"faithful", "links"} <= results["fidelity"].keys()
    assert state.load(name) is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_to_a_foreground_up_cleans_up(tmp_path: Path, sig: signal.Signals) -> None:
    name = unique_lab("cst")
    log = tmp_path / "up.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*NETLAB, "up", "-q", str(_scenario_file(tmp_path, name, "60s"))],
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_up(name, proc, log)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = [h for h in ("alice", "router", "bob") if netns.exists(f"nl-{name}-{h}")]
    assert state.load(name) is None and not left, (
        f"journal {state.load(name)}, namespaces left {left}; netlab up said:\n"
        f"{log.read_text(errors='replace')}")


@pytest.mark.parametrize("backend", ["kernel", "user"])
def test_down_after_sigkill_removes_everything(tmp_path: Path, backend: str) -> None:
    """After a SIGKILL nothing cleaned up: `down` must find every namespace and,
    with the user-space backend, the orphaned link processes too."""
    name = unique_lab("ckl")
    log = tmp_path / "up.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*NETLAB, "up", "-q", "--backend", backend,
                                 str(_scenario_file(tmp_path, name, "60s"))],
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        recorded = _wait_up(name, proc, log)
        link_pids = [int(o.name) for o in recorded.objects if o.kind == "process"]
        assert len(link_pids) == (2 if backend == "user" else 0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert all(netns.exists(ns) for ns in recorded.namespaces)  # orphaned, as after a crash
        status = json.loads(netlab("status", "--json").stdout)
        assert any(lab["lab"] == name and not lab["owner_alive"] for lab in status)
        with pytest.raises(subprocess.CalledProcessError):
            netlab("up", "-d", "-q", str(_scenario_file(tmp_path, name)))  # still there: refused
        assert all(psutil.pid_exists(pid) for pid in link_pids)  # orphaned link processes
        netlab("down", name)
        assert not any(psutil.pid_exists(pid) for pid in link_pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        netlab("down", name, check=False)
    assert not any(netns.exists(ns) for ns in recorded.namespaces)
    assert state.load(name) is None
