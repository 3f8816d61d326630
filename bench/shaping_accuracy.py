"""Goodput of kernel TCP through the tc shapers, and the cost of a change.

Two namespaces joined by one veth; the sender's end is shaped; iperf3 runs a
bulk transfer with each congestion control at each rate, and the receiver's
goodput is divided by the configured rate.  The rate counts whole Ethernet
frames, so 1448/1514 = 0.956 is the ceiling for TCP with timestamps.

    sudo .venv/bin/python bench/shaping_accuracy.py [--seconds 4] [--rates 0.5,1,5]

The accuracy test (tests/shaping/test_tc_accuracy.py) uses the same harness.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labcore import netns as labcore_netns
from labcore.netlink import IPRoute
from shaping.spec import LinkShape
from shaping.tc import FRAME_BYTES, make_shaper

CEILING = 1448 / FRAME_BYTES
IPERF_PORT = 5201


@dataclass
class VethPair:
    """Two namespaces joined by a veth; ``sender_ipr`` is open in the sender's."""

    sender_ns: str
    receiver_ns: str
    sender_if: str
    receiver_ip: str
    sender_ipr: IPRoute


def _wait_gone(ifname: str, timeout_s: float = 3.0) -> None:
    """Namespace deletion frees veths asynchronously; wait so nothing looks leaked."""
    deadline = time.monotonic() + timeout_s
    with IPRoute() as ipr:
        while ipr.link_lookup(ifname=ifname) and time.monotonic() < deadline:
            time.sleep(0.05)


def _add_namespace(name: str) -> Path:
    """``ip netns add`` it and return the file it pinned (under /run or /var/run)."""
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    pinned = labcore_netns.find(name)
    if pinned is None:
        raise RuntimeError(f"ip netns add {name} left no pinned namespace file")
    return pinned


@contextlib.contextmanager
def veth_pair(prefix: str, subnet: int = 77) -> Iterator[VethPair]:
    """Create ``<prefix>-s``/``<prefix>-r`` namespaces and a veth between them."""
    sender_ns, receiver_ns = f"{prefix}-s", f"{prefix}-r"
    sender_if, receiver_if = f"{prefix}-vs", f"{prefix}-vr"
    # iproute2 makes the namespaces: pyroute2's forked netns.create once left
    # no pinned file behind on a CI machine, and the error only surfaced later.
    sender_path = _add_namespace(sender_ns)
    try:
        receiver_path = _add_namespace(receiver_ns)
        try:
            with IPRoute(netns=str(sender_path)) as ipr_s, \
                    IPRoute(netns=str(receiver_path)) as ipr_r:
                ipr_s.link("add", ifname=sender_if, kind="veth",
                           peer={"ifname": receiver_if, "net_ns_fd": str(receiver_path)})
                for ipr, name, host in ((ipr_s, sender_if, 1), (ipr_r, receiver_if, 2)):
                    idx = ipr.link_lookup(ifname=name)[0]
                    ipr.addr("add", index=idx, address=f"10.{subnet}.0.{host}", prefixlen=24)
                    ipr.link("set", index=idx, state="up")
                    ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
                yield VethPair(sender_ns, receiver_ns, sender_if, f"10.{subnet}.0.2", ipr_s)
        finally:
            subprocess.run(["ip", "netns", "del", receiver_ns], check=False)
    finally:
        subprocess.run(["ip", "netns", "del", sender_ns], check=False)
        _wait_gone(sender_if)


def _wait_listening(ns: str, port: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"],
                             capture_output=True, text=True, check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"iperf3 server in {ns} did not listen on port {port}")


def goodput_bps(pair: VethPair, cc: str, seconds: float, omit: float = 1.0) -> float:
    """iperf3 receiver goodput (bit/s) from sender to receiver, first ``omit`` s left out."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", pair.receiver_ns, "iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(pair.receiver_ns, IPERF_PORT)
        client = subprocess.run(
            ["ip", "netns", "exec", pair.sender_ns, "iperf3", "-c", pair.receiver_ip,
             "-p", str(IPERF_PORT), "-C", cc, "-t", f"{seconds:g}", "-O", f"{omit:g}", "-J"],
            capture_output=True, text=True, timeout=seconds + omit + 30, check=False,
        )
        report = json.loads(client.stdout)
        if "error" in report:
            raise RuntimeError(f"iperf3 ({cc}): {report['error']}")
        return float(report["end"]["sum_received"]["bits_per_second"])
    finally:
        server.kill()  # our own child, by its pid
        server.wait()


def measure(pair: VethPair, strategy: str, rate_bps: int, cc: str, seconds: float) -> float:
    """goodput / rate for one shaped transfer (tree removed afterwards)."""
    shaper = make_shaper(strategy, pair.sender_ipr, pair.sender_if, netem=False)  # type: ignore[arg-type]
    shaper.apply(LinkShape(rate_bps=rate_bps))
    try:
        return goodput_bps(pair, cc, seconds) / rate_bps
    finally:
        shaper.remove()


def change_latency_us(pair: VethPair, strategy: str, count: int = 2000) -> tuple[float, float]:
    """p50/p99 of shaper.change() alternating two rates (a queue is kept)."""
    shaper = make_shaper(strategy, pair.sender_ipr, pair.sender_if, netem=False)  # type: ignore[arg-type]
    shaper.apply(LinkShape(rate_bps=10_000_000))
    samples = []
    try:
        for i in range(count):
            shape = LinkShape(rate_bps=5_000_000 if i % 2 else 20_000_000)
            start = time.perf_counter()
            shaper.change(shape)
            samples.append((time.perf_counter() - start) * 1e6)
    finally:
        shaper.remove()
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


def pyroute2_change_latency_us(pair: VethPair, count: int = 500) -> tuple[float, float]:
    """The same htb class change through pyroute2's IPRoute.tc, for comparison."""
    ipr = pair.sender_ipr
    shaper = make_shaper("htb", ipr, pair.sender_if, netem=False)
    shaper.apply(LinkShape(rate_bps=10_000_000))
    idx = ipr.link_lookup(ifname=pair.sender_if)[0]
    samples = []
    try:
        for i in range(count):
            rate = (5_000_000 if i % 2 else 20_000_000) // 8
            start = time.perf_counter()
            ipr.tc("change-class", "htb", idx, 0x10010, parent=0x10000, rate=rate,
                   burst=3028, quantum=FRAME_BYTES)
            samples.append((time.perf_counter() - start) * 1e6)
    finally:
        shaper.remove()
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run")
    parser.add_argument("--rates", default="0.5,1,5,10,100,1000", help="Mbit/s, comma-separated")
    parser.add_argument("--ccs", default="reno,cubic,bbr")
    parser.add_argument("--strategies", default="htb,tbf")
    parser.add_argument("--prefix", default="nlta-bench", help="namespace/interface prefix")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("iperf3") is None:
        print("needs root and iperf3", file=sys.stderr)
        return 2
    rates = [round(float(r) * 1e6) for r in args.rates.split(",")]
    strategies = args.strategies.split(",")
    print(f"{socket.gethostname()}: kernel {os.uname().release}, ceiling {CEILING:.3f}, "
          f"{args.seconds:g} s per run (+1 s omitted)")
    print(f"{'cc':6} {'Mbit/s':>7} " + " ".join(f"{s:>6}" for s in strategies))
    with veth_pair(args.prefix) as pair:
        for cc in args.ccs.split(","):
            for rate in rates:
                ratios = [measure(pair, s, rate, cc, args.seconds) for s in strategies]
                print(f"{cc:6} {rate / 1e6:7g} " + " ".join(f"{r:6.3f}" for r in ratios),
                      flush=True)
        for strategy in strategies:
            p50, p99 = change_latency_us(pair, strategy)
            print(f"{strategy} change(): p50 {p50:.1f} us, p99 {p99:.1f} us")
        p50, p99 = pyroute2_change_latency_us(pair)
        print(f"pyroute2 IPRoute.tc('change-class'): p50 {p50:.1f} us, p99 {p99:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
