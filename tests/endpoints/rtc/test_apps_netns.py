"""Sender-side GCC against a real 1 Mbit/s bottleneck between two namespaces.

Two namespaces of this test joined by a veth; the sender's egress is shaped
by htb (``shaping.tc.make_shaper``) to 1 Mbit/s with a 250 ms droptail
queue, no netem. The sender starts above capacity (1.2 Mbit/s): GCC must
see the queue grow, cut the target below capacity and hold it there, so
the target settles in [0.6, 1.1] Mbit/s and the queueing delay stays well
below what the queue allows. Processes run with ``ip netns exec``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from endpoints.rtc import logs
from labcore.netlink import IPRoute
from shaping.spec import LinkShape, QueueLimit
from shaping.tc import make_shaper

REPO = Path(__file__).resolve().parents[3]
TAG = f"nlth{os.getpid() % 10_000_000}"
SENDER_NS, RECEIVER_NS = f"{TAG}-s", f"{TAG}-r"
SENDER_IF, RECEIVER_IF = f"{TAG}a", f"{TAG}b"
SENDER_IP, RECEIVER_IP = "10.77.0.1", "10.77.0.2"
RATE_BPS = 1_000_000
QUEUE_BYTES = RATE_BPS // 8 // 4  # 250 ms at 1 Mbit/s
DURATION_S = 8.0


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def link() -> Iterator[None]:
    """Two namespaces joined by a veth, sender side shaped; removed whatever happens."""
    try:
        ip("netns", "add", SENDER_NS)
        ip("netns", "add", RECEIVER_NS)
        ip("link", "add", SENDER_IF, "netns", SENDER_NS, "type", "veth",
           "peer", "name", RECEIVER_IF, "netns", RECEIVER_NS)
        for ns, ifname, address in ((SENDER_NS, SENDER_IF, SENDER_IP),
                                    (RECEIVER_NS, RECEIVER_IF, RECEIVER_IP)):
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", ifname)
            ip("-n", ns, "link", "set", ifname, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        with IPRoute(netns=SENDER_NS) as ipr:
            make_shaper("htb", ipr, SENDER_IF, netem=False).apply(
                LinkShape(rate_bps=RATE_BPS, queue=QueueLimit(bytes=QUEUE_BYTES)))
        yield
    finally:
        for ns in (SENDER_NS, RECEIVER_NS):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def in_namespace(ns: str, module: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", module, *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_gcc_settles_below_a_1_mbit_bottleneck(link: None, tmp_path: Path) -> None:
    started: list[subprocess.Popen[str]] = []
    try:
        receiver = in_namespace(RECEIVER_NS, "endpoints.rtc.receiver_app",
                                "--bind", f"{RECEIVER_IP}:5004", "--log-dir", str(tmp_path))
        started.append(receiver)
        deadline = time.monotonic() + 20
        while not (tmp_path / "receiver_meta.json").exists():
            assert receiver.poll() is None and time.monotonic() < deadline, "receiver died"
            time.sleep(0.02)
        sender = in_namespace(SENDER_NS, "endpoints.rtc.sender_app",
                              "--dest", f"{RECEIVER_IP}:5004", "--duration", str(DURATION_S),
                              "--start-rate", "1.2Mbit", "--estimator", "gcc",
                              "--log-dir", str(tmp_path))
        started.append(sender)
        _out, err = sender.communicate(timeout=DURATION_S + 20)
        assert sender.returncode == 0, err
        time.sleep(0.3)
        receiver.terminate()
        _out, err = receiver.communicate(timeout=20)
        assert receiver.returncode == 0, err
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)

    sent = logs.read_kind(tmp_path, logs.SENDER_PACKETS)
    received = logs.read_kind(tmp_path, logs.RECEIVER_PACKETS)
    rate = logs.read_kind(tmp_path, logs.SENDER_RATE)
    # Every received packet was sent, with that send time; one clock, so delay >= 0.
    index = np.searchsorted(sent["transport_seq"], received["transport_seq"])
    assert (sent["transport_seq"][index] == received["transport_seq"]).all()
    assert (sent["send_ns"][index] == received["send_ns"]).all()
    delays_ms = (received["arrival_ns"] - received["send_ns"]) / 1e6
    assert (delays_ms >= 0).all()

    start_ns = sent["send_ns"][0]
    late_rate = rate[rate["time_ns"] > start_ns + (DURATION_S - 3) * 1e9]
    late_targets = late_rate["target_bps"]
    summary = (f"late targets {late_targets.min():.0f}..{late_targets.max():.0f} "
               f"median {np.median(late_targets):.0f}")
    # GCC cut below capacity and settled there; a periodic probe may lift the target
    # above the link for the moment (a probe cluster that fits in htb's burst measures
    # more than the rate: 1.2-1.7 Mbit/s seen) until its overuse cuts it again, which
    # takes the encoder's climb plus detection: up to 0.65 s in 12 runs, 1.5 s allowed
    # (a GCC that never cut would stay above for all 3 s).
    assert (rate["usage"] == 1).any(), "the bottleneck was never detected"
    assert late_targets.min() >= 0.6e6 and 0.6e6 < np.median(late_targets) <= 1.0e6, summary
    longest_above_s = _longest_stretch_s(late_rate["time_ns"], late_targets > 1.1e6)
    assert longest_above_s <= 1.5, f"{summary}; above 1.1 Mbit/s for {longest_above_s:.2f} s"

    late = received["send_ns"] > start_ns + (DURATION_S - 4) * 1e9
    p95_late = np.percentile(delays_ms[late], 95)
    p95_all = np.percentile(delays_ms, 95)
    # The queue holds up to 250 ms; once settled, GCC keeps it far emptier.
    assert p95_late < 150, f"p95 one-way delay {p95_late:.1f} ms over the last 4 s"
    # And it still uses the link.
    late_received = received[received["arrival_ns"] > start_ns + (DURATION_S - 4) * 1e9]
    late_span_s = (late_received["arrival_ns"][-1] - late_received["arrival_ns"][0]) / 1e9
    goodput = late_received["size"].sum() * 8 / late_span_s
    assert 0.55e6 < goodput < 1.0e6, f"received {goodput:.0f} bit/s"
    assert len(received) > 0.95 * len(sent)
    # The sender learnt of each loss from transport feedback (all but the last second's,
    # whose feedback may come after it exits).
    meta = json.loads((tmp_path / "sender_meta.json").read_text())
    lost = sent[~np.isin(sent["transport_seq"], received["transport_seq"])]
    lost_early = (lost["send_ns"] < sent["send_ns"][-1] - 1e9).sum()
    assert lost_early <= meta["counters"]["packets_reported_lost"] <= len(lost)
    print(f"{summary}; p95 delay late {p95_late:.1f} ms, all {p95_all:.1f} ms; "
          f"goodput {goodput:.0f} bit/s; lost {len(sent) - len(received)}/{len(sent)}")


def _longest_stretch_s(times_ns: npt.NDArray[np.int64], above: npt.NDArray[np.bool_]) -> float:
    """Longest time from a sample ``above`` to the next one that is not (or the last)."""
    longest = 0.0
    start: int | None = None
    for index, flag in enumerate(above):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            longest = max(longest, float(times_ns[index] - times_ns[start]) / 1e9)
            start = None
    if start is not None:
        longest = max(longest, float(times_ns[-1] - times_ns[start]) / 1e9)
    return longest
