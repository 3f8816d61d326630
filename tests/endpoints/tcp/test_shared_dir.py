"""Sender and receiver may share one log directory (the lab gives a flow
one): no file collides and live.jsonl keeps both roles' lines whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from endpoints.tcp import logs

from .conftest import start_receiver, start_sender, stop


def test_one_directory_for_both_ends(tmp_path: Path) -> None:
    receiver, port = start_receiver(tmp_path)
    sender = start_sender(tmp_path, port, ["--mode", "rate:20Mbit", "--duration", "1.5"])
    try:
        sender.wait(timeout=15)
        receiver.wait(timeout=15)
    finally:
        stop(sender, 1)
        stop(receiver, 1)
    assert sender.returncode == 0 and receiver.returncode == 0
    sent = logs.read_meta(tmp_path, "sender")
    received = logs.read_meta(tmp_path, "receiver")
    assert received["bytes"] == sent["app_bytes"]
    assert int(logs.read_recv_bins(tmp_path)["bytes"].sum()) == received["bytes"]
    assert logs.read_tcp_info_log(tmp_path).size == sent["samples"]
    lines = (tmp_path / logs.LIVE_FILE).read_text().splitlines()
    everything = logs.read_live(tmp_path)
    assert len(everything) == len(lines)  # no line was torn or overwritten
    senders = logs.read_live(tmp_path, "sender")
    receivers = logs.read_live(tmp_path, "receiver")
    assert len(senders) == pytest.approx(1.5 / 0.25, abs=1)
    assert len(receivers) >= 5
    assert len(senders) + len(receivers) == len(everything)
