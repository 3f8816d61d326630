"""Starts the lab's trace replays together and stops them together.

Kernel backend: one replayer process per traced direction (its own process
and scheduling priority, so flows loading the CPU do not shift its
deadlines).  They start gated: each installs its shaper and waits, and the
run hands all of them (with the user-space links and the flows) its one time
zero once every part is ready (``TraceReplays.start_at``), so the traces stay
aligned with each other and with the flows however long a part took to start.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from netlab.lab.plan import Interface, LabPlan
from netlab.lab.shaping import lab_logs
from netlab.lab.state import StateJournal
from shaping.replay import (
    ReplayerHandle,
    build_schedule,
    read_replay_log,
    start_replayer,
)
from shaping.replay.log import ReplayLog
from shaping.replay.schedule import Change, Schedule
from shaping.traces import Trace, load_trace


@dataclass
class DirectionReplay:
    link: str
    direction: str  # "up" (a->b) or "down" (b->a)
    interface: Interface
    handle: ReplayerHandle
    log_path: Path


@dataclass
class TraceReplays:
    replays: list[DirectionReplay] = field(default_factory=list)
    start_ns: int = 0  # the trace's zero, once given (start_at)

    def start_at(self, start_ns: int) -> None:
        """Every replayer's trace starts at ``start_ns`` (CLOCK_MONOTONIC)."""
        for replay in self.replays:
            replay.handle.start_at(start_ns)
        self.start_ns = start_ns

    def stop(self) -> dict[tuple[str, str], ReplayLog]:
        """Stop every replayer and read back its log (a log removed with its
        lab by ``netlab down`` is left out: that direction was not measured)."""
        logs: dict[tuple[str, str], ReplayLog] = {}
        for replay in self.replays:
            replay.handle.stop()
            try:
                logs[(replay.link, replay.direction)] = read_replay_log(replay.log_path)
            except FileNotFoundError:
                continue
        self.replays.clear()
        return logs


def link_processes(replays: TraceReplays, user_links: dict[str, Any]) -> dict[int, str]:
    """The processes that move or shape packets (pid -> role), whose scheduling the
    fidelity report measures (``shaping.fidelity.machine``)."""
    found = {r.handle.pid: f"replayer {r.link} ({r.direction})" for r in replays.replays}
    for name, handle in user_links.items():
        found[int(handle.pid)] = f"link {name}"
    return found


def shaped_directions(plan: LabPlan, links: list[str] | None = None
                      ) -> list[tuple[str, str, Interface]]:
    """Directions (of ``links``, default all) that replay a trace or hold a fixed
    rate: each gets a replayer, which for a fixed rate only samples the qdisc's
    counters, so capacity fidelity is measured the same way whatever the flows are."""
    out = []
    for name, (end_a, end_b) in plan.links.items():
        if links is not None and name not in links:
            continue
        for direction, iface in (("up", end_a), ("down", end_b)):
            if iface.egress.trace is not None or iface.egress.shape.rate_bps is not None:
                out.append((name, direction, iface))
    return out


def direction_schedule(iface: Interface, base_dir: Path | None, duration_s: float,
                       repeat: bool = False) -> Schedule:
    """A fixed rate holds for ``duration_s`` (again and again with ``repeat``,
    so its counters are sampled for as long as the lab is up)."""
    if iface.egress.trace is None:
        return Schedule((Change(0.0, iface.egress.shape),), max(duration_s, 0.001), loop=repeat)
    return build_schedule(load_direction_trace(iface, base_dir), iface.egress.shape)


def load_direction_trace(iface: Interface, base_dir: Path | None) -> Trace:
    assert iface.egress.trace is not None
    return load_trace(iface.egress.trace, base_dir=base_dir)


def start_kernel_replays(plan: LabPlan, journal: StateJournal, *, netem: bool,
                         base_dir: Path | None, duration_s: float,
                         until_down: bool = False,
                         links: list[str] | None = None) -> TraceReplays:
    """A replayer per shaped direction, each ready and waiting for its start
    (``TraceReplays.start_at``: the run's time zero).

    With ``until_down`` they run until stopped (``netlab down``), not for
    ``duration_s``: a lab that stays up keeps following its traces.  ``links``:
    the links tc shapes (a lab's others are user-space links).

    The processes start in parallel (each takes about half a second on an
    idle machine, several on a loaded one) so the wait for them need not
    grow with the number of directions.
    """
    directions = shaped_directions(plan, links)
    replays = TraceReplays()
    if not directions:
        return replays

    logs = lab_logs(journal)

    def launch(item: tuple[str, str, Interface]) -> DirectionReplay:
        link, direction, iface = item
        schedule = direction_schedule(iface, base_dir, duration_s, repeat=until_down)
        log_path = logs / "replay" / f"{link}.{direction}.log"
        handle = start_replayer(plan.hosts[iface.host].namespace, iface.name, "htb",
                                schedule, iface.egress.trace_loop, log_path, netem=netem,
                                gated=True, duration_s=None if until_down else duration_s)
        journal.record("process", str(handle.pid),
                       pid_start=psutil.Process(handle.pid).create_time())
        return DirectionReplay(link, direction, iface, handle, log_path)

    with ThreadPoolExecutor(max_workers=min(8, len(directions))) as pool:
        futures = [pool.submit(launch, item) for item in directions]
        failure: BaseException | None = None
        for future in futures:
            try:
                replays.replays.append(future.result())
            except BaseException as exc:  # keep the others so they are stopped too
                failure = failure or exc
    if failure is not None:
        replays.stop()
        raise failure
    return replays

