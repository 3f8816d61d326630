"""Trace replay timing and capacity tracking on the kernel (tc htb) backend.

Part 1, timing: a saturating TCP flow through an htb-shaped veth whose rate
alternates every 10 ms and every 100 ms.  netlab's replayer (absolute
deadlines, in-place ``change`` over netlink, own SCHED_FIFO process) side by
side with the naive replay of OpenNetLab's emulator script and many ad-hoc
scripts: delete the root qdisc, add one with the new rate (``tc``), sleep one
step.  Error of change k = time the change returned - (start + k x step).

Part 2, capacity: the Mahimahi TMobile-LTE-short and Verizon-LTE-short
traces (both directions at once, one saturating TCP flow each way, a
1000-packet queue so the link stays backlogged) replayed in 10 ms bins;
capacity MAPE per 500 ms backlogged bin from the qdisc's byte counter.

Part 3, agreement (``--agreement``): the kernel backend and the user-space
link, each under a UDP flood, binned at the receiver by 500 ms against the
trace: every Mahimahi trace of the corpus (first ``--agreement-seconds``),
synthetic outages of 0.1/0.5/1/3 s at 1/10/50 Mbit/s, and zero-opportunity
stretches shorter than a replay step.  Targets: each backlogged bin within
5 % of the trace on each backend, the two backends within 3 % over a run.
Each case also shows the htb check's prediction (``shaping.replay.representable``:
what the lab would move to the user-space link on its own).

Run as root:  .venv/bin/python bench/replay.py [--duration 60] [--json out.json]
              .venv/bin/python bench/replay.py --agreement [--agreement-seconds 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shaping.fidelity import kernel_direction
from shaping.replay import (
    build_schedule,
    constant_steps,
    read_replay_log,
    start_replayer,
)
from shaping.replay.representable import check_htb
from shaping.spec import LinkShape, QueueLimit
from shaping.traces import load_trace

PREFIX = "nltg-bench"
NS_A, NS_B = f"{PREFIX}-a", f"{PREFIX}-b"
IF_A, IF_B = "nltg-bva", "nltg-bvb"
ADDR_A, ADDR_B = "10.232.0.1", "10.232.0.2"
MAHIMAHI = Path(__file__).resolve().parents[1] / "tests" / "data" / "external" / "mahimahi"
STEP_RATES = [10_000_000, 20_000_000]
QUEUE = QueueLimit(packets=1000)


def sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


@contextmanager
def veth_pair() -> Iterator[None]:
    """Two namespaces joined by one veth pair; removed whatever happens."""
    try:
        sh(f"ip netns add {NS_A} && ip netns add {NS_B}")
        sh(f"ip link add {IF_A} netns {NS_A} type veth peer name {IF_B} netns {NS_B}")
        for ns, ifname, addr in ((NS_A, IF_A, ADDR_A), (NS_B, IF_B, ADDR_B)):
            sh(f"ip -n {ns} addr add {addr}/24 dev {ifname} && ip -n {ns} link set {ifname} up"
               f" && ip -n {ns} link set lo up")
        yield
    finally:
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)


@contextmanager
def tcp_flows(seconds: float, directions: tuple[str, ...]) -> Iterator[None]:
    """Saturating iperf3 TCP (cubic) flows: ``ab`` = A to B, ``ba`` = B to A."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for index, way in enumerate(directions):
            server_ns, client_ns, server_addr = (
                (NS_B, NS_A, ADDR_B) if way == "ab" else (NS_A, NS_B, ADDR_A))
            port = str(5301 + index)
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", port],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.3)
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", client_ns, "iperf3", "-c", server_addr, "-p", port,
                 "-t", str(int(seconds) + 1), "-C", "cubic"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def summary_ms(errors_ns: np.ndarray[Any, Any]) -> dict[str, float]:
    values = errors_ns.astype(np.float64) / 1e6
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
            "max": float(values.max()), "n": int(values.size)}


# -- part 1 -------------------------------------------------------------------


def netlab_timing(step_s: float, seconds: float, workdir: Path) -> dict[str, float]:
    schedule = constant_steps(STEP_RATES, step_s, LinkShape(queue=QUEUE))
    log_path = workdir / f"timing-{int(step_s * 1000)}ms.bin"
    handle = start_replayer(NS_A, IF_A, "htb", schedule, True, log_path,
                            start_ns=time.monotonic_ns() + 1_500_000_000, duration_s=seconds)
    try:
        with tcp_flows(seconds + 1.5, ("ab",)):
            handle.wait(seconds + 30)
    finally:
        handle.stop()
    changes = read_replay_log(log_path).changes
    out = summary_ms(changes["applied_ns"] - changes["scheduled_ns"])
    out["skipped"] = int((changes["called_ns"] < 0).sum())
    out["priority"] = handle.priority  # type: ignore[assignment]
    return out


NAIVE_CHILD = r"""
import subprocess, sys, time, json
step, seconds = float(sys.argv[1]), float(sys.argv[2])
dev, rates = sys.argv[3], json.loads(sys.argv[4])
subprocess.run(["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{rates[0]}bit",
                "burst", "20kb", "limit", "1500000"], check=True)
time.sleep(1.5)  # the flow starts
start = time.monotonic_ns()
k = 0
errors = []
while time.monotonic_ns() - start < seconds * 1e9:
    rate = rates[k % len(rates)]
    subprocess.run(["tc", "qdisc", "del", "dev", dev, "root"], check=True)
    subprocess.run(["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{rate}bit",
                    "burst", "20kb", "limit", "1500000"], check=True)
    errors.append(time.monotonic_ns() - (start + round(k * step * 1e9)))
    k += 1
    time.sleep(step)
subprocess.run(["tc", "qdisc", "del", "dev", dev, "root"], check=False)
print(json.dumps(errors))
"""


def naive_timing(step_s: float, seconds: float) -> dict[str, float]:
    """OpenNetLab-style replay, run inside the namespace like the replayer (no priority)."""
    with tcp_flows(seconds + 1.5, ("ab",)):
        result = subprocess.run(
            ["ip", "netns", "exec", NS_A, sys.executable, "-c", NAIVE_CHILD, str(step_s),
             str(seconds), IF_A, json.dumps(STEP_RATES)],
            capture_output=True, check=True, text=True)
    errors = np.asarray(json.loads(result.stdout.strip().splitlines()[-1]), dtype=np.int64)
    out = summary_ms(errors)
    out["changes_per_s"] = errors.size / seconds
    return out


# -- part 2 -------------------------------------------------------------------


def capacity(trace_name: str, seconds: float, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    start_ns = time.monotonic_ns() + 2_000_000_000
    handles = {}
    for way, ns, ifname in (("up", NS_A, IF_A), ("down", NS_B, IF_B)):
        trace = load_trace(str(MAHIMAHI / f"{trace_name}.{way}"))
        schedule = build_schedule(trace, LinkShape(queue=QUEUE))
        handles[way] = start_replayer(ns, ifname, "htb", schedule, True,
                                      workdir / f"{trace_name}.{way}.bin",
                                      start_ns=start_ns, duration_s=seconds)
    try:
        with tcp_flows(seconds + 2, ("ab", "ba")):
            for handle in handles.values():
                handle.wait(seconds + 30)
    finally:
        for handle in handles.values():
            handle.stop()
    for way, handle in handles.items():
        log = read_replay_log(handle.log_path)
        entry = kernel_direction(trace_name, way, log)
        results[way] = {
            "capacity_mape": entry.capacity_mape,
            "capacity_err_max": entry.capacity_err_max,
            "backlogged_bins": entry.capacity_bins,
            "bins": entry.capacity_bins_total,
            "timing_err_ms": entry.timing_err_ms,
            "changes": entry.changes,
            "skipped": entry.skipped_changes,
        }
    return results


def agreement_case(trace: Any, seconds: float, workdir: Path) -> dict[str, Any]:
    from tests.shaping.agreement_lab import run_kernel, run_user

    out: dict[str, Any] = {}
    totals = {}
    for backend, run in (("kernel", run_kernel), ("user", run_user)):
        delivery = run(trace, seconds, workdir)
        errors = delivery.errors()
        worst = float(errors[np.argmax(np.abs(errors))]) if errors.size else None
        out[backend] = {"mape": float(np.mean(np.abs(errors))) if errors.size else None,
                        "worst_bin": worst, "bins": int(errors.size),
                        "bins_over_5pct": int((np.abs(errors) > 0.05).sum())}
        totals[backend] = delivery.total_bits()
    out["kernel_vs_user"] = totals["kernel"] / totals["user"] - 1 if totals["user"] else None
    from tests.shaping.agreement_lab import LEAD_S, QUEUE

    check = check_htb(trace, LinkShape(queue=QUEUE), LEAD_S + seconds)
    out["htb_check"] = {"representable": check.representable, "reason": check.reason()}
    return out


def agreement(seconds: float, workdir: Path) -> dict[str, Any]:
    from tests.shaping.agreement_lab import LEAD_S, outage_trace

    cases: dict[str, Any] = {}
    corpus = sorted((Path(__file__).resolve().parents[1] / "traces").glob("**/*"))
    for path in corpus:
        if path.suffix in (".json", ".md", ".py") or not path.is_file():
            continue
        trace = load_trace(str(path))
        if trace.opportunities_ms is not None:
            cases[path.name] = (trace, seconds)
    for rate in (1.0, 10.0, 50.0):
        for gap in (0.1, 0.5, 1.0, 3.0):
            cases[f"outage {gap:g} s at {rate:g} Mbit/s"] = (outage_trace(rate, gap), 3.5 + gap)
        cases[f"sub-step gaps 5/20/40 ms at {rate:g} Mbit/s"] = (
            outage_trace(rate, 0.0, after_s=3.0, short_gaps_ms=(5, 20, 40)), 4.0)
    report: dict[str, Any] = {"lead_s": LEAD_S}
    for name, (trace, length) in cases.items():
        result = agreement_case(trace, length, workdir)
        report[name] = result
        k, u = result["kernel"], result["user"]
        print(f"{name:>40}: kernel MAPE {k['mape'] * 100:5.2f} % worst "
              f"{k['worst_bin'] * 100:+6.1f} % ({k['bins_over_5pct']}/{k['bins']} bins > 5 %) | "
              f"user MAPE {u['mape'] * 100:5.2f} % worst {u['worst_bin'] * 100:+6.1f} % | "
              f"kernel/user {result['kernel_vs_user'] * 100:+5.2f} % | htb check: "
              f"{'representable' if result['htb_check']['representable'] else 'NOT'}",
              flush=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timing-seconds", type=float, default=10.0,
                        help="length of each 10 ms timing run (the 100 ms runs are 3x longer)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of each Mahimahi trace to replay (140 = whole)")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--agreement", action="store_true",
                        help="only the kernel-vs-user agreement sweep (part 3)")
    parser.add_argument("--agreement-seconds", type=float, default=20.0,
                        help="seconds of each corpus trace in the agreement sweep")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep-logs", type=Path, help="write the replay logs here (kept)")
    args = parser.parse_args()
    report: dict[str, Any] = {"timing": {}, "capacity": {}}
    parser_keep = args.keep_logs
    if args.agreement:
        with tempfile.TemporaryDirectory(prefix="nltg-bench-") as tmp:
            report = {"agreement": agreement(args.agreement_seconds, Path(tmp))}
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
        return 0
    with tempfile.TemporaryDirectory(prefix="nltg-bench-") as tmp, veth_pair():
        workdir = parser_keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for step in (0.010, 0.100):
            label = f"{int(step * 1000)}ms"
            seconds = args.timing_seconds * (3 if step >= 0.1 else 1)  # >= 300 changes
            ours = netlab_timing(step, seconds, workdir)
            naive = naive_timing(step, seconds)
            report["timing"][label] = {"netlab": ours, "naive": naive}
            print(f"step {label:>5}: netlab p50/p99/max {ours['p50']:.3f}/{ours['p99']:.3f}/"
                  f"{ours['max']:.2f} ms ({ours['priority']}) | naive del+add+sleep "
                  f"p50/p99/max {naive['p50']:.1f}/{naive['p99']:.1f}/{naive['max']:.1f} ms",
                  flush=True)
        if not args.skip_capacity:
            for name in ("TMobile-LTE-short", "Verizon-LTE-short"):
                result = capacity(name, args.duration, workdir)
                report["capacity"][name] = result
                for way, figures in result.items():
                    mape = figures["capacity_mape"]
                    timing = figures["timing_err_ms"] or {}
                    print(f"{name} {way:>4}: capacity MAPE "
                          f"{'-' if mape is None else f'{mape * 100:.2f} %'} over "
                          f"{figures['backlogged_bins']}/{figures['bins']} backlogged 500 ms "
                          f"bins; timing p99 {timing.get('p99', float('nan')):.3f} ms, "
                          f"{figures['changes']} changes", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        sys.exit(main())
