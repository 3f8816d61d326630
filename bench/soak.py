"""Soak: a long `netlab run` of an RTC call (learned policy, served by an agent)
plus a TCP flow over user-space links replaying a cellular trace, watching
every lab process for leaks.

Run as root:  .venv/bin/python bench/soak.py [--duration 1h] [--interval 60]
Every ``--interval`` seconds it samples the RSS and open fds of every lab
process (the `netlab run` itself, user-space links, replayers, agents,
endpoints: the lab's journal and the run's process tree) and the size of the
run directory and the lab's log folder; at the end it prints per-process
slopes (MB/h, fds/h, least squares after ``--warmup``) and the folders'
growth against the configured log caps (``NETLAB_LOG_CAP_MB`` per log).
Issue 16 asks for RSS < 1 MB/h per process, constant fds, and growth that
stops at the caps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labcore.logcap import log_cap_bytes  # noqa: E402
from netlab import paths  # noqa: E402

SCENARIO = """\
name: {name}
duration: {duration}s
seed: 11
hosts: [alice, bob]
links:
  - endpoints: [alice, bob]
    up:   {{trace: {traces}/verizon-lte-short.up, trace_end: loop, delay: 20ms, queue: 100pkt}}
    down: {{trace: {traces}/verizon-lte-short.down, trace_end: loop, delay: 20ms}}
flows:
  - {{id: call, kind: rtc, from: alice, to: bob, estimator: policy}}
  - {{id: bulk, kind: tcp, from: alice, to: bob, cc: cubic}}
agents:
  bob: {{checkpoint: {models}/opennetlab-pretrained.pth, deadline: 1ms, fallback: gcc}}
"""


@dataclass
class Series:
    """One process's samples: (seconds since start, RSS MB, open fds)."""

    label: str
    points: list[tuple[float, float, int]] = field(default_factory=list)


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of value against time, per hour (0 with < 2 points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


def label_of(proc: psutil.Process) -> str:
    """The module a Python child runs (``-m MODULE``), else its name."""
    try:
        argv = proc.cmdline()
    except psutil.Error:
        return "?"
    if "-m" in argv and argv.index("-m") + 1 < len(argv):
        module = argv[argv.index("-m") + 1]
        return module.removeprefix("netlab.cli.main").strip(".") or "netlab run"
    return Path(argv[0]).name if argv else proc.name()


def lab_pids(lab: str, root: psutil.Process) -> set[int]:
    """The run's process tree and every process the lab's journal recorded."""
    pids = {root.pid}
    with contextlib.suppress(psutil.Error):
        pids |= {child.pid for child in root.children(recursive=True)}
    objects = paths.lab_dir(lab) / "objects.jsonl"
    try:
        for line in objects.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("kind") == "process":
                pids.add(int(entry["name"]))
    except (OSError, ValueError):
        pass
    return pids


def folder_bytes(*folders: Path) -> int:
    total = 0
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def count_logs(*folders: Path) -> int:
    return sum(1 for folder in folders if folder.is_dir() for p in folder.rglob("*")
               if p.suffix in (".bin", ".log") and p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds left out of the slopes (default: one interval)")
    parser.add_argument("--out", type=Path, default=None, help="where the run directory goes")
    parser.add_argument("--report", type=Path, default=None,
                        help="print the table from a finished soak's soak-samples.json "
                             "(with its --duration and --interval) and run nothing")
    args = parser.parse_args()
    warmup = args.interval if args.warmup is None else args.warmup
    if args.report is not None:
        return reprint(args.report, warmup, args.duration)
    lab = f"soak{os.getpid() % 100000}"
    work = Path(tempfile.mkdtemp(prefix="netlab-soak-"))
    out = args.out or work / "runs"
    scenario = work / "soak.yaml"
    scenario.write_text(SCENARIO.format(name=lab, duration=int(args.duration),
                                        traces=ROOT / "traces" / "cellular",
                                        models=ROOT / "models"))
    command = [sys.executable, "-m", "netlab.cli.main", "run", str(scenario), "--backend",
               "user", "--out", str(out), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"soak: {' '.join(command[1:])}  ({args.duration:.0f} s, every {args.interval:.0f} s)")
    run_log = work / "run.out"
    with open(run_log, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    root = psutil.Process(proc.pid)
    series: dict[int, Series] = {}
    sizes: list[tuple[float, float]] = []
    logs_dir = paths.lab_log_dir(lab)
    start = time.monotonic()
    next_sample = start
    while proc.poll() is None:
        now = time.monotonic()
        if now < next_sample:
            time.sleep(min(1.0, next_sample - now))
            continue
        next_sample += args.interval
        t = now - start
        for pid in lab_pids(lab, root):
            try:
                p = psutil.Process(pid)
                with p.oneshot():
                    rss_mb, fds = p.memory_info().rss / 1e6, p.num_fds()
            except psutil.Error:
                continue
            entry = series.setdefault(pid, Series(f"{label_of(p)}[{pid}]"))
            entry.points.append((t, rss_mb, fds))
        sizes.append((t, folder_bytes(out, logs_dir) / 1e6))
        print(f"  t={t:6.0f} s  processes={len(series)}  folders={sizes[-1][1]:.1f} MB",
              flush=True)
    code = proc.wait()
    print(f"netlab run exited {code} after {time.monotonic() - start:.0f} s")
    if code != 0:
        print(run_log.read_text()[-3000:])
    worst_rss = print_processes({e.label: e.points for e in series.values()}, warmup,
                                args.duration)
    samples = {s.label: s.points for s in series.values()}
    (out / "soak-samples.json").write_text(json.dumps({"rss_fds": samples, "folders_mb": sizes}))
    kept_sizes = [s for s in sizes if s[0] >= warmup] or sizes
    results = sorted(out.glob("*/results.json"))
    folders = [out, logs_dir] + [r.parent for r in results]
    logs = count_logs(*folders)
    cap_mb = log_cap_bytes() / 1e6
    growth = slope_per_hour(kept_sizes)
    final = sizes[-1][1] if sizes else 0.0
    print(f"\nrun directory + lab logs: {final:.1f} MB at the last sample, growing "
          f"{growth:.1f} MB/h; {logs} capped logs x {cap_mb:.0f} MB cap = "
          f"{logs * cap_mb:.0f} MB bound ({'within' if final <= logs * cap_mb else 'OVER'})")
    if results:
        data = json.loads(results[-1].read_text())
        problems = data.get("log_problems", [])
        print(f"results: {results[-1]}; log_problems: {len(problems)}")
        for problem in problems:
            print(f"  {problem['file']}: {problem['problem']}")
    print(f"worst RSS slope {worst_rss:.2f} MB/h (goal < 1 MB/h)")
    return code


def print_processes(samples: dict[str, list[tuple[float, float, int]]], warmup: float,
                    duration: float) -> float:
    """Per-process slopes over the flows' life (``warmup`` <= t <= ``duration``);
    returns the worst RSS slope.  Samples after it fall in the results phase,
    where ``netlab run`` reads the hour's logs back: a peak, reported apart, not
    a leak.  The second half's slope tells a leak (the same slope throughout)
    from a structure filling up to its bound early in the run (flat later)."""
    print(f"\n{'process':44} {'n':>3} {'RSS MB':>15} {'MB/h':>8} {'2nd half':>8} "
          f"{'fds':>9} {'fds/h':>7}")
    worst = 0.0
    after: list[str] = []
    for label, points in sorted(samples.items()):
        kept = [pt for pt in points if warmup <= pt[0] <= duration] or points
        first, last = kept[0], kept[-1]
        rss_slope = slope_per_hour([(t, r) for t, r, _ in kept])
        late = slope_per_hour([(t, r) for t, r, _ in kept[len(kept) // 2:]])
        fd_slope = slope_per_hour([(t, float(f)) for t, _, f in kept])
        worst = max(worst, rss_slope)
        print(f"{label:44} {len(kept):3d} {first[1]:7.1f}->{last[1]:6.1f} "
              f"{rss_slope:8.2f} {late:8.2f} {first[2]:4d}->{last[2]:<4d} {fd_slope:7.1f}")
        peak = max((r for t, r, _ in points if t > duration), default=last[1])
        if peak > last[1] + 1.0:
            after.append(f"  {label}: {last[1]:.1f} -> peak {peak:.1f} MB")
    if after:
        print("results phase (after the duration, computing results):")
        print("\n".join(after))
    return worst


def reprint(path: Path, warmup: float, duration: float) -> int:
    """``--report soak-samples.json``: the table again from a finished soak's samples."""
    samples = json.loads(path.read_text())["rss_fds"]
    worst = print_processes({k: [tuple(p) for p in v] for k, v in samples.items()}, warmup,
                            duration)
    print(f"worst RSS slope {worst:.2f} MB/h (goal < 1 MB/h)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
