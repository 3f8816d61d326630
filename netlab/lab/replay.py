"""Starts the lab's trace replays together and stops them together.

Kernel backend: one replayer process per traced direction (its own process
and scheduling priority, so flows loading the CPU do not shift its
deadlines), all sharing one start instant on CLOCK_MONOTONIC so the traces
stay aligned with each other and with the flows.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from netlab.lab.plan import Interface, LabPlan
from netlab.lab.state import StateJournal
from shaping.replay import (
    ReplayerHandle,
    build_schedule,
    read_replay_log,
    sleep_until_ns,
    start_replayer,
)
from shaping.replay.log import ReplayLog
from shaping.replay.schedule import Change, Schedule
from shaping.traces import Trace, load_trace

# Every replayer must be ready before the shared start: a replayer process
# takes about half a second to start on an idle machine (interpreter,
# pyroute2, shaper install) and they start in parallel.  A start missed on a
# loaded machine is not hidden: its changes count as late in the fidelity.
START_MARGIN_S = 2.0


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
    start_ns: int = 0

    def stop(self) -> dict[tuple[str, str], ReplayLog]:
        """Stop every replayer and read back its log."""
        logs: dict[tuple[str, str], ReplayLog] = {}
        for replay in self.replays:
            replay.handle.stop()
            logs[(replay.link, replay.direction)] = read_replay_log(replay.log_path)
        self.replays.clear()
        return logs


def shaped_directions(plan: LabPlan) -> list[tuple[str, str, Interface]]:
    """Directions that replay a trace or hold a fixed rate: each gets a
    replayer, which for a fixed rate only samples the qdisc's counters, so
    capacity fidelity is measured the same way whatever the flows are."""
    out = []
    for name, (end_a, end_b) in plan.links.items():
        for direction, iface in (("up", end_a), ("down", end_b)):
            if iface.egress.trace is not None or iface.egress.shape.rate_bps is not None:
                out.append((name, direction, iface))
    return out


def direction_schedule(iface: Interface, base_dir: Path | None, duration_s: float) -> Schedule:
    if iface.egress.trace is None:
        return Schedule((Change(0.0, iface.egress.shape),), max(duration_s, 0.001), loop=False)
    return build_schedule(load_direction_trace(iface, base_dir), iface.egress.shape)


def load_direction_trace(iface: Interface, base_dir: Path | None) -> Trace:
    assert iface.egress.trace is not None
    return load_trace(iface.egress.trace, base_dir=base_dir)


def start_kernel_replays(plan: LabPlan, journal: StateJournal, *, netem: bool,
                         base_dir: Path | None, duration_s: float) -> TraceReplays:
    """A replayer per shaped direction, all starting at one shared instant.

    The processes start in parallel (each takes about half a second on an
    idle machine, several on a loaded one) so the shared start need not
    grow with the number of directions.
    """
    directions = shaped_directions(plan)
    replays = TraceReplays(start_ns=time.monotonic_ns() + int(START_MARGIN_S * 1e9))
    if not directions:
        return replays

    def launch(item: tuple[str, str, Interface]) -> DirectionReplay:
        link, direction, iface = item
        schedule = direction_schedule(iface, base_dir, duration_s)
        log_path = journal.path.parent / "replay" / f"{link}.{direction}.log"
        handle = start_replayer(plan.hosts[iface.host].namespace, iface.name, "htb",
                                schedule, iface.egress.trace_loop, log_path, netem=netem,
                                start_ns=replays.start_ns, duration_s=duration_s)
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
    sleep_until_ns(replays.start_ns)  # flows start with the traces
    return replays
