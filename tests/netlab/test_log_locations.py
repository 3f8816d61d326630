"""Lab logs live on disk outside RAM-backed /run, and truncated logs reach results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from endpoints.rtc import logs as rtc_logs
from netlab.log_problems import find_log_problems
from shaping.userlink.log import PacketLogWriter


def _paths_in(env: dict[str, str]) -> list[str]:
    code = ("from netlab import paths; "
            "print(paths.lab_dir('x')); print(paths.lab_log_dir('x'))")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETLAB_")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, text=True,
                         capture_output=True, check=True).stdout
    return out.split()


def test_logs_default_to_disk_and_state_to_run() -> None:
    assert _paths_in({}) == ["/run/netlab/x", "/var/lib/netlab/labs/x"]


def test_log_root_moves_logs_alone_and_run_root_moves_both(tmp_path: Path) -> None:
    assert _paths_in({"NETLAB_LOG_ROOT": str(tmp_path)}) == ["/run/netlab/x", f"{tmp_path}/x"]
    assert _paths_in({"NETLAB_RUN_ROOT": str(tmp_path)}) == [f"{tmp_path}/x", f"{tmp_path}/x"]


def test_truncated_logs_are_listed_with_why(tmp_path: Path) -> None:
    (tmp_path / "links").mkdir()
    capped = PacketLogWriter(tmp_path / "links" / "l.a_to_b.log", None, cap_bytes=64)
    whole = PacketLogWriter(tmp_path / "links" / "l.b_to_a.log", None, cap_bytes=1 << 20)
    for log in (capped, whole):
        for i in range(10):
            log.record(i, i, i, 100, 0)
        log.close()
    flows = tmp_path / "flows"
    flows.mkdir()
    rtc = rtc_logs.LogWriter(flows / "receiver_estimates.bin", rtc_logs.RECEIVER_ESTIMATES,
                             cap_bytes=rtc_logs.HEADER_SIZE + 16)
    for i in range(5):
        rtc.append(i, i)
    rtc.close()
    (flows / "recv_bins.bin.status").write_text("truncated: a write failed (No space left)\n")
    problems = find_log_problems(tmp_path / "links", flows, tmp_path / "absent")
    assert [(Path(p["file"]).name, p["problem"].split(" ")[1]) for p in problems] == [
        ("l.a_to_b.log", "at"), ("receiver_estimates.bin", "at"), ("recv_bins.bin", "a")]
