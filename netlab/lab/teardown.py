"""Removes exactly what a lab's journal says it made, newest first.

Processes are ended by pid (checked against their recorded start time so a
reused pid is never hit) and by membership of the lab's own namespaces;
namespaces and interfaces are removed only while their kernel identity
(inode, index) is the one journaled; nothing is ever matched by name alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

from labcore.netlink import IPRoute, NetlinkError
from netlab.lab import netns
from netlab.lab.state import LabState, Recorded
from netlab.paths import lab_dir

PROCESS_GRACE_S = 2.0


@dataclass
class TeardownReport:
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    gone: str | None = None  # why nothing was done: the instance was already taken down


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
    other namespaces (the machine's own, for example) are deleted one by one,
    and only while their index is the one journaled.
    """
    if obj.netns in own_namespaces or (obj.netns is not None and not netns.exists(obj.netns)):
        return
    if obj.ident is None:
        report.problems.append(f"link {obj.name}: left in place, its identity was never "
                               "journaled (the lab stopped while making it)")
        return
    try:
        ipr = netns.call_inside(obj.netns, IPRoute) if obj.netns else IPRoute()
    except OSError as exc:
        report.problems.append(f"link {obj.name}: {exc}")
        return
    try:
        found = ipr.link_lookup(ifname=obj.name)
        if found and found[0] == obj.ident:
            ipr.link("del", index=found[0])
            report.removed.append(f"link {obj.name}")
    except NetlinkError as exc:
        if exc.code != 19:  # ENODEV: the peer's deletion took it already
            report.problems.append(f"link {obj.name}: {exc}")
    finally:
        ipr.close()


def own_namespace_inodes(state: LabState) -> set[int]:
    """Inodes of the lab's namespaces that are still pinned as journaled."""
    inodes = set()
    for obj in state.objects:
        if obj.kind == "netns" and obj.ident is not None:
            try:
                if netns.inode_of(obj.name) == obj.ident:
                    inodes.add(obj.ident)
            except FileNotFoundError:
                continue
    return inodes


def _remove_namespace(obj: Recorded, report: TeardownReport) -> None:
    """Unpin a namespace only while it is the one journaled; one without a
    journaled identity was never pinned (the inode is journaled before)."""
    if netns.is_placeholder(obj.name):  # stopped between reserving the name and pinning
        netns.path_of(obj.name).unlink(missing_ok=True)
        report.removed.append(f"netns placeholder {obj.name}")
        return
    if obj.ident is None:
        if netns.exists(obj.name):
            report.problems.append(f"netns {obj.name}: left in place, it is not the one this "
                                   "lab made (no identity journaled)")
        return
    if netns.remove(obj.name, obj.ident):
        report.removed.append(f"netns {obj.name}")
    elif netns.exists(obj.name):
        report.problems.append(f"netns {obj.name}: left in place, it is not the one this lab "
                               f"made (inode {netns.inode_of(obj.name)}, journaled {obj.ident})")


TEARDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends, then deliver them.

    A second Ctrl-C during teardown would otherwise stop it half way.  The
    handlers are swapped rather than the thread's signal mask, because a
    signal the kernel hands to another thread still runs its Python handler
    in the main thread.  Off the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: held.append(signum))
                for sig in TEARDOWN_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)


def teardown(state: LabState) -> TeardownReport:
    """Undo a lab; safe to call twice and on a half-built lab; never
    interrupted half way by a signal (see ``signals_deferred``)."""
    with signals_deferred():
        return _teardown(state)


def _teardown(state: LabState) -> TeardownReport:
    report = TeardownReport()
    own_namespaces = [o.name for o in state.objects if o.kind == "netns"]
    recorded = [o for o in state.objects if o.kind == "process" and _matches_start(
        int(o.name), o.pid_start)]
    inside = netns.pids_inside(own_namespace_inodes(state))
    _stop_processes(sorted({int(o.name) for o in recorded} | set(inside)), report)
    for obj in reversed(state.objects):
        if obj.kind == "link":
            _delete_link(obj, set(own_namespaces), report)
        elif obj.kind == "netns":
            _remove_namespace(obj, report)
        elif obj.kind in ("file", "dir"):
            path = obj.name
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)
    shutil.rmtree(lab_dir(state.lab), ignore_errors=True)
    return report
