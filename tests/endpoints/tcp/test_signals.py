"""SIGTERM stops either endpoint within a sampling interval or two, with
every log flushed and the metadata saying why it stopped."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from endpoints.tcp import logs

from .conftest import start_receiver, start_sender, stop


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_sigterm_sender_flushes_logs(tmp_path: Path) -> None:
    receiver, port = start_receiver(tmp_path / "r")
    sender = start_sender(tmp_path / "s", port, ["--mode", "rate:5Mbit", "--duration", "30"])
    try:
        _wait_for(tmp_path / "s" / logs.SENDER_META_FILE)  # connected and sending
        time.sleep(1.0)
        sent_at = time.monotonic()
        sender.send_signal(signal.SIGTERM)
        sender.wait(timeout=5)
        exit_s = time.monotonic() - sent_at
        receiver.wait(timeout=5)
    finally:
        stop(sender, 1)
        stop(receiver, 1)
    assert sender.returncode == 0
    assert exit_s < 1.0
    meta = logs.read_meta(tmp_path / "s", "sender")
    assert meta["end_reason"] == "sigterm"
    info = logs.read_tcp_info_log(tmp_path / "s")
    assert info.size == meta["samples"]
    ran_s = (meta["end_ns"] - meta["start_ns"]) / 1e9
    assert ran_s >= 1.0
    # One sample per 10 ms up to the signal, plus the final one, all on disk.
    assert info.size + meta["missed_samples"] == pytest.approx(ran_s / 0.01 + 1, abs=2)
    raw = (tmp_path / "s" / logs.TCP_INFO_FILE).stat().st_size
    assert raw == info.size * logs.TCP_INFO_DTYPE.itemsize
    assert abs(len(logs.read_live(tmp_path / "s")) - int(ran_s / 0.25)) <= 1
    received = logs.read_meta(tmp_path / "r", "receiver")
    assert received["end_reason"] == "peer_closed"
    assert received["bytes"] == meta["app_bytes"]


def test_sigterm_receiver_flushes_bins(tmp_path: Path) -> None:
    receiver, port = start_receiver(tmp_path / "r")
    sender = start_sender(tmp_path / "s", port, ["--mode", "rate:5Mbit", "--duration", "30"])
    try:
        _wait_for(tmp_path / "s" / logs.SENDER_META_FILE)
        time.sleep(1.0)
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=5)
        sender.wait(timeout=10)  # it notices the peer is gone
    finally:
        stop(sender, 1)
        stop(receiver, 1)
    assert receiver.returncode == 0
    meta = logs.read_meta(tmp_path / "r", "receiver")
    assert meta["end_reason"] == "sigterm"
    bins = logs.read_recv_bins(tmp_path / "r")
    assert bins.size == meta["bins"] >= 100
    assert int(bins["bytes"].sum()) == meta["bytes"] > 400_000  # ~0.7 MB at 5 Mbit/s
    assert logs.read_meta(tmp_path / "s", "sender")["end_reason"] == "peer_closed"


def test_receiver_runs_to_its_duration_without_a_sender(tmp_path: Path) -> None:
    proc, _port = start_receiver(tmp_path / "r", duration_s=0.5)
    try:
        proc.wait(timeout=5)
    finally:
        stop(proc, 1)
    meta = logs.read_meta(tmp_path / "r", "receiver")
    assert meta["end_reason"] == "duration"
    bins = logs.read_recv_bins(tmp_path / "r")
    assert 45 <= bins.size <= 60 and int(bins["bytes"].sum()) == 0
