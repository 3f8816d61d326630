"""The user-space link process on real namespaces, TUN devices and sockets.

Timing assertions leave room for the 2 shared CPUs (other test suites run
beside this one) but fail on a link that is early, slow, or wrong.
"""

from __future__ import annotations

import os
import secrets
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest

from labcore.priority import AGENT, SHAPING
from shaping.spec import LinkShape, QueueLimit
from shaping.userlink import (
    DirectionConfig,
    UserLinkError,
    UserLinkHandle,
    UserLinkSpec,
    create_link_interfaces,
    read_change_log,
    read_packet_log,
    start_link,
)
from shaping.userlink.engine import REASON_DELIVERED
from shaping.userlink.loss import REASON_LOSS_IID
from shaping.userlink.wiring import in_netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and TUN")

ADDR_A, ADDR_B = "10.232.0.1", "10.232.0.2"
SO_TIMESTAMPNS = 35  # Linux; not exported by the socket module
TIMESPEC = struct.Struct("@ll")


@dataclass
class Pair:
    """Two namespaces joined by TUN interfaces (the link process not yet started)."""

    ns_a: str
    ns_b: str
    if_a: str
    if_b: str
    run_dir: Path
    handles: list[UserLinkHandle] = field(default_factory=list)

    def start(
        self, a_to_b: DirectionConfig, b_to_a: DirectionConfig | None = None
    ) -> UserLinkHandle:
        spec = UserLinkSpec(
            "t", self.ns_a, self.if_a, self.ns_b, self.if_b, a_to_b, b_to_a or a_to_b, self.run_dir
        )
        handle = start_link(spec)
        self.handles.append(handle)
        return handle

    def udp(self, ns: str) -> socket.socket:
        return in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    tag = secrets.token_hex(3)
    p = Pair(f"nlte-{tag}-a", f"nlte-{tag}-b", f"nlte{tag}a", f"nlte{tag}b", tmp_path)
    made: list[str] = []
    try:
        for ns in (p.ns_a, p.ns_b):
            made.append(ns)
            subprocess.run(["ip", "netns", "add", ns], check=True)
        create_link_interfaces("t", p.ns_a, p.if_a, p.ns_b, p.if_b, record=lambda k, n, ns: None)
        for ns, addr, ifname in ((p.ns_a, ADDR_A, p.if_a), (p.ns_b, ADDR_B, p.if_b)):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", ifname], check=True)
        yield p
    finally:
        for handle in p.handles:
            handle.stop()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, stderr=subprocess.DEVNULL)


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, to read kernel receive stamps on one clock."""
    m0 = time.monotonic_ns()
    r = time.clock_gettime_ns(time.CLOCK_REALTIME)
    return r - (m0 + time.monotonic_ns()) // 2


def icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping_rtts_ms(pair: Pair, count: int, interval_s: float) -> list[float]:
    """Kernel-answered ICMP echo from A to B; RTT stamped by the kernel on receipt."""
    sock = in_netns(
        pair.ns_a, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    )
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.settimeout(1.0)
    ident = os.getpid() & 0xFFFF
    offset = realtime_offset_ns()
    rtts: list[float] = []
    try:
        for seq in range(count):
            body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + bytes(56)
            packet = body[:2] + struct.pack("!H", icmp_checksum(body)) + body[4:]
            sent = time.monotonic_ns()
            sock.sendto(packet, (ADDR_B, 0))
            while True:
                data, anc, _, _ = sock.recvmsg(2048, 64)
                hdr = (data[0] & 0x0F) * 4
                kind, _, _, rid, rseq = struct.unpack_from("!BBHHH", data, hdr)
                if kind == 0 and rid == ident and rseq == seq:
                    break
            got = time.monotonic_ns()
            for level, typ, value in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = TIMESPEC.unpack_from(value)
                    got = sec * 1_000_000_000 + nsec - offset
            rtts.append((got - sent) / 1e6)
            time.sleep(interval_s)
    finally:
        sock.close()
    return rtts


class Counter:
    """Receives UDP in namespace B on a thread; keeps (seq, arrival_ns, bytes)."""

    def __init__(self, pair: Pair, port: int) -> None:
        self.sock = pair.udp(pair.ns_b)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((ADDR_B, port))
        self.sock.settimeout(0.3)
        self.got: list[tuple[int, int, int]] = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.got.append((int.from_bytes(data[:4], "big"), time.monotonic_ns(), len(data)))

    def close(self, quiet_s: float = 0.3, limit_s: float = 5.0) -> None:
        """Stop once nothing has arrived for ``quiet_s``: a backlogged link
        is still draining its queue when the sender finishes."""
        deadline = time.monotonic() + limit_s
        time.sleep(quiet_s)
        while time.monotonic() < deadline:
            last = self.got[-1][1] if self.got else 0
            if time.monotonic_ns() - last > quiet_s * 1e9:
                break
            time.sleep(0.05)
        self.stop = True
        self.thread.join()
        self.sock.close()


def blast(pair: Pair, port: int, n: int, size: int, pps: float) -> None:
    """Send ``n`` UDP datagrams of ``size`` payload bytes from A at ``pps``."""
    sock = pair.udp(pair.ns_a)
    pad = bytes(size - 4)
    t0 = time.monotonic()
    try:
        for i in range(n):
            if i % 8 == 0 and (wait := t0 + i / pps - time.monotonic()) > 0:
                time.sleep(wait)
            sock.sendto(i.to_bytes(4, "big") + pad, (ADDR_B, port))
    finally:
        sock.close()


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- tests ---------------------------------------------------------------------


def test_echo_rtt_is_the_two_delays(pair: Pair) -> None:
    handle = pair.start(DirectionConfig(LinkShape(delay_s=0.020)))
    rtts = sorted(ping_rtts_ms(pair, 40, 0.02))
    assert rtts[0] >= 40.0  # never early
    # ~0.2 ms measured when idle; the bound is loose because the echo's own
    # Python timestamps ride along (the link's precision is bench/userlink.py's)
    assert rtts[len(rtts) // 2] - 40.0 < 2.0
    assert rtts[int(len(rtts) * 0.9)] - 40.0 < 5.0
    handle.stop()  # flushes the logs
    log = read_packet_log(handle.log_paths()["a_to_b"])
    sent = log[log["reason"] == REASON_DELIVERED]
    assert len(sent) >= 40
    assert np.all(sent["due_ns"] - sent["arrival_ns"] == 20_000_000)  # the model: exactly 20 ms


def test_udp_flow_gets_the_configured_rate(pair: Pair) -> None:
    rate = 10_000_000
    handle = pair.start(DirectionConfig(LinkShape(rate_bps=rate, delay_s=0.005)))
    counter = Counter(pair, 9300)
    blast(pair, 9300, n=3200, size=1472, pps=1300)  # 15.6 Mbit/s offered for ~2.5 s
    counter.close()
    arrivals = np.array([t for _, t, _ in counter.got])
    sizes = np.array([b for _, _, b in counter.got])
    window = (arrivals >= arrivals[0] + 300_000_000) & (arrivals <= arrivals[-1])
    goodput = sizes[window][1:].sum() * 8 / ((arrivals[window][-1] - arrivals[window][0]) / 1e9)
    assert goodput == pytest.approx(rate * 1472 / 1514, rel=0.05)
    handle.stop()
    log = read_packet_log(handle.log_paths()["a_to_b"])
    out = np.sort(log[log["reason"] == REASON_DELIVERED], order="due_ns")
    busy = out[out["size"] == 1500]
    wire = (busy["size"][1:].astype(np.int64) + 14).sum() * 8
    model_rate = wire / ((busy["due_ns"][-1] - busy["due_ns"][0]) / 1e9)
    assert model_rate == pytest.approx(rate, rel=0.01)  # the backlogged model is exact
    assert (log["reason"] != REASON_DELIVERED).sum() > 0  # the 1000-packet queue overflowed


def test_one_percent_loss_is_measured_as_one_percent(pair: Pair) -> None:
    handle = pair.start(DirectionConfig(LinkShape(loss=0.01), seed=11))
    counter = Counter(pair, 9301)
    n = 10_000
    blast(pair, 9301, n=n, size=100, pps=8000)
    counter.close()
    received = {seq for seq, _, _ in counter.got}
    lost = n - len(received)
    sd = (n * 0.01 * 0.99) ** 0.5
    assert abs(lost - n * 0.01) < 4.5 * sd
    handle.stop()
    log = read_packet_log(handle.log_paths()["a_to_b"])
    udp = log[log["size"] == 128]  # 100 payload + 8 UDP + 20 IP
    assert (udp["reason"] == REASON_LOSS_IID).sum() == lost  # every loss was the link's


def test_mahimahi_trace_delivers_on_millisecond_opportunities(pair: Pair) -> None:
    cfg = DirectionConfig(LinkShape(delay_s=0.002), opportunities_ms=(1, 2, 3, 4))  # 12 Mbit/s
    handle = pair.start(cfg)
    counter = Counter(pair, 9302)
    blast(pair, 9302, n=2000, size=1472, pps=1500)
    counter.close()
    handle.stop()
    log = read_packet_log(handle.log_paths()["a_to_b"])
    out = log[(log["reason"] == REASON_DELIVERED) & (log["size"] == 1500)]
    since_start = out["due_ns"] - handle.start_ns - 2_000_000
    assert np.all(since_start % 1_000_000 == 0)  # every departure on an opportunity
    assert len(np.unique(since_start)) == len(out)  # one 1504-byte packet per opportunity
    assert len(counter.got) == len(out)


def test_live_change_applies_within_a_millisecond_without_flushing(pair: Pair) -> None:
    slow = LinkShape(rate_bps=1_000_000, queue=QueueLimit(packets=100))
    handle = pair.start(DirectionConfig(slow))
    counter = Counter(pair, 9303)
    blast(pair, 9303, n=50, size=1472, pps=5000)  # ~0.6 s of backlog at 1 Mbit/s
    time.sleep(0.1)
    handle.change("a_to_b", LinkShape(rate_bps=50_000_000, delay_s=0.010))
    counter.close()
    assert sorted(seq for seq, _, _ in counter.got) == list(range(50))  # nothing flushed
    handle.stop()
    changes = read_change_log(handle.log_paths()["a_to_b_changes"])
    assert len(changes) == 2
    assert changes[1]["rate_bps"] == 50_000_000 and changes[1]["delay_s"] == 0.010
    lag_ms = (changes[1]["applied_ns"] - changes[1]["scheduled_ns"]) / 1e6
    assert 0 <= lag_ms < 5.0  # typically ~0.1 ms; generous for a loaded CI machine


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs CAP_SYS_NICE")
def test_the_link_runs_on_the_ladders_top_rung(pair: Pair) -> None:
    """The link sits above the agent (labcore.priority), beside the replayers."""
    handle = pair.start(DirectionConfig(LinkShape(delay_s=0.001)))
    assert handle.priority == "fifo"
    assert os.sched_getscheduler(handle.pid) == os.SCHED_FIFO
    assert os.sched_getparam(handle.pid).sched_priority == SHAPING.fifo
    assert AGENT.fifo is not None and SHAPING.fifo is not None and AGENT.fifo < SHAPING.fifo


def test_sigterm_stops_the_process_and_leaves_nothing(pair: Pair) -> None:
    handle = pair.start(DirectionConfig(LinkShape(delay_s=0.5)))
    counter = Counter(pair, 9304)
    blast(pair, 9304, n=5, size=100, pps=1000)  # still in flight when stopped
    time.sleep(0.1)  # all five read by the link (they sit in its 0.5 s delay line)
    pid = handle.pid
    handle.stop()
    counter.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not handle.control_path.exists()
    log = read_packet_log(handle.log_paths()["a_to_b"])
    assert (log["size"] == 128).sum() == 5  # shutdown recorded the packets it held
    handle.stop()  # idempotent
    with pytest.raises(UserLinkError):
        handle.change("a_to_b", LinkShape())


def test_process_exits_by_itself_when_its_interfaces_vanish(pair: Pair) -> None:
    handle = pair.start(DirectionConfig(LinkShape()))
    subprocess.run(["ip", "netns", "del", pair.ns_a], check=True)
    assert wait_for(lambda: not handle.running(), 5.0)
    assert f"namespace {pair.ns_a} deleted" in handle.log_paths()["stderr"].read_text()


def test_interfaces_are_recorded_before_they_exist(tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    ns_a, ns_b = f"nlte-{tag}-a", f"nlte-{tag}-b"
    seen: list[tuple[str, str, str | None, bool]] = []

    def exists(ns: str, name: str) -> bool:
        out = subprocess.run(["ip", "-n", ns, "link", "show", name], capture_output=True)
        return out.returncode == 0

    def record(kind: str, name: str, ns: str | None) -> None:
        assert ns is not None
        seen.append((kind, name, ns, exists(ns, name)))

    try:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        create_link_interfaces("t", ns_a, f"nlte{tag}a", ns_b, f"nlte{tag}b", record=record)
        assert seen == [
            ("link", f"nlte{tag}a", ns_a, False),
            ("link", f"nlte{tag}b", ns_b, False),
        ]
        assert exists(ns_a, f"nlte{tag}a") and exists(ns_b, f"nlte{tag}b")
        # A clash on the second interface: the error says so and the first is removed again.
        with pytest.raises(UserLinkError, match="already exists"):
            create_link_interfaces("u", ns_a, f"nlte{tag}c", ns_b, f"nlte{tag}b", record=record)
        assert not exists(ns_a, f"nlte{tag}c")
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_start_without_interfaces_names_the_fix(tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    ns = f"nlte-{tag}-x"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        cfg = DirectionConfig(LinkShape())
        spec = UserLinkSpec("t", ns, "nltenone0", ns, "nltenone1", cfg, cfg, tmp_path)
        with pytest.raises(UserLinkError, match="does not exist") as info:
            start_link(spec)
        assert info.value.fix is not None and "create_link_interfaces" in info.value.fix
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
