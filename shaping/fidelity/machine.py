"""Was the machine itself the cause?  CPU and scheduler evidence over a run, from /proc.

A link that misses its trace because its process waited on a busy CPU is
not a flaw of the link model, and the report must say which one it was.
Two snapshots (run start, run end) of what the kernel counts:

* ``/proc/stat``: busy and steal time of all CPUs (``proc(5)``);
* per link or replayer process: ``/proc/PID/schedstat`` (time on the CPU,
  time runnable but waiting on a run queue; ``Documentation/scheduler/
  sched-stats.rst``) and the voluntary/nonvoluntary context switches of
  ``/proc/PID/status`` (nonvoluntary = preempted);
* CPU migrations of each such process (``se.nr_migrations`` in
  ``/proc/PID/sched``, where the kernel has ``CONFIG_SCHED_DEBUG``): the
  processes are not pinned, so how often the scheduler moved them is recorded
  for the repeatability figures (not a cause by itself);
* CFS bandwidth throttling of the process's cgroup (``cpu.stat``
  ``nr_throttled``/``throttled_time``, v1, or ``throttled_usec``, v2);
* real-time throttling: the budget ``/proc/sys/kernel/sched_rt_{runtime,period}_us``
  and, where debugfs exposes it, ``rt_throttled`` per CPU.

Nothing is inferred that was not counted: a counter the kernel does not
expose is ``None`` and the report says it was not measured.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: A run whose CPUs were at least this busy (all CPUs together) was saturated.
CPU_BUSY_LIMIT = 0.90
#: A process that waited on a run queue this share of the run was starved.
RUNQUEUE_WAIT_LIMIT = 0.05
#: Stolen time (a hypervisor ran someone else) above this share is named.
STEAL_LIMIT = 0.05

_PROC = Path("/proc")
_RT_DEBUG = Path("/sys/kernel/debug/sched/debug")


@dataclass(frozen=True)
class ProcessCounters:
    pid: int
    role: str  # "link a-b", "replayer a-b up", ...
    run_ns: int
    wait_ns: int
    voluntary: int
    nonvoluntary: int
    throttled_ns: int | None
    migrations: int | None = None


@dataclass(frozen=True)
class MachineSnapshot:
    t_ns: int
    cpu_total: int  # jiffies, all CPUs
    cpu_idle: int  # idle + iowait
    cpu_steal: int
    rt_throttled: int | None
    processes: tuple[ProcessCounters, ...]


@dataclass
class ProcessLoad:
    pid: int
    role: str
    run_s: float
    runqueue_wait_s: float
    runqueue_wait_share: float
    nonvoluntary_switches: int
    voluntary_switches: int
    throttled_s: float | None
    cpu_migrations: int | None = None


@dataclass
class MachineLoad:
    """What the machine did over a run; ``causes`` in plain words (empty: none measured)."""

    wall_s: float
    cpus: int
    cpu_busy: float
    cpu_steal: float
    rt_runtime_share: float | None
    rt_throttled: int | None
    processes: list[ProcessLoad] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _cpu_line(text: str) -> tuple[int, int, int]:
    fields = [int(v) for v in text.splitlines()[0].split()[1:]]
    fields += [0] * (8 - len(fields))
    idle = fields[3] + fields[4]
    return sum(fields[:8]), idle, fields[7]


def _cgroup_throttled_ns(pid: int) -> int | None:
    text = _read(_PROC / str(pid) / "cgroup")
    if text is None:
        return None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",")
        if controllers == "":
            stat = Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.stat"
        elif "cpu" in names:
            stat = Path("/sys/fs/cgroup") / controllers / path.lstrip("/") / "cpu.stat"
            if not stat.exists():
                stat = Path("/sys/fs/cgroup/cpu") / path.lstrip("/") / "cpu.stat"
        else:
            continue
        values = _read(stat)
        if values is None:
            continue
        counts = dict(line.split() for line in values.splitlines() if len(line.split()) == 2)
        if "throttled_time" in counts:  # v1, ns
            return int(counts["throttled_time"])
        if "throttled_usec" in counts:  # v2
            return int(counts["throttled_usec"]) * 1000
    return None


def _process(pid: int, role: str) -> ProcessCounters | None:
    sched = _read(_PROC / str(pid) / "schedstat")
    status = _read(_PROC / str(pid) / "status")
    if sched is None or status is None:
        return None
    run_ns, wait_ns = (int(v) for v in sched.split()[:2])
    switches = {k: int(v) for k, _, v in (line.partition(":") for line in status.splitlines())
                if k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")}
    return ProcessCounters(pid, role, run_ns, wait_ns, switches.get("voluntary_ctxt_switches", 0),
                           switches.get("nonvoluntary_ctxt_switches", 0),
                           _cgroup_throttled_ns(pid), _migrations(pid))


def _migrations(pid: int) -> int | None:
    text = _read(_PROC / str(pid) / "sched")
    if text is None:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "se.nr_migrations":
            return int(value.strip())
    return None


def _rt_throttled() -> int | None:
    text = _read(_RT_DEBUG)
    if text is None:
        return None
    return sum(int(line.split(":")[1]) for line in text.splitlines()
               if line.strip().startswith(".rt_throttled"))


def snapshot(processes: dict[int, str]) -> MachineSnapshot:
    """Counters now, for ``processes`` (pid -> role); vanished processes are left out."""
    total, idle, steal = _cpu_line(_read(_PROC / "stat") or "cpu 0")
    found = tuple(p for p in (_process(pid, role) for pid, role in processes.items()) if p)
    return MachineSnapshot(time.monotonic_ns(), total, idle, steal, _rt_throttled(), found)


def _rt_share() -> float | None:
    runtime = _read(_PROC / "sys/kernel/sched_rt_runtime_us")
    period = _read(_PROC / "sys/kernel/sched_rt_period_us")
    if runtime is None or period is None or int(period) <= 0:
        return None
    return -1.0 if int(runtime) < 0 else int(runtime) / int(period)


def machine_load(before: MachineSnapshot, after: MachineSnapshot, *,
                 cpus: int | None = None) -> MachineLoad:
    """The difference of two snapshots, judged against the limits above."""
    wall_s = max((after.t_ns - before.t_ns) / 1e9, 1e-9)
    total = max(after.cpu_total - before.cpu_total, 1)
    load = MachineLoad(
        wall_s=round(wall_s, 3), cpus=cpus or os.cpu_count() or 1,
        cpu_busy=round(1 - (after.cpu_idle - before.cpu_idle) / total, 4),
        cpu_steal=round((after.cpu_steal - before.cpu_steal) / total, 4),
        rt_runtime_share=_rt_share(),
        rt_throttled=(None if before.rt_throttled is None or after.rt_throttled is None
                      else after.rt_throttled - before.rt_throttled))
    start = {p.pid: p for p in before.processes}
    for end in after.processes:
        begin = start.get(end.pid)
        if begin is None:
            continue
        wait_s = (end.wait_ns - begin.wait_ns) / 1e9
        throttled = (None if end.throttled_ns is None or begin.throttled_ns is None
                     else (end.throttled_ns - begin.throttled_ns) / 1e9)
        migrations = (None if end.migrations is None or begin.migrations is None
                      else end.migrations - begin.migrations)
        load.processes.append(ProcessLoad(
            end.pid, end.role, round((end.run_ns - begin.run_ns) / 1e9, 4), round(wait_s, 4),
            round(wait_s / wall_s, 4), end.nonvoluntary - begin.nonvoluntary,
            end.voluntary - begin.voluntary, throttled, migrations))
    load.causes, load.not_measured = judge_machine(load)
    return load


def judge_machine(load: MachineLoad) -> tuple[list[str], list[str]]:
    """``(causes, not measured)`` in plain words."""
    causes: list[str] = []
    unknown: list[str] = []
    if load.cpu_busy >= CPU_BUSY_LIMIT:
        causes.append(f"the CPUs were {load.cpu_busy * 100:.0f} % busy over the run "
                      f"({load.cpus} CPUs; saturated from {CPU_BUSY_LIMIT * 100:.0f} %)")
    if load.cpu_steal >= STEAL_LIMIT:
        causes.append(f"the hypervisor took {load.cpu_steal * 100:.0f} % of the CPU time "
                      "(steal)")
    for p in load.processes:
        if p.runqueue_wait_share >= RUNQUEUE_WAIT_LIMIT:
            causes.append(
                f"{p.role} (pid {p.pid}) waited {p.runqueue_wait_s * 1000:.0f} ms for a CPU "
                f"({p.runqueue_wait_share * 100:.1f} % of the run) and was preempted "
                f"{p.nonvoluntary_switches} times")
        if p.throttled_s:
            causes.append(f"{p.role} (pid {p.pid})'s cgroup was CPU-throttled for "
                          f"{p.throttled_s * 1000:.0f} ms")
    if load.rt_throttled:
        causes.append(f"the kernel throttled real-time tasks {load.rt_throttled} times "
                      "(sched_rt_runtime_us)")
    if load.rt_throttled is None:
        unknown.append("real-time throttling events (the kernel exposes no counter here: "
                       "no debugfs sched/debug)")
    return causes, unknown
