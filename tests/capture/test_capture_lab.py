"""Capture in real labs: iperf3 UDP across a shaped link, measured by the lab
from the pcaps and compared with iperf3's own report and the link's delay."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlab.capture import (
    CaptureOptions,
    CaptureRequest,
    analyse,
    flow_columns,
    flow_metrics,
    sender_rows,
    start_capture,
    stop_recorded,
)
from netlab.capture.traffic import capture_files
from netlab.lab import lifecycle, netns
from netlab.lab.lifecycle import Lab
from netlab.scenario.model import Direction, Link
from shaping.spec import LinkShape
from tests.lab.scenarios import scenario, unique_lab

pytestmark = pytest.mark.skipif(shutil.which("dumpcap") is None or shutil.which("iperf3") is None,
                                reason="needs dumpcap and iperf3")

RATE_BPS = 5_000_000
DELAY_S = 0.020


def _lab(prefix: str, backend: str, delay_s: float) -> Lab:
    shape = Direction(LinkShape(rate_bps=RATE_BPS, delay_s=delay_s))
    return lifecycle.up(scenario(unique_lab(prefix), ["alice", "bob"],
                                 [Link("alice-bob", "alice", "bob", shape, shape)]),
                        backend=backend)


@pytest.fixture
def user_lab() -> Iterator[Lab]:
    lab = _lab("cap", "user", DELAY_S)
    try:
        yield lab
    finally:
        lab.down()


def _in(lab: Lab, host: str, argv: list[str], out: Path) -> subprocess.Popen[bytes]:
    namespace = lab.plan.hosts[host].namespace
    with open(out, "wb") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: netns.enter(namespace))


def _iperf3_udp(lab: Lab, tmp_path: Path, rate: str, seconds: int) -> dict[str, object]:
    """iperf3 UDP alice -> bob; the server's (receiver's) JSON report."""
    bob = str(lab.plan.hosts["bob"].address)
    server = _in(lab, "bob", ["iperf3", "-s", "-1", "-J", "-p", "5201"], tmp_path / "srv.json")
    try:
        client = _in(lab, "alice", ["iperf3", "-c", bob, "-p", "5201", "-u", "-b", rate,
                                    "-t", str(seconds), "--connect-timeout", "3000"],
                     tmp_path / "cli.txt")
        assert client.wait(seconds + 20) == 0, (tmp_path / "cli.txt").read_text()
        assert server.wait(10) == 0
    finally:
        for proc in (server,):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    report: dict[str, object] = json.loads((tmp_path / "srv.json").read_text())
    return report


def test_iperf3_udp_rate_and_delay_match_the_link(user_lab: Lab, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    handle = start_capture(user_lab.plan, user_lab.backend,
                           [CaptureRequest("alice-bob")], run_dir, user_lab.journal)
    try:
        report = _iperf3_udp(user_lab, tmp_path, "3M", 8)
    finally:
        handle.stop()
    rows = analyse(run_dir)
    alice = str(user_lab.plan.hosts["alice"].address)
    metrics = flow_metrics(rows, alice)
    summary = report["end"]["sum_received"]  # type: ignore[index]
    iperf_bps = float(summary["bits_per_second"])
    assert metrics["recv_rate_bps"] == pytest.approx(iperf_bps, rel=0.02)
    assert metrics["delay_p50_ms"] == pytest.approx(DELAY_S * 1e3, abs=1.0)
    assert metrics["loss"] == 0.0
    # the same packets as the run's 100 ms time series
    mine = sender_rows(rows, alice)
    start = int(min(r.first_s or 0 for r in mine) * 1e9)
    columns = flow_columns(mine, start, start + 8 * 10**9)
    assert sorted(c or 0 for c in columns["recv_rate_bps"])[40] == pytest.approx(3e6, rel=0.1)
    delays = sorted(d for d in columns["delay_ms"] if d is not None)
    assert len(delays) >= 79 and delays[len(delays) // 2] == pytest.approx(DELAY_S * 1e3, abs=1)
    udp = [r for r in rows if r.proto == "udp" and r.src == alice]
    # iperf3's count leaves out the stream's few set-up datagrams
    assert len(udp) == 1 and 0 <= udp[0].packets - int(summary["packets"]) <= 4
    # tshark opens what was written, and sees the same packets
    bob = user_lab.plan.hosts["bob"]
    (exit_file,), _ = capture_files(run_dir / "capture",
                                    f"alice-bob.{bob.namespace}.{bob.interfaces[0].name}")
    shown = subprocess.run(["tshark", "-r", str(exit_file), "-Y",
                            f"udp and ip.dst == {bob.address}", "-T", "fields",
                            "-e", "frame.number"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.split()) == udp[0].packets


def test_kernel_backend_entry_is_taken_before_the_qdisc(tmp_path: Path) -> None:
    """htb alone (no netem here), flooded above its rate: the delay is the
    queue it builds, which a capture after the qdisc would not see at all."""
    lab = _lab("capk", "kernel", 0.0)
    try:
        run_dir = tmp_path / "run"
        handle = start_capture(lab.plan, lab.backend, [CaptureRequest("alice-bob", ("up",))],
                               run_dir, lab.journal)
        assert len(handle.running) == 2  # the mirror of alice's egress, bob's end
        try:
            report = _iperf3_udp(lab, tmp_path, "7M", 3)
        finally:
            handle.stop()
        alice = lab.plan.hosts["alice"]
        mirrors = subprocess.run(["ip", "-n", alice.namespace, "-o", "link"],
                                 capture_output=True, text=True, check=True).stdout
        assert "nlcap" not in mirrors  # stop() removed the capture veth
        rows = analyse(run_dir)
    finally:
        lab.down()
    metrics = flow_metrics(rows, str(alice.address))
    received = report["end"]["sum_received"]  # type: ignore[index]
    (udp,) = [r for r in rows if r.proto == "udp" and r.src == str(alice.address)]
    # every loss iperf3 saw is a packet the capture saw enter and never leave
    assert udp.lost <= int(received["lost_packets"]) <= udp.lost + udp.in_flight
    assert metrics["recv_rate_bps"] == pytest.approx(float(received["bits_per_second"]), rel=0.02)
    assert metrics["delay_p95_ms"] > 20.0  # a standing queue at 7 Mbit/s into 5


def test_the_ring_caps_the_files_and_its_dropped_files_are_not_loss(
        user_lab: Lab, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    options = CaptureOptions(file_size_kb=30, files=2)
    handle = start_capture(user_lab.plan, user_lab.backend, [CaptureRequest("alice-bob", ("up",))],
                           run_dir, user_lab.journal, options)
    try:
        _iperf3_udp(user_lab, tmp_path, "3M", 4)
    finally:
        handle.stop()
    for item in handle.running:
        files, wrapped = capture_files(run_dir / "capture", item.point.stem)
        assert wrapped and len(files) <= 2
        assert all(f.stat().st_size <= 32_000 for f in files)
    (udp,) = [r for r in analyse(run_dir) if r.proto == "udp"]
    assert udp.lost == 0 and udp.packets > 150
    assert udp.delay_p50_ms == pytest.approx(DELAY_S * 1e3, abs=1.0)


def test_down_ends_the_capture_processes_of_a_run_that_never_stopped(tmp_path: Path) -> None:
    lab = _lab("capd", "user", DELAY_S)
    try:
        handle = start_capture(lab.plan, lab.backend, [CaptureRequest("alice-bob")],
                               tmp_path / "run", lab.journal)
        recorded = {o.name for o in lab.journal.state.objects if o.kind == "process"}
        assert {str(pid) for pid in handle.pids} <= recorded
    finally:
        lab.down()  # as after a crash: nobody called handle.stop()
    for item in handle.running:
        assert item.proc.wait(5) is not None  # ended by down, reaped here


def test_another_process_stops_a_capture_from_its_manifest(tmp_path: Path) -> None:
    """What ``netlab down`` of a detached lab does: no handle, only the run dir."""
    lab = _lab("caps", "kernel", 0.0)
    try:
        run_dir = tmp_path / "run"
        handle = start_capture(lab.plan, lab.backend, [CaptureRequest("alice-bob")],
                               run_dir, lab.journal)
        _iperf3_udp(lab, tmp_path, "1M", 1)
        assert stop_recorded(run_dir)
        assert not stop_recorded(run_dir)  # once
        for item in handle.running:
            assert item.proc.wait(1) is not None
        links = subprocess.run(["ip", "-n", lab.plan.hosts["alice"].namespace, "-o", "link"],
                               capture_output=True, text=True, check=True).stdout
        assert "nlcap" not in links
        manifest = json.loads((run_dir / "capture" / "capture.json").read_text())
        assert manifest["stopped_ns"] and all(p["stats"] for p in manifest["points"])
        metrics = flow_metrics(analyse(run_dir), str(lab.plan.hosts["alice"].address))
        assert metrics["loss"] == 0.0 and metrics["recv_rate_bps"] is not None
    finally:
        lab.down()
