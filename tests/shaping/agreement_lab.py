"""Both link backends under one UDP flood, measured at the receiver against the trace.

Shared by tests/shaping/test_agreement_backends.py (a few short cases) and
bench/replay.py (the sweep).  The yardstick is the same for both backends:
the receiver's own per-packet arrival times (CLOCK_MONOTONIC, like the
replay's start), binned by 500 ms, against the bits the trace's delivery
opportunities carry in each bin (1504 bytes each, Mahimahi's MTU).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shaping.fidelity.capacity import asked_from_trace
from shaping.replay import build_schedule, start_replayer
from shaping.spec import LinkShape, QueueLimit
from shaping.traces import Trace
from shaping.userlink import UserLinkSpec, create_link_interfaces, start_link
from shaping.userlink.config import traced_direction

ADDR_A, ADDR_B = "10.234.0.1", "10.234.0.2"
PORT = 9000
PAYLOAD = 1400
IP_BYTES = PAYLOAD + 28
BIN_S = 0.5
#: Trace time before the measured window: the processes start and the flood
#: fills the queue (the window starts this long after the trace's zero).
LEAD_S = 2.0
QUEUE = QueueLimit(packets=100)

RECEIVER = r"""
import array, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
end_ns = int(sys.argv[3])  # CLOCK_MONOTONIC: one clock for every namespace
stamps = array.array("q")
print("ready", flush=True)
while True:
    left = (end_ns - time.monotonic_ns()) / 1e9
    if left <= 0:
        break
    s.settimeout(left)
    try:
        s.recv(4096)
    except socket.timeout:
        break
    stamps.append(time.monotonic_ns())
open(sys.argv[4], "wb").write(stamps.tobytes())
"""

SENDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)  # a full send buffer drops the datagram, never stalls the pacing
dst = (sys.argv[1], int(sys.argv[2]))
seconds, pps, size = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
payload = b"x" * size
start = time.monotonic()
sent = 0
while True:
    now = time.monotonic()
    if now - start >= seconds:
        break
    due = int((now - start) * pps) + 1
    while sent < due:
        try:
            s.sendto(payload, dst)
        except OSError:  # queue or buffer full: dropped, which is the flood's point
            pass
        sent += 1
    time.sleep(0.001)
"""


@dataclass(frozen=True)
class Delivery:
    """Per 500 ms bin from the start: bits the receiver got and the trace offered."""

    backend: str
    received_bps: npt.NDArray[np.float64]
    asked_bps: npt.NDArray[np.float64]

    @property
    def counted(self) -> npt.NDArray[np.bool_]:
        return self.asked_bps > 0

    def errors(self) -> npt.NDArray[np.float64]:
        mask = self.counted
        out: npt.NDArray[np.float64] = self.received_bps[mask] / self.asked_bps[mask] - 1
        return out

    def total_bits(self) -> float:
        return float(self.received_bps[self.counted].sum() * BIN_S)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


@contextmanager
def namespaces() -> Iterator[tuple[str, str]]:
    tag = secrets.token_hex(3)
    made: list[str] = []
    try:
        for side in ("a", "b"):
            ns = f"nltg-ag{tag}-{side}"
            _ip("netns", "add", ns)
            made.append(ns)
        yield made[0], made[1]
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, stderr=subprocess.DEVNULL)


def _address(ns_a: str, if_a: str, ns_b: str, if_b: str, prefix: int) -> None:
    for ns, ifname, addr in ((ns_a, if_a, ADDR_A), (ns_b, if_b, ADDR_B)):
        _ip("-n", ns, "addr", "add", f"{addr}/{prefix}", "dev", ifname)
        _ip("-n", ns, "link", "set", ifname, "up")


def flood_pps(trace: Trace, seconds: float) -> float:
    """1.3x the busiest 500 ms bin: the link stays backlogged, the queue full."""
    edges = np.arange(0.0, LEAD_S + seconds + 1e-9, BIN_S)
    counts, _ = np.histogram(np.asarray(trace.opportunities_ms) / 1000.0, edges)
    peak_bps = counts.max() * 1504 * 8 / BIN_S
    return float(1.3 * peak_bps / (IP_BYTES * 8))


def _flood_and_receive(ns_a: str, ns_b: str, start_ns: int, seconds: float, pps: float,
                       out: Path) -> npt.NDArray[np.int64]:
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", ns_b, sys.executable, "-c", RECEIVER, ADDR_B, str(PORT),
         str(start_ns + round((seconds + 0.3) * 1e9)), str(out)], stdout=subprocess.PIPE)
    assert receiver.stdout is not None
    receiver.stdout.readline()
    time.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9 - 1.0))  # fill the queue first
    sender = subprocess.run(
        ["ip", "netns", "exec", ns_a, sys.executable, "-c", SENDER, ADDR_B, str(PORT),
         str(seconds + 1.2), str(pps), str(PAYLOAD)], check=True, timeout=seconds + 30)
    assert sender.returncode == 0
    receiver.wait(30)
    return np.frombuffer(out.read_bytes(), dtype=np.int64)


def _delivery(backend: str, stamps: npt.NDArray[np.int64], trace_zero_ns: int, from_ns: int,
              trace: Trace, seconds: float, wire_bytes: int) -> Delivery:
    """Bins of ``seconds`` from ``from_ns``; the trace (looping) counts from ``trace_zero_ns``."""
    edges = from_ns + np.arange(0, round(seconds / BIN_S) + 1, dtype=np.int64) * round(
        BIN_S * 1e9)
    got, _ = np.histogram(stamps, edges)
    asked = asked_from_trace(trace, trace_zero_ns, int(edges[-1])).integrate(edges) / BIN_S
    return Delivery(backend, got * wire_bytes * 8 / BIN_S, np.nan_to_num(asked))


def run_kernel(trace: Trace, seconds: float, workdir: Path) -> Delivery:
    """htb on a veth, replayed by the replayer process (bytes counted as tc does: +14)."""
    with namespaces() as (ns_a, ns_b):
        if_a, if_b = f"{ns_a[-8:]}k", f"{ns_b[-8:]}k"
        _ip("link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b,
            "netns", ns_b)
        _address(ns_a, if_a, ns_b, if_b, 24)
        start_ns = time.monotonic_ns() + 1_500_000_000
        window_ns = start_ns + round(LEAD_S * 1e9)
        handle = start_replayer(ns_a, if_a, "htb", build_schedule(trace, LinkShape(queue=QUEUE)),
                                None, workdir / "kernel.replay", start_ns=start_ns,
                                duration_s=LEAD_S + seconds + 0.5)
        try:
            stamps = _flood_and_receive(ns_a, ns_b, window_ns, seconds,
                                        flood_pps(trace, seconds), workdir / "kernel.rx")
        finally:
            handle.stop()
    return _delivery("kernel", stamps, start_ns, window_ns, trace, seconds, IP_BYTES + 14)


def run_user(trace: Trace, seconds: float, workdir: Path) -> Delivery:
    """The user-space link replaying the opportunities exactly (bytes as Mahimahi: IP)."""
    with namespaces() as (ns_a, ns_b):
        if_a, if_b = f"{ns_a[-8:]}u", f"{ns_b[-8:]}u"
        create_link_interfaces("ag", ns_a, if_a, ns_b, if_b, record=lambda k, n, ns: None)
        _address(ns_a, if_a, ns_b, if_b, 30)
        base = LinkShape(queue=QUEUE)
        spec = UserLinkSpec("ag", ns_a, if_a, ns_b, if_b, traced_direction(trace, base, seed=1),
                            traced_direction(trace, base, seed=2), workdir / "user")
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        handle = start_link(spec)
        window_ns = handle.start_ns + round(LEAD_S * 1e9)
        try:
            stamps = _flood_and_receive(ns_a, ns_b, window_ns, seconds, flood_pps(trace, seconds),
                                        workdir / "user.rx")
        finally:
            handle.stop()
    return _delivery("user", stamps, handle.start_ns, window_ns, trace, seconds, IP_BYTES)


def outage_trace(rate_mbps: float, gap_s: float, *, before_s: float = LEAD_S + 1.5,
                 after_s: float = 2.0, short_gaps_ms: tuple[int, ...] = ()) -> Trace:
    """Constant ``rate_mbps`` with one gap of ``gap_s`` after ``before_s``; ``short_gaps_ms``
    punch shorter gaps (each shorter than a replay step) into the delivery after it."""
    per_ms = rate_mbps * 1e6 / (1504 * 8) / 1000
    total_ms = round((before_s + after_s) * 1000)
    stamps = [t for t in range(1, total_ms + 1)
              for _ in range(int(t * per_ms) - int((t - 1) * per_ms))]
    gap_at = round(before_s * 1000)
    gap_ms = round(gap_s * 1000)
    stamps = [t for t in stamps if t <= gap_at] + [t + gap_ms for t in stamps if t > gap_at]
    cursor = gap_at + gap_ms + 300
    for short in short_gaps_ms:
        stamps = [t for t in stamps if not cursor < t <= cursor + short]
        cursor += short + 300
    return Trace.from_opportunities(stamps)
