"""iperf3 floods a trace link of a detached lab: received rate per second vs the trace.

    sudo python bench/byo_trace_flood.py traces/steps/10-2-10mbit.json --backend kernel

Brings up (``netlab up -d``) a two-host lab whose a→b direction replays
TRACE and nothing else, runs ``iperf3 -s`` in b and an iperf3 UDP client
in a sending RATE (above the trace's peak) for SECONDS, and counts what
arrives at b's interface with a packet socket of its own (independent of
the lab's logs). Each second of arrivals (IP bytes + 14 per packet, the
frame size the trace's capacity counts, as tc does) is compared with the
trace's mean capacity over that second (``Trace.binned``), on the lab's clock (results.json
``clock.start_monotonic_ns``, the trace's time zero). Prints JSON with the
per-second series and the MAPE (the issue's goal: ≤ 5 %).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ETH_P_ALL = 0x0003
PACKET_HOST = 0
FRAME_OVERHEAD = 14


def netlab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netlab.cli.main", *args], env=env,
                          capture_output=True, text=True, check=False)


def sniff(namespace: str, ifname: str, stop: threading.Event,
          out: list[tuple[int, int]]) -> None:
    """(monotonic ns, IP bytes) of every packet arriving on ``ifname`` in ``namespace``."""
    from netlab.lab import netns

    sock = netns.call_inside(namespace, lambda: socket.socket(
        socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL)))
    sock.bind((ifname, 0))
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65536)
        except TimeoutError:
            continue
        if addr[2] == PACKET_HOST and len(data) >= 4 and data[0] >> 4 == 4:
            out.append((time.monotonic_ns(), int.from_bytes(data[2:4], "big")))
    sock.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("trace")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--seconds", type=int, default=25)
    parser.add_argument("--rate", default="0", help="iperf3 -b; default: 1.5x the trace's peak")
    parser.add_argument("--name", default="byoflood")
    args = parser.parse_args()
    from shaping.traces import load_trace

    trace = load_trace(args.trace)
    peak = max(trace.capacity_at(t / 10) for t in range(int(args.seconds * 10)))
    rate = args.rate if args.rate != "0" else str(int(peak * 1.5))
    work = Path(tempfile.mkdtemp(prefix="byo-flood-"))
    scenario = work / "flood.yaml"
    scenario.write_text(f"name: {args.name}\nduration: {args.seconds + 10}s\n"
                        f"hosts: [a, b]\nlinks:\n  - endpoints: [a, b]\n"
                        f"    up: {{trace: {Path(args.trace).resolve()}}}\n")
    env = dict(os.environ)
    up = netlab("up", "-d", str(scenario), "--backend", args.backend, "--out", str(work),
                env=env)
    if up.returncode:
        print(up.stderr, file=sys.stderr)
        return 1
    try:
        state = json.loads((Path(os.environ.get("NETLAB_RUN_ROOT", "/run/netlab"))
                            / args.name / "state.json").read_text())
        hosts = state["plan"]["hosts"]
        b_iface = hosts["b"]["interfaces"][0]
        b_addr = b_iface["address"].split("/")[0]
        arrivals: list[tuple[int, int]] = []
        stop = threading.Event()
        thread = threading.Thread(target=sniff, args=(hosts["b"]["namespace"], b_iface["name"],
                                                      stop, arrivals), daemon=True)
        thread.start()
        netlab("exec", args.name, "b", "--", "iperf3", "-s", "-1", "-D", "-p", "5399", env=env)
        time.sleep(0.5)
        client = netlab("exec", args.name, "a", "--", "iperf3", "-c", b_addr, "-p", "5399",
                        "-u", "-b", rate, "-l", "1200", "-t", str(args.seconds), env=env)
        stop.set()
        thread.join()
    finally:
        netlab("down", args.name, env=env)
    results = json.loads(next(work.glob(f"{args.name}-*/results.json")).read_text())
    start_ns = results["clock"]["start_monotonic_ns"]
    per_second: dict[int, int] = {}
    for at_ns, size in arrivals:
        second = (at_ns - start_ns) // 1_000_000_000
        per_second[second] = per_second.get(second, 0) + (size + FRAME_OVERHEAD) * 8
    per_second_trace = trace.binned(1.0)  # the mean capacity of each second
    seconds = sorted(per_second)[1:-1]  # the first and last seconds are partly idle
    rows = []
    for s in seconds:
        cap = per_second_trace.capacity_at(s + 0.5)
        rows.append({"t_s": s, "capacity_bps": cap, "recv_bps": per_second[s]})
    errors = [abs(r["recv_bps"] - r["capacity_bps"]) / r["capacity_bps"] for r in rows
              if r["capacity_bps"] > 0]
    print(json.dumps({"trace": args.trace, "backend": results["backend"],
                      "iperf3_rate": rate, "seconds": len(rows),
                      "mape": sum(errors) / len(errors) if errors else None,
                      "client_ok": client.returncode == 0, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
