"""Sleeping until absolute deadlines on CLOCK_MONOTONIC, and the process settings that help.

A loop that sleeps a fixed step after each change drifts by every wake-up's
lateness plus the change's own cost (OpenNetLab's and many ad-hoc replay
scripts do this).  Here every deadline is computed from the replay's start,
so one late wake-up delays one change and none after it.  A plain
``sleep(deadline - now)`` wakes 120-170 µs late at p50 on this project's
2-vCPU reference machine (DESIGN.md), so the last ``spin_ns`` are spent
polling the clock instead of sleeping.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass

#: Time before a deadline from which the clock is polled rather than slept on.
DEFAULT_SPIN_NS = 200_000

PR_SET_TIMERSLACK = 29


def sleep_until_ns(deadline_ns: int, spin_ns: int = DEFAULT_SPIN_NS) -> int:
    """Return at (or just after) ``deadline_ns``; returns the wake-up time.

    Sleeps coarsely until ``spin_ns`` before the deadline, then spins on the
    clock.  A deadline in the past returns at once.
    """
    clock = time.monotonic_ns
    now = clock()
    left = deadline_ns - now
    if left > spin_ns:
        time.sleep((left - spin_ns) / 1e9)
        now = clock()
    while now < deadline_ns:
        now = clock()
    return now


@dataclass(frozen=True)
class Priority:
    """What the process obtained: ``fifo`` (SCHED_FIFO), ``nice`` or ``none``; plus extras."""

    policy: str
    timer_slack_ns: int | None
    memory_locked: bool

    def describe(self) -> str:
        parts = [self.policy]
        if self.timer_slack_ns is not None:
            parts.append(f"slack={self.timer_slack_ns}ns")
        if self.memory_locked:
            parts.append("mlock")
        return ",".join(parts)


def _set_timer_slack(slack_ns: int) -> int | None:
    """Shrink the kernel's timer slack (default 50 µs) for this thread; None if refused."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0) != 0:
            return None
    except OSError:
        return None
    return slack_ns


def _lock_memory() -> bool:
    """mlockall(MCL_CURRENT | MCL_FUTURE): no page faults on the replay path."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.mlockall(1 | 2) == 0)
    except OSError:
        return False


def raise_priority(
    want: str = "fifo", *, fifo_priority: int = 50, nice: int = -15, lock_memory: bool = False
) -> Priority:
    """Best effort: SCHED_FIFO, else a lower nice value, else nothing.

    Real-time scheduling lets the replayer preempt the flows it shapes on a
    busy machine (the reason it runs in its own process).  ``want`` is
    ``fifo``, ``nice`` or ``none``; refusals (no CAP_SYS_NICE, containers
    without an RT budget) fall back silently and the result says what held.
    """
    policy = "none"
    if want == "fifo":
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
            policy = "fifo"
        except (PermissionError, OSError):
            want = "nice"
    if want == "nice":
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
            policy = "nice"
        except (PermissionError, OSError):
            policy = "none"
    slack = _set_timer_slack(1)
    locked = _lock_memory() if lock_memory else False
    return Priority(policy, slack, locked)
