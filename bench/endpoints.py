"""RTC endpoints: GCC on a step trace beside aiortc's estimator; CPU cost; top rate.

Part 1, step trace (``traces/steps/1-3-1mbit``: 1 → 3 → 1 Mbit/s, 10 s each,
25 ms one-way each way, so 50 ms RTT; 100-packet drop-tail queue). The
same two-host lab and trace run twice with ``netlab up``:

* ``gcc``: sender-side GCC (``endpoints.rtc.gcc``) on transport-wide
  feedback, with libwebrtc's initial exponential probing, the periodic probe
  and the default congestion window (encoder frame drops while the bytes in
  flight exceed it);
* ``aiortc``: aiortc's receiver-side RemoteBitrateEstimator
  (``bench/aiortc_estimator.py``, loaded as an AlphaRTC plugin by the netlab
  receiver), whose REMB the same netlab sender follows (``--estimator remb``).

The capacity steps are taken from the user-space link's change log (when each
change really took effect, in the endpoints' CLOCK_MONOTONIC), read before
``netlab down``; with the kernel backend the sender's start stands in for the
trace start. Figures per step up (the call's start counts as one):

* t85 target: seconds from the step until the sender's target (for aiortc:
  the REMB it follows) first reaches 85 % of the new capacity;
* t85 goodput: seconds until the media receive rate (padding excluded) over
  a sliding 500 ms window first reaches 85 % of the new capacity;
  ``>10`` = not within the step; the best fraction reached is shown beside it;

and per step down: p50 / p95 one-way delay (exact: one clock) of packets that
arrived in the 10 s after it. Plus each phase's mean goodput / capacity.

Part 2, CPU: one flow with a fixed REMB of 2.5 Mbit/s over loopback for 20 s;
CPU time of the sender and receiver processes (getrusage of each child) per
wall second, in % of one core.

Part 3, top rate: fixed REMB at doubling rates over loopback (unshaped);
the highest rate whose receive rate stays ≥ 95 % of it with ≤ 1 % loss.

Run as root:  .venv/bin/python bench/endpoints.py [--json out.json] [--skip-cpu]
Needs aiortc in the virtualenv (``pip install aiortc``; bench only).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from endpoints.rtc import logs  # noqa: E402
from netlab.paths import lab_dir  # noqa: E402
from shaping.userlink.log import read_change_log  # noqa: E402

NETLAB = [sys.executable, "-m", "netlab.cli.main"]
TRACE = ROOT / "traces" / "steps" / "1-3-1mbit.json"
PLUGIN = ROOT / "bench" / "aiortc_estimator.py"
DURATION_S = 30
STEP_S = 10.0
SHARE = 0.85
GOODPUT_WINDOW_NS = 500_000_000
PADDING_PAYLOAD_TYPE = 97
LABS = {"gcc": ("nltl-gcc", "gcc"), "aiortc": ("nltl-aio", f"plugin:{PLUGIN}")}

SCENARIO = """\
name: {lab}
duration: {duration}s
seed: 1
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    up: {{trace: {trace}, queue: 100pkt}}
    down: {{delay: 25ms}}
flows:
  - {{kind: rtc, from: alice, to: bob, estimator: "{estimator}"}}
"""


# ---- part 1: step trace -------------------------------------------------------------------


@dataclass
class StepUp:
    at_s: float
    capacity_bps: float
    t85_target_s: float | None
    t85_goodput_s: float | None
    best_target_share: float
    best_goodput_share: float


@dataclass
class StepDown:
    at_s: float
    capacity_bps: float
    delay_p50_ms: float
    delay_p95_ms: float
    packets: int


@dataclass
class StepRun:
    name: str
    backend: str
    steps_from: str
    ups: list[StepUp] = field(default_factory=list)
    downs: list[StepDown] = field(default_factory=list)
    phase_utilisation: list[float] = field(default_factory=list)
    probe_clusters: int = 0
    run_dir: str = ""


def _netlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETLAB, *args], capture_output=True, text=True, cwd=ROOT, check=False)


def _capacity_changes(lab: str) -> list[tuple[int, float]]:
    """(applied_ns, rate) of the traced direction from the user-space link's change log."""
    found = sorted(lab_dir(lab).glob("links/*/*.a_to_b.changes"))
    if not found:
        return []
    records = read_change_log(found[0])
    changes: list[tuple[int, float]] = []
    for record in records:
        rate = float(record["rate_bps"])
        if not changes or rate != changes[-1][1]:
            changes.append((int(record["applied_ns"]), rate))
    return changes


def run_step_trace(name: str, out: Path) -> StepRun:
    lab, estimator = LABS[name]
    scenario = out / f"{lab}.yaml"
    scenario.write_text(SCENARIO.format(lab=lab, duration=DURATION_S, trace=TRACE,
                                        estimator=estimator))
    try:
        done = _netlab("up", "-q", "--out", str(out / "runs"), str(scenario))
        if done.returncode != 0:
            raise SystemExit(f"netlab up {scenario} failed:\n{done.stdout}\n{done.stderr}")
        changes = _capacity_changes(lab)
    finally:
        _netlab("down", lab)
    run_dir = max((out / "runs").glob(f"{lab}-*"), key=lambda p: p.stat().st_mtime)
    results = json.loads((run_dir / "results.json").read_text())
    flow_dir = run_dir / "flows" / results["flows"][0]["id"]
    return analyse(name, results["backend"], flow_dir, changes, run_dir)


def _read(directory: Path, kind: logs.LogKind) -> npt.NDArray[Any]:
    for candidate in (directory / kind.name.split("_")[0], directory):
        try:
            return logs.read_kind(candidate, kind)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{kind.name}.bin under {directory}")


def _meta(directory: Path, role: str) -> dict[str, Any]:
    for candidate in (directory / role / f"{role}_meta.json", directory / f"{role}_meta.json"):
        if candidate.exists():
            loaded: dict[str, Any] = json.loads(candidate.read_text())
            return loaded
    raise FileNotFoundError(f"{role}_meta.json under {directory}")


def analyse(name: str, backend: str, flow_dir: Path, changes: list[tuple[int, float]],
            run_dir: Path) -> StepRun:
    sender_meta = _meta(flow_dir, "sender")
    start_ns = int(sender_meta["start_ns"])
    steps_from = "user-space link change log"
    if not changes:  # kernel backend: the trace started with the flows
        steps_from = "sender start (no change log)"
        changes = [(start_ns + int(i * STEP_S * 1e9), rate)
                   for i, rate in enumerate((1e6, 3e6, 1e6))]
    rate_log = _read(flow_dir, logs.SENDER_RATE)
    received = _read(flow_dir, logs.RECEIVER_PACKETS)
    received = received[received["send_ns"] >= 0]
    media = received[received["payload_type"] != PADDING_PAYLOAD_TYPE]
    result = StepRun(name, backend, steps_from, run_dir=str(run_dir),
                     probe_clusters=int(sender_meta["counters"].get("probe_clusters", 0)))
    origin = changes[0][0]
    end_ns = origin + int(DURATION_S * 1e9)
    changes = [change for change in changes if change[0] < end_ns - 1_000_000]  # no loop
    bounds = [*changes, (end_ns, 0.0)]
    previous = 0.0
    for (at_ns, capacity), (phase_end_ns, _) in itertools.pairwise(bounds):
        begin_ns = max(at_ns, start_ns) if previous == 0.0 else at_ns
        if capacity > previous:
            result.ups.append(_step_up(begin_ns, phase_end_ns, capacity, origin, rate_log, media))
        else:
            result.downs.append(_step_down(at_ns, phase_end_ns, capacity, origin, received))
        in_phase = media[(media["arrival_ns"] >= begin_ns) & (media["arrival_ns"] < phase_end_ns)]
        span_s = (phase_end_ns - begin_ns) / 1e9
        result.phase_utilisation.append(
            float(in_phase["size"].sum()) * 8 / span_s / capacity if span_s > 0 else math.nan)
        previous = capacity
    return result


def _step_up(at_ns: int, end_ns: int, capacity: float, origin: int,
             rate_log: npt.NDArray[Any], media: npt.NDArray[Any]) -> StepUp:
    goal = SHARE * capacity
    in_step = rate_log[(rate_log["time_ns"] >= at_ns) & (rate_log["time_ns"] < end_ns)]
    targets = in_step["target_bps"]
    reached = np.nonzero(targets >= goal)[0]
    t_target = float((in_step["time_ns"][reached[0]] - at_ns) / 1e9) if reached.size else None
    # Goodput over a sliding 500 ms window ending every 50 ms.
    arrivals = media["arrival_ns"]
    cumulative = np.concatenate(([0], np.cumsum(media["size"].astype(np.int64))))
    t_goodput = None
    best = 0.0
    for window_end in range(at_ns + GOODPUT_WINDOW_NS, end_ns + 1, 50_000_000):
        lo = np.searchsorted(arrivals, window_end - GOODPUT_WINDOW_NS)
        hi = np.searchsorted(arrivals, window_end)
        rate = (cumulative[hi] - cumulative[lo]) * 8 / (GOODPUT_WINDOW_NS / 1e9)
        best = max(best, rate / capacity)
        if t_goodput is None and rate >= goal:
            t_goodput = (window_end - at_ns) / 1e9
    return StepUp(round((at_ns - origin) / 1e9, 2), capacity, t_target, t_goodput,
                  float(targets.max() / capacity) if targets.size else 0.0, best)


def _step_down(at_ns: int, end_ns: int, capacity: float, origin: int,
               received: npt.NDArray[Any]) -> StepDown:
    window = received[(received["arrival_ns"] >= at_ns) & (received["arrival_ns"] < end_ns)]
    delays = (window["arrival_ns"] - window["send_ns"]) / 1e6
    p50, p95 = (np.percentile(delays, [50, 95]) if delays.size else (math.nan, math.nan))
    return StepDown(round((at_ns - origin) / 1e9, 2), capacity, float(p50), float(p95),
                    int(delays.size))


# ---- parts 2 and 3: loopback flows ------------------------------------------------------


@dataclass
class LoopbackRun:
    asked_bps: float
    seconds: float
    recv_bps: float
    loss: float
    sender_cpu: float  # share of one core
    receiver_cpu: float


def _spawn(module: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _cpu_seconds(proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Wait for ``proc`` and return its user + system CPU seconds (wait4's rusage)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.05)


def loopback_flow(rate_bps: float, seconds: float, work: Path) -> LoopbackRun:
    """One sender→receiver flow over 127.0.0.1 whose target is a fixed REMB."""
    directory = work / f"loop-{int(rate_bps)}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    receiver = _spawn("endpoints.rtc.receiver_app", "--bind", "127.0.0.1:0",
                      "--duration", f"{seconds + 3:.1f}", "--estimator", f"fixed:{int(rate_bps)}",
                      "--log-dir", str(directory / "receiver"))
    meta_path = directory / "receiver" / "receiver_meta.json"
    deadline = time.monotonic() + 10
    port = 0
    while not port and time.monotonic() < deadline:
        if meta_path.exists():
            try:
                port = int(json.loads(meta_path.read_text())["bound_address"][1])
            except (ValueError, KeyError, IndexError, TypeError):
                port = 0
        time.sleep(0.05)
    if not port:
        receiver.kill()
        receiver.wait()
        raise SystemExit("the loopback receiver never wrote its port")
    started = time.monotonic()
    sender = _spawn("endpoints.rtc.sender_app", "--dest", f"127.0.0.1:{port}",
                    "--duration", f"{seconds:.1f}", "--estimator", "remb",
                    "--start-rate", str(int(rate_bps)), "--max-rate", "10Gbit",
                    "--log-dir", str(directory / "sender"))
    sender_cpu = _cpu_seconds(sender, seconds + 15)
    wall = time.monotonic() - started
    receiver.terminate()
    receiver_cpu = _cpu_seconds(receiver, 10)
    received = logs.read_kind(directory / "receiver", logs.RECEIVER_PACKETS)
    sent = logs.read_kind(directory / "sender", logs.SENDER_PACKETS)
    # Steady state: skip the first second (encoder ramp, first key frame).
    first = int(sent["send_ns"][0]) + 1_000_000_000
    last = int(sent["send_ns"][-1])
    steady = received[(received["arrival_ns"] >= first) & (received["arrival_ns"] < last)]
    span_s = max(1e-9, (last - first) / 1e9)
    recv_bps = float(steady["size"].sum()) * 8 / span_s
    loss = 1 - len(received) / max(1, len(sent))
    return LoopbackRun(rate_bps, seconds, recv_bps, loss, sender_cpu / wall,
                       receiver_cpu / wall)


def top_rate(work: Path, seconds: float) -> tuple[float | None, list[LoopbackRun]]:
    runs: list[LoopbackRun] = []
    best: float | None = None
    rate = 5e6
    while rate <= 640e6:
        run = loopback_flow(rate, seconds, work)
        runs.append(run)
        if run.recv_bps >= 0.95 * rate and run.loss <= 0.01:
            best = rate
            rate *= 2
        else:
            break
    return best, runs


# ---- report -----------------------------------------------------------------------------


def _t(value: float | None, best: float) -> str:
    return f"{value:5.2f} s" if value is not None else f"  >10 s (best {best:.0%})"


def print_steps(runs: list[StepRun]) -> None:
    print("\nPart 1: 1 -> 3 -> 1 Mbit/s, 10 s each, 50 ms RTT, 100-packet queue "
          f"(backend {runs[0].backend}; steps from {runs[0].steps_from})")
    header = f"{'':34}" + "".join(f"{run.name:>26}" for run in runs)
    print(header)
    for i, up in enumerate(runs[0].ups):
        label = f"up at {up.at_s:4.1f} s to {up.capacity_bps / 1e6:.0f} Mbit/s"
        print(f"{label + ': t85 target':34}" + "".join(
            f"{_t(r.ups[i].t85_target_s, r.ups[i].best_target_share):>26}" for r in runs))
        print(f"{'  t85 goodput (500 ms)':34}" + "".join(
            f"{_t(r.ups[i].t85_goodput_s, r.ups[i].best_goodput_share):>26}" for r in runs))
    for i, down in enumerate(runs[0].downs):
        label = f"down at {down.at_s:4.1f} s to {down.capacity_bps / 1e6:.0f} Mbit/s"
        print(f"{label + ': delay p50/p95':34}" + "".join(
            f"{r.downs[i].delay_p50_ms:>12.1f} / {r.downs[i].delay_p95_ms:6.1f} ms"
            for r in runs))
    print(f"{'goodput / capacity per phase':34}" + "".join(
        f"{' / '.join(f'{u:.2f}' for u in r.phase_utilisation):>26}" for r in runs))
    print(f"{'probe clusters sent':34}" + "".join(f"{r.probe_clusters:>26}" for r in runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    parser.add_argument("--skip-steps", action="store_true", help="skip part 1")
    parser.add_argument("--skip-cpu", action="store_true", help="skip parts 2 and 3")
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--top-seconds", type=float, default=6.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--only", choices=sorted(LABS), default=None,
                        help="part 1 with this estimator only")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/endpoints.py builds labs: run it as root", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="nltl-bench-"))
    figures: dict[str, Any] = {}
    try:
        if not args.skip_steps:
            steps = [run_step_trace(name, work) for name in LABS
                     if args.only in (None, name)]
            print_steps(steps)
            figures["steps"] = [asdict(run) for run in steps]
        if not args.skip_cpu:
            cpu = loopback_flow(2.5e6, args.cpu_seconds, work)
            print(f"\nPart 2: one 2.5 Mbit/s flow (fixed REMB, loopback, {cpu.seconds:.0f} s): "
                  f"received {cpu.recv_bps / 1e6:.2f} Mbit/s, loss {cpu.loss:.2%}; CPU sender "
                  f"{cpu.sender_cpu:.1%}, receiver {cpu.receiver_cpu:.1%} of one core")
            best, runs = top_rate(work, args.top_seconds)
            print(f"\nPart 3: top rate of one flow (fixed REMB, loopback, "
                  f"{args.top_seconds:.0f} s each)")
            for run in runs:
                print(f"  asked {run.asked_bps / 1e6:6.0f} Mbit/s: received "
                      f"{run.recv_bps / 1e6:7.2f} Mbit/s, loss {run.loss:6.2%}, CPU sender "
                      f"{run.sender_cpu:5.1%}, receiver {run.receiver_cpu:5.1%}")
            print(f"  highest sustained (>= 95 % delivered, <= 1 % loss): "
                  f"{'none' if best is None else f'{best / 1e6:.0f} Mbit/s'}")
            figures["cpu_2_5mbit"] = asdict(cpu)
            figures["top_rate_bps"] = best
            figures["top_rate_runs"] = [asdict(run) for run in runs]
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
