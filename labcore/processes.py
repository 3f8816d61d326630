"""Waiting for processes to end, where an ended one may stay a zombie.

An exited process that is not our child stays a zombie until its parent reaps
it, and an orphan's new parent is init, which on some machines (netlab's
build VM among them) never reaps: ``psutil.wait_procs`` then waits out its
whole timeout for a process that ended long ago. Here a zombie has ended.
"""

from __future__ import annotations

import time

import psutil


def ended(proc: psutil.Process) -> bool:
    """Exited, replaced by another process of the same pid, or a zombie."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def wait_ended(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of ``procs`` still running after at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [proc for proc in procs if not ended(proc)]
        if not alive or time.monotonic() >= deadline:
            return alive
        procs = alive
        time.sleep(0.05)
