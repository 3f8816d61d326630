"""The real-time priority ladder, and the one helper that climbs it.

Wake-up lateness of a replayer or a user-space link is the link's timing
error, so shaping sits on the top rung; the policy agent answers the
endpoints within a deadline, but must never delay the links whose fidelity
the run reports, so it sits one rung below; endpoints (the traffic being
measured) stay at normal priority, as any application would, except while a
flow waits for its agent's reply: that wait is part of the decision's round
trip, bounded by its deadline (1 ms by default), and a normal-priority
process woken by the reply can wait behind the host's other flows for longer
than that, so the wait alone climbs to the rung below the agent
(:class:`DecisionWait`).  When SCHED_FIFO is refused (no CAP_SYS_NICE, a
container without a real-time budget) each rung falls back to a nice value
in the same order; the decision wait then stays normal.

=========================  ==========  ====
rung                       SCHED_FIFO  nice
=========================  ==========  ====
replayers, user-space link 50          -15
agent (serving thread)     40          -10
a flow's decision wait     30          0
endpoints                  (normal)    0
=========================  ==========  ====
"""

from __future__ import annotations

import ctypes
import gc
import os
from dataclasses import dataclass

PR_SET_TIMERSLACK = 29  # linux/prctl.h
MCL_CURRENT, MCL_FUTURE = 1, 2  # sys/mman.h


@dataclass(frozen=True)
class Rung:
    """One step of the ladder: a SCHED_FIFO priority (None: never real-time) and
    the nice value used where real-time scheduling is refused."""

    name: str
    fifo: int | None
    nice: int


SHAPING = Rung("shaping", fifo=50, nice=-15)
AGENT = Rung("agent", fifo=40, nice=-10)
DECISION_WAIT = Rung("decision wait", fifo=30, nice=0)
ENDPOINT = Rung("endpoint", fifo=None, nice=0)
#: Highest first.
LADDER = (SHAPING, AGENT, DECISION_WAIT, ENDPOINT)


@dataclass(frozen=True)
class Priority:
    """What the thread obtained: ``fifo`` (SCHED_FIFO), ``nice`` or ``none``; plus extras."""

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
    """mlockall(MCL_CURRENT | MCL_FUTURE): no page faults on the timed path."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0)
    except OSError:
        return False


def raise_priority(want: str, rung: Rung, *, lock_memory: bool = False,
                   timer_slack_ns: int = 1) -> Priority:
    """Best effort, for the calling thread: ``rung``'s SCHED_FIFO, else its nice value.

    ``want`` is ``fifo``, ``nice`` or ``none`` (the process's command-line
    choice); refusals fall back silently and the result says what held.  The
    timer slack drops to ``timer_slack_ns`` whatever the policy.
    """
    policy = "none"
    if want == "fifo" and rung.fifo is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rung.fifo))
            policy = "fifo"
        except OSError:
            want = "nice"
    elif want == "fifo":
        want = "nice"
    if want == "nice" and rung.nice != 0:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, rung.nice)
            policy = "nice"
        except OSError:
            policy = "none"
    slack = _set_timer_slack(timer_slack_ns)
    locked = _lock_memory() if lock_memory else False
    return Priority(policy, slack, locked)


class DecisionWait:
    """Raises the calling thread to :data:`DECISION_WAIT` for one decision's round
    trip (``raise_`` before the observation goes out, ``lower`` once the reply is
    in or the deadline passed) and back to normal scheduling with its nice value.

    Two ``sched_setscheduler`` calls a decision (about 1 µs each); allowed to an
    unprivileged flow by an ``RLIMIT_RTPRIO`` of at least the rung's priority or by
    CAP_SYS_NICE (the lab grants one to processes that talk to an agent).  Where it is refused the
    first time, it is off for good: ``active`` says which held."""

    def __init__(self, enabled: bool = True) -> None:
        self.active = False
        self._param = os.sched_param(DECISION_WAIT.fifo or 0)
        self._normal = os.sched_param(0)
        # A thread that is not plainly scheduled (already real-time, or batch/idle
        # on purpose) keeps what it has.
        if not enabled or os.sched_getscheduler(0) != os.SCHED_OTHER:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, self._param)
        except OSError:
            return
        os.sched_setscheduler(0, os.SCHED_OTHER, self._normal)
        self.active = True

    def raise_(self) -> None:
        if self.active:
            os.sched_setscheduler(0, os.SCHED_FIFO, self._param)

    def lower(self) -> None:
        if self.active:
            os.sched_setscheduler(0, os.SCHED_OTHER, self._normal)


def freeze_start_up_heap() -> None:
    """Collect once, then leave every object alive now out of the cyclic collector.

    A full (generation-2) collection walks every tracked object: about 180 000 in
    the agent once torch and a checkpoint are loaded (tens of ms here), about 23 000
    in an RTC receiver (about 3 ms). Landing inside a decision, either is a miss.
    Frozen, the start-up objects are skipped, and such a collection walks only
    what was made since (``gc.freeze``, Python 3.7+). Call it once set-up is
    done, just before the timed loop.
    """
    gc.collect()
    gc.freeze()
