"""The VM launcher starts an RTC sender as namespaces do: set up before the
run's start, sending from the instant it is given (runs here, no VM)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from labcore.jsonfile import write_text_atomic

REPO = Path(__file__).resolve().parents[2]


def _launch(tmp_path: Path, port: int, gate: bool) -> tuple[subprocess.Popen[bytes], Path, Path]:
    ready, go = tmp_path / "sender.ready", tmp_path / "start_ns"
    argv = [sys.executable, "-P", "-m", "netlab.vagrant.launch", *(["--gate"] if gate else []),
            "--ready", str(ready), "--go", str(go), "--offset-s", "0.3",
            "endpoints.rtc.sender_app", "--dest", f"127.0.0.1:{port}", "--duration", "1",
            "--estimator", "remb", "--log-dir", str(tmp_path / "log"),
            *(["--wait-start"] if gate else [])]
    proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    return proc, ready, go


def _first_packet_after_start(tmp_path: Path, gate: bool) -> tuple[int, int, bool]:
    """(start asked, first packet's arrival, sender set up before the start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        proc, ready, go = _launch(tmp_path, sock.getsockname()[1], gate)
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
                assert time.monotonic() < deadline, "the launcher never imported its module"
                time.sleep(0.02)
            time.sleep(0.5)  # the gated sender sets up meanwhile
            set_up = (tmp_path / "log" / "ready.json").exists()
            t0 = time.monotonic_ns() + 200_000_000
            write_text_atomic(go, str(t0))
            sock.settimeout(10)
            sock.recv(2048)
            arrived = time.monotonic_ns()
        finally:
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()
    return t0 + 300_000_000, arrived, set_up


def test_a_gated_sender_is_set_up_before_the_start_and_sends_from_it(tmp_path: Path) -> None:
    start, arrived, set_up = _first_packet_after_start(tmp_path, gate=True)
    assert set_up, "a gated sender sets up before the start is chosen"
    assert start <= arrived < start + 30_000_000, (arrived - start) / 1e6
    meta = json.loads((tmp_path / "log" / "sender_meta.json").read_text())
    assert meta["start_at_ns"] == start


def test_an_ungated_module_runs_from_its_offset(tmp_path: Path) -> None:
    start, arrived, set_up = _first_packet_after_start(tmp_path, gate=False)
    assert not set_up  # it only starts at its offset
    assert arrived >= start
