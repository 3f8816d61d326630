"""Application-limited modes: a fixed rate holds within ±10 % and on/off
periods show in the received bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from endpoints.tcp import logs

from .conftest import Pair


def _received_bps(pair: Pair, start_s: float, end_s: float) -> float:
    bins = logs.read_recv_bins(pair.receiver_dir)
    start_ns = logs.read_meta(pair.sender_dir, "sender")["start_ns"]
    t = (bins["bin_start_ns"] - start_ns) / 1e9
    chosen = (t >= start_s) & (t < end_s)
    return float(bins["bytes"][chosen].sum() * 8 / (end_s - start_s))


@pytest.mark.parametrize("rate_mbit", [5, 20])
def test_fixed_rate_within_ten_percent(rate_mbit: int, run_pair: Callable[..., Pair]) -> None:
    pair = run_pair(["--cc", "cubic", "--mode", f"rate:{rate_mbit}Mbit", "--duration", "2.5"])
    assert pair.sender_rc == 0, pair.sender_stderr
    measured = _received_bps(pair, 0.5, 2.5)
    assert measured == pytest.approx(rate_mbit * 1e6, rel=0.10)
    sender = logs.read_meta(pair.sender_dir, "sender")
    app_bps = sender["app_bytes"] * 8 / ((sender["end_ns"] - sender["start_ns"]) / 1e9)
    assert app_bps == pytest.approx(rate_mbit * 1e6, rel=0.10)
    info = logs.read_tcp_info_log(pair.sender_dir)
    assert np.any(info["app_limited"] == 1)  # the kernel saw an application-limited flow


def _sender_delta(pair: Pair, field: str, start_s: float, end_s: float) -> int:
    """Growth of a TCP_INFO counter between the samples nearest to two times."""
    info = logs.read_tcp_info_log(pair.sender_dir)
    start_ns = logs.read_meta(pair.sender_dir, "sender")["start_ns"]
    t = (info["t_ns"] - start_ns) / 1e9
    first, last = np.searchsorted(t, start_s), np.searchsorted(t, end_s) - 1
    return int(info[field][last]) - int(info[field][first])


def _check_onoff(pair: Pair, periods: int, on_check: Callable[[float], bool],
                 off_wire_bytes: int, backlog_bytes: int = 0) -> None:
    """Per period: the application wrote nothing while off (exact), at most
    ``off_wire_bytes`` (what the socket buffer held) went on the wire from
    50 ms into the off time, and the receiver's rate shows the pattern (its
    clock is when the receiving process read the bytes, so a descheduled
    receiver smears a little into the off time: at most ``backlog_bytes``,
    what its receive queue and the sender's buffer held, beyond 10 % of on)."""
    for period in range(periods):
        on_start = period * 0.6
        assert _sender_delta(pair, "app_bytes", on_start + 0.31, on_start + 0.59) == 0
        wire = _sender_delta(pair, "bytes_sent", on_start + 0.35, on_start + 0.59)
        assert wire <= off_wire_bytes
        assert _sender_delta(pair, "app_bytes", on_start + 0.05, on_start + 0.29) > 0
        on = _received_bps(pair, on_start + 0.05, on_start + 0.3)
        off = _received_bps(pair, on_start + 0.35, on_start + 0.6)
        assert on_check(on), f"period {period}: {on} bit/s while on"
        off_window_s = 0.25
        allowed = 0.1 * on + backlog_bytes * 8 / off_window_s
        assert off < allowed, f"period {period}: {off} bit/s while off, {on} on"


def test_onoff_pattern_is_visible(run_pair: Callable[..., Pair]) -> None:
    pair = run_pair(["--cc", "cubic", "--mode", "onoff:0.3,0.3,10Mbit", "--duration", "2.4"])
    assert pair.sender_rc == 0, pair.sender_stderr
    # The socket holds at most a 20 ms bucket (25 kB) at the switch, and it
    # fits the receive window: the wire falls silent at once.
    _check_onoff(pair, 4, lambda on: on == pytest.approx(10e6, rel=0.25), off_wire_bytes=0)


def test_bulk_onoff_stops_and_starts(run_pair: Callable[..., Pair]) -> None:
    pair = run_pair(["--cc", "cubic", "--mode", "onoff:0.3,0.3", "--duration", "1.2"])
    assert pair.sender_rc == 0, pair.sender_stderr
    # A full send buffer (up to tcp_wmem's maximum) may still drain while off,
    # if the receiving process was slow to open the window; and a receiver
    # descheduled at the switch reads its whole queue (up to tcp_rmem's
    # maximum) in the off time: a CI machine once read 36 MB there.
    wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    rmem_max = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    _check_onoff(pair, 2, lambda on: on > 50e6, off_wire_bytes=wmem_max,
                 backlog_bytes=rmem_max + wmem_max)
