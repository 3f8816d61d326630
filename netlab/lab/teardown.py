"""Removes exactly what a lab's journal says it made, newest first.

Processes are ended by pid (checked against their recorded start time so a
reused pid is never hit) and by membership of the lab's own namespaces;
nothing is ever matched by name pattern.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass, field

import psutil
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netlab.lab import netns
from netlab.lab.state import LabState, Recorded
from netlab.paths import lab_dir

PROCESS_GRACE_S = 2.0


@dataclass
class TeardownReport:
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _matches_start(pid: int, start: float | None) -> bool:
    if start is None:
        return True
    try:
        created: float = psutil.Process(pid).create_time()
        return abs(created - start) < 0.05
    except psutil.Error:
        return False


def _stop_processes(pids: list[int], report: TeardownReport) -> None:
    """SIGTERM, wait up to PROCESS_GRACE_S, then SIGKILL what is left."""
    me = os.getpid()
    alive = [p for p in pids if p != me and psutil.pid_exists(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + PROCESS_GRACE_S
    procs = []
    for pid in alive:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    _, still = psutil.wait_procs(procs, timeout=max(0.0, deadline - time.monotonic()))
    for proc in still:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(still, timeout=PROCESS_GRACE_S)
    report.removed.extend(f"process {pid}" for pid in alive)


def _delete_link(obj: Recorded, own_namespaces: set[str], report: TeardownReport) -> None:
    """Delete a link that would outlive the lab's namespaces.

    A link inside one of the lab's own namespaces goes with it (the kernel
    frees a namespace's devices when the namespace goes), so only links in
    other namespaces (the machine's own, for example) are deleted one by one.
    """
    if obj.netns in own_namespaces or (obj.netns is not None and not netns.exists(obj.netns)):
        return
    try:
        ipr = netns.call_inside(obj.netns, IPRoute) if obj.netns else IPRoute()
    except OSError as exc:
        report.problems.append(f"link {obj.name}: {exc}")
        return
    try:
        found = ipr.link_lookup(ifname=obj.name)
        if found:
            ipr.link("del", index=found[0])
            report.removed.append(f"link {obj.name}")
    except NetlinkError as exc:
        if exc.code != 19:  # ENODEV: the peer's deletion took it already
            report.problems.append(f"link {obj.name}: {exc}")
    finally:
        ipr.close()


def teardown(state: LabState) -> TeardownReport:
    """Undo a lab; safe to call twice and on a half-built lab."""
    report = TeardownReport()
    own_namespaces = [o.name for o in state.objects if o.kind == "netns"]
    recorded = [o for o in state.objects if o.kind == "process" and _matches_start(
        int(o.name), o.pid_start)]
    inside = netns.pids_inside(own_namespaces)
    _stop_processes(sorted({int(o.name) for o in recorded} | set(inside)), report)
    for obj in reversed(state.objects):
        if obj.kind == "link":
            _delete_link(obj, set(own_namespaces), report)
        elif obj.kind == "netns":
            if netns.remove(obj.name):
                report.removed.append(f"netns {obj.name}")
        elif obj.kind in ("file", "dir"):
            path = obj.name
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)
    shutil.rmtree(lab_dir(state.lab), ignore_errors=True)
    return report
