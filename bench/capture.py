"""What capturing a link costs, and how fast its analysis is.

Part 1, CPU: iperf3 UDP at 10 Mbit/s across a 20 Mbit/s, 20 ms user-space
link with capture on in both directions (two dumpcap processes, one per
link end, each seeing the flow once).  Cost = the capture processes' CPU
time (/proc/PID/schedstat, in ns) over the flow's duration, as a share of
one core (goal: at most 10 %).  The kernel's copy of each packet into the capture ring runs
in the sender's (or link process's) context and is not in this figure, so
the same run without capture is timed too, and the difference in the link
process's and iperf3's CPU time is printed beside it (noisy on a busy
machine).  The iperf3 numbers check the run was sane.

Part 2, analysis: synthetic pcapng files of one link direction (entry and
exit, N UDP packets each, 1 % lost) analysed by ``netlab.capture.analyse``;
seconds per million captured packets (entry and exit each count).  The pure-Python reader is timed
beside scapy's ``PcapNgReader`` on the same file.

Run as root:  .venv/bin/python bench/capture.py [--seconds 10] [--packets 200000] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netlab.capture import CaptureRequest, analyse, flow_metrics, start_capture
from netlab.capture.pcap import LINKTYPE_RAW, read_packets
from netlab.capture.recorder import CAPTURE_DIR, MANIFEST, cpu_seconds
from netlab.lab import lifecycle, netns
from netlab.scenario.model import Direction, Host, Link, Scenario
from shaping.spec import LinkShape


def _lab(rate_bps: int) -> lifecycle.Lab:
    shape = Direction(LinkShape(rate_bps=rate_bps, delay_s=0.020))
    return lifecycle.up(Scenario(name="bcap", duration_s=1.0, seed=1,
                                 hosts=(Host("alice", {}), Host("bob", {})),
                                 links=(Link("alice-bob", "alice", "bob", shape, shape),)),
                        backend="user")


def _wait_rusage(proc: subprocess.Popen[bytes]) -> float:
    """Wait for a child and return the CPU seconds it used (wait4's rusage)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def cpu_cost(seconds: int, rate: str, capture: bool) -> dict[str, Any]:
    """One iperf3 UDP run; CPU of the capture, the link process and iperf3."""
    lab = _lab(20_000_000)
    out = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    try:
        handle = start_capture(lab.plan, lab.backend, [CaptureRequest("alice-bob")],
                               out, lab.journal) if capture else None
        bob = lab.plan.hosts["bob"]
        alice = lab.plan.hosts["alice"]
        link = lab.shaping.user_links["alice-bob"].pid

        def run_in(host: Any, argv: list[str]) -> subprocess.Popen[bytes]:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    preexec_fn=lambda: netns.enter(host.namespace))

        server = run_in(bob, ["iperf3", "-s", "-1", "-J"])
        time.sleep(0.3)
        capture_before = handle.cpu_seconds() if handle else 0.0
        link_before = cpu_seconds(link)
        started = time.monotonic()
        client = run_in(alice, ["iperf3", "-c", str(bob.address), "-u", "-b", rate,
                                "-t", str(seconds)])
        assert client.stdout is not None and server.stdout is not None
        client.stdout.read()
        iperf_cpu = _wait_rusage(client)
        elapsed = time.monotonic() - started
        link_cpu = cpu_seconds(link) - link_before
        capture_cpu = (handle.cpu_seconds() - capture_before) if handle else 0.0
        server_out = server.stdout.read()
        iperf_cpu += _wait_rusage(server)
        result = {"capture": capture, "rate": rate, "seconds": round(elapsed, 2),
                  "capture_cpu_s": round(capture_cpu, 3),
                  "capture_core_share": round(capture_cpu / elapsed, 4),
                  "link_and_iperf3_cpu_s": round(link_cpu + iperf_cpu, 3),
                  "iperf3_bps": json.loads(server_out)["end"]["sum_received"]["bits_per_second"]}
        if handle:
            handle.stop()
            metrics = flow_metrics(analyse(out), str(alice.address))
            result.update(capture_processes=len(handle.running),
                          captured_bps=metrics["recv_rate_bps"],
                          delay_p50_ms=metrics["delay_p50_ms"], loss=metrics["loss"])
        return result
    finally:
        lab.down()
        shutil.rmtree(out, ignore_errors=True)


def _udp(ident: int) -> bytes:
    payload = struct.pack("!I", ident) + bytes(96)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 128, ident & 0xFFFF, 0x4000, 64, 17, 0,
                         bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2]))
    return header + struct.pack("!HHHH", 4000, 5000, 108, 0) + payload


def _pcapng(path: Path, packets: list[tuple[int, bytes]]) -> None:
    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    parts = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
             block(1, struct.pack("<HHI", LINKTYPE_RAW, 0, 128)
                   + struct.pack("<HHB3xHH", 9, 1, 9, 0, 0))]
    parts += [block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(d), len(d)) + d)
              for ts, d in packets]
    path.write_bytes(b"".join(parts))


def analysis_speed(count: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    try:
        directory = out / CAPTURE_DIR
        directory.mkdir()
        t0 = 1_796_000_000 * 10**9
        entries = [(t0 + i * 100_000, _udp(i)) for i in range(count)]
        _pcapng(directory / "l.a_00001_20260101000000.pcapng", entries)
        _pcapng(directory / "l.b_00001_20260101000000.pcapng",
                [(ts + 20_000_000, d) for i, (ts, d) in enumerate(entries) if i % 100 != 7])
        (directory / MANIFEST).write_text(json.dumps({
            "stopped_ns": t0 + count * 100_000 + 10**9,
            "destinations": {"l": {"up": ["10.9.0.2"], "down": []}},
            "points": [{"link": "l", "stem": "l.a", "serves": [["up", "entry"]]},
                       {"link": "l", "stem": "l.b", "serves": [["up", "exit"]]}]}))
        started = time.perf_counter()
        (row,) = analyse(out)
        took = time.perf_counter() - started
        assert row.lost == count // 100 and row.packets == count - row.lost
        entry = directory / "l.a_00001_20260101000000.pcapng"
        started = time.perf_counter()
        read = sum(1 for _ in read_packets(entry))
        ours = time.perf_counter() - started
        result: dict[str, Any] = {"packets_per_side": count, "analyse_s": round(took, 3),
                  "analyse_s_per_million": round(took / (2 * count) * 1e6, 2),
                  "read_s_per_million": round(ours / read * 1e6, 2)}
        try:
            from scapy.utils import PcapNgReader

            started = time.perf_counter()
            with PcapNgReader(str(entry)) as reader:
                n = sum(1 for _ in reader)
            result["scapy_read_s_per_million"] = round((time.perf_counter() - started) / n * 1e6,
                                                       2)
        except ImportError:
            result["scapy_read_s_per_million"] = None
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", default="10M")
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"cpu": cpu_cost(args.seconds, args.rate, capture=True),
               "cpu_without_capture": cpu_cost(args.seconds, args.rate, capture=False),
               "analysis": analysis_speed(args.packets)}
    cpu, bare = results["cpu"], results["cpu_without_capture"]
    delta = (cpu["link_and_iperf3_cpu_s"] - bare["link_and_iperf3_cpu_s"]) / cpu["seconds"]
    print(f"capture CPU at {cpu['rate']}bit/s: {100 * cpu['capture_core_share']:.1f} % of a "
          f"core ({cpu['capture_processes']} dumpcap, {cpu['capture_cpu_s']} s over "
          f"{cpu['seconds']} s); iperf3 {cpu['iperf3_bps'] / 1e6:.3f} Mbit/s, captured "
          f"{(cpu['captured_bps'] or 0) / 1e6:.3f} Mbit/s, delay p50 {cpu['delay_p50_ms']} ms")
    print(f"link process + iperf3 CPU with capture minus without (the kernel's copies "
          f"into the capture rings, and noise): {100 * delta:+.1f} % of a core")
    ana = results["analysis"]
    print(f"analysis: {ana['analyse_s_per_million']} s per million packets "
          f"(read alone {ana['read_s_per_million']} s/M; scapy read "
          f"{ana['scapy_read_s_per_million']} s/M)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
