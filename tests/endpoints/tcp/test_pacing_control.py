"""The externally driven rate: 8-byte commands on the control socket become
SO_MAX_PACING_RATE at once, and the kernel's internal TCP pacing (no fq
qdisc here) holds the flow to them within 100 ms, down and up.

Runs on the loopback of a namespace with MTU 1500 and tcp_tso_rtt_log=0,
so the kernel sends MSS-sized packets as over a real link (on the host's
loopback, µs RTTs make it pace 64 kB TSO frames: same mean rate, but in
steps too coarse to time a 100 ms reaction).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from endpoints.tcp import logs
from endpoints.tcp.pacing import UNLIMITED, send_rate_command

from .conftest import Pair

# (seconds after the previous command, rate in bytes/s)
COMMANDS = ((0.5, 1_250_000), (1.0, 312_500), (1.0, 2_500_000))


def _sent_bps(info: np.ndarray, start_ns: float, end_ns: float) -> float:
    """Bytes the sender put on the wire (tcpi_bytes_sent) over [start, end)."""
    times = info["t_ns"]
    first, last = np.searchsorted(times, start_ns), np.searchsorted(times, end_ns) - 1
    sent = int(info["bytes_sent"][last]) - int(info["bytes_sent"][first])
    return sent * 8 * 1e9 / float(times[last] - times[first])


@pytest.mark.parametrize("cc", ["cubic", "bbr", "reno"])
def test_pacing_commands_take_effect_within_100ms(cc: str, lo_netns: str, tmp_path: Path,
                                                  run_pair: Callable[..., Pair]) -> None:
    control = tmp_path / "pace.sock"
    sent_at: list[int] = []

    def drive(sender: subprocess.Popen[str], _sender_dir: Path) -> None:
        deadline = time.monotonic() + 10
        while not control.exists():
            assert sender.poll() is None and time.monotonic() < deadline, "no control socket"
            time.sleep(0.01)
        for delay_s, rate in COMMANDS:
            time.sleep(delay_s)
            sent_at.append(time.monotonic_ns())
            send_rate_command(control, rate)

    pair = run_pair(["--cc", cc, "--mode", "bulk", "--duration", "3.6",
                     "--pacing-control", str(control)], netns=lo_netns, during=drive)
    assert pair.sender_rc == 0, pair.sender_stderr
    assert not control.exists()  # removed on exit

    applied = logs.read_pacing_log(pair.sender_dir)
    assert applied["requested_Bps"].tolist() == [rate for _d, rate in COMMANDS]
    assert np.all(applied["applied_Bps"] == applied["requested_Bps"])
    assert np.all(applied["t_recv_ns"] - np.array(sent_at) < 50_000_000)
    assert np.all(applied["t_applied_ns"] - applied["t_recv_ns"] < 5_000_000)

    info = logs.read_tcp_info_log(pair.sender_dir)
    bins = logs.read_recv_bins(pair.receiver_dir)
    for t_applied, (_delay, rate) in zip(applied["t_applied_ns"], COMMANDS, strict=True):
        after = info[info["t_ns"] > t_applied]
        assert after["max_pacing_rate"][0] == rate  # the very next sample shows it
        target_bps = rate * 8
        # From 100 ms after the command on, the wire rate is held to the
        # commanded one (a cap: BBR's own gain cycle may pace below it for a
        # while, hence the looser lower bound over the short window).
        for window_s, low, high in (((0.1, 0.3), 0.5, 1.25), ((0.1, 0.9), 0.8, 1.12)):
            lo, hi = t_applied + window_s[0] * 1e9, t_applied + window_s[1] * 1e9
            sent = _sent_bps(info, lo, hi)
            assert low * target_bps <= sent <= high * target_bps, (
                f"{cc}: {rate} B/s, window {window_s}: {sent} bit/s sent")
            chosen = (bins["bin_start_ns"] >= lo) & (bins["bin_start_ns"] < hi)
            received = bins["bytes"][chosen].sum() * 8 / (window_s[1] - window_s[0])
            assert (low - 0.05) * target_bps <= received <= (high + 0.05) * target_bps, (
                f"{cc}: {rate} B/s, window {window_s}: {received} bit/s received")


def test_unlimited_and_clamped_commands(lo_netns: str, tmp_path: Path,
                                       run_pair: Callable[..., Pair]) -> None:
    control = tmp_path / "pace.sock"

    def drive(sender: subprocess.Popen[str], _sender_dir: Path) -> None:
        while not control.exists():
            assert sender.poll() is None
            time.sleep(0.01)
        send_rate_command(control, UNLIMITED)
        time.sleep(0.2)
        send_rate_command(control, 0)  # would mean "no pacing" to the kernel
        time.sleep(0.2)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"short", str(control))

    # At 10 kbit/s the skb already scheduled (up to 64 kB) takes seconds to
    # leave, and the FIN waits behind it: the receiver stops on its duration.
    pair = run_pair(["--cc", "cubic", "--mode", "bulk", "--duration", "0.8",
                     "--pacing-control", str(control)], netns=lo_netns, during=drive,
                    receiver_duration_s=2.0)
    assert pair.sender_rc == 0, pair.sender_stderr
    applied = logs.read_pacing_log(pair.sender_dir)
    assert applied["applied_Bps"].tolist() == [UNLIMITED, 1250]
    meta = logs.read_meta(pair.sender_dir, "sender")
    assert meta["bad_pacing_commands"] == 1
    assert meta["pacing_commands"] == 2
    info = logs.read_tcp_info_log(pair.sender_dir)
    clamped = info[info["t_ns"] > applied["t_applied_ns"][1]]
    assert np.all(clamped["max_pacing_rate"][:-1] == 1250)  # the last: lifted at exit
    assert np.all(clamped["pacing_rate"][:-1] <= 1250)
