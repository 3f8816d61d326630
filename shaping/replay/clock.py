"""Sleeping until absolute deadlines on CLOCK_MONOTONIC.

A loop that sleeps a fixed step after each change drifts by every wake-up's
lateness plus the change's own cost (OpenNetLab's and many ad-hoc replay
scripts do this).  Here every deadline is computed from the replay's start,
so one late wake-up delays one change and none after it.  The sleep itself
(coarse, then a short spin: a plain ``sleep`` wakes 120-170 µs late at p50 on
this project's 2-vCPU reference machine, docs/design.md) is
:mod:`labcore.startgate`'s, which the senders waiting for the run's zero use
too.  The process settings that help (SCHED_FIFO, timer slack, mlockall) are
:mod:`labcore.priority`'s.
"""

from __future__ import annotations

from labcore.startgate import DEFAULT_SPIN_NS, sleep_until_ns

__all__ = ["DEFAULT_SPIN_NS", "sleep_until_ns"]
