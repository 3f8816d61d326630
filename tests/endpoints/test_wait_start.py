"""``--wait-start``: a sender started early sends nothing until the instant it is given.

The lab starts every sender with the receivers and hands them the run's time
zero (plus each flow's ``start``) on stdin, so no flow starts an interpreter
start-up late.  Real processes over loopback: the RTC sender's first packet
and the TCP sender's connection come at the instant given, not before it;
a closed stdin (the lab gone) ends a waiting sender without a packet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from endpoints.ready import READY, READY_FILE
from endpoints.rtc import logs as rtc_logs
from endpoints.tcp import logs as tcp_logs
from labcore.startgate import start_line
from tests.endpoints.rtc.test_apps_loopback import Processes, processes, start_receiver
from tests.endpoints.tcp.conftest import start_receiver as start_tcp_receiver
from tests.endpoints.tcp.conftest import stop

__all__ = ["processes"]  # the fixture, used by name

REPO = Path(__file__).resolve().parents[2]
LEAD_S = 0.8  # well after the sender is ready: anything sent before the instant is early
#: The first packet goes out within this of the instant (a wake-up on a shared machine).
LATE_LIMIT_NS = 50_000_000


def _ready(log_dir: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if json.loads((log_dir / READY_FILE).read_text())["state"] == READY:
                return
        except (OSError, ValueError):
            pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else None
        assert time.monotonic() < deadline, "the sender never said ready"
        time.sleep(0.02)


def _sender(module: str, log_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", module, *args, "--log-dir", str(log_dir),
                             "--wait-start"], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> bytes:
    """Wait for its exit (its stdin is closed already); its stderr."""
    proc.wait(timeout=30)
    assert proc.stderr is not None
    return proc.stderr.read()


def _release(proc: subprocess.Popen[bytes]) -> int:
    at_ns = time.monotonic_ns() + round(LEAD_S * 1e9)
    assert proc.stdin is not None
    proc.stdin.write(start_line(at_ns))
    proc.stdin.close()
    return at_ns


def test_the_rtc_sender_sends_its_first_packet_at_the_instant_given(
        processes: Processes, tmp_path: Path) -> None:
    receiver, port = start_receiver(processes, tmp_path / "rx")
    sender = _sender("endpoints.rtc.sender_app", tmp_path / "tx", "--dest", f"127.0.0.1:{port}",
                     "--duration", "1.5", "--estimator", "remb")
    try:
        _ready(tmp_path / "tx", sender)
        at_ns = _release(sender)
        err = _finish(sender)
        assert sender.returncode == 0, err
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    sent = rtc_logs.read_kind(tmp_path / "tx", rtc_logs.SENDER_PACKETS)
    first = int(sent["send_ns"].min())
    assert at_ns <= first < at_ns + LATE_LIMIT_NS, (first - at_ns) / 1e6
    meta = json.loads((tmp_path / "tx" / "sender_meta.json").read_text())
    assert meta["start_at_ns"] == meta["start_ns"] == at_ns
    assert at_ns <= meta["started_ns"] < at_ns + LATE_LIMIT_NS
    receiver.terminate()


def test_the_tcp_sender_connects_at_the_instant_given(tmp_path: Path) -> None:
    receiver, port = start_tcp_receiver(tmp_path / "rx", duration_s=10)
    sender = _sender("endpoints.tcp.sender_app", tmp_path / "tx", "--dest", f"127.0.0.1:{port}",
                     "--duration", "1", "--mode", "rate:2Mbit")
    try:
        _ready(tmp_path / "tx", sender)
        assert not (tmp_path / "tx" / tcp_logs.SENDER_META_FILE).exists()  # not connected yet
        at_ns = _release(sender)
        err = _finish(sender)
        assert sender.returncode == 0, err
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        stop(receiver)
    meta = tcp_logs.read_meta(tmp_path / "tx", "sender")
    assert meta["start_at_ns"] == at_ns
    assert at_ns <= meta["started_ns"] < at_ns + LATE_LIMIT_NS
    assert meta["app_bytes"] > 0


@pytest.mark.parametrize("module", ["endpoints.rtc.sender_app", "endpoints.tcp.sender_app"])
def test_a_waiting_sender_whose_lab_went_away_ends_without_sending(
        tmp_path: Path, module: str) -> None:
    sender = _sender(module, tmp_path / "tx", "--dest", "127.0.0.1:9", "--duration", "5")
    try:
        _ready(tmp_path / "tx", sender)
        assert sender.stdin is not None
        sender.stdin.close()  # EOF: the lab that would have given the start is gone
        err = _finish(sender)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert sender.returncode == 0, err
    assert b"stopped before its start" in err
