"""The replay loop: apply each change at its absolute deadline, sample the link's counters.

Backend-neutral: it is given ``apply(shape)`` (a tc shaper's in-place
``change``, or a user-space link's control channel) and optionally
``sample() -> counters`` (``Shaper.stats()``), so the same loop is timed the
same way for every backend, and tests can drive it with real callables.

Deadline ``k`` of change ``i`` is ``start + k * period + t_i``; nothing is
computed from a previous wake-up, so timing errors do not accumulate
(see ``clock``).  When the loop wakes so late that later deadlines have
passed too (a stall), the superseded changes are logged but not sent, and
the newest due change is applied: sending stale rates would only delay the
right one further.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shaping.replay.clock import DEFAULT_SPIN_NS, sleep_until_ns
from shaping.replay.log import ReplayLogWriter
from shaping.replay.schedule import Schedule
from shaping.spec import LinkShape

Apply = Callable[[LinkShape], None]
Sample = Callable[[], dict[str, int]]

#: Counters are read this often (the fidelity report bins them by 500 ms).
DEFAULT_SAMPLE_INTERVAL_NS = 10_000_000

#: The loop wakes at least this often to notice ``should_stop``.
IDLE_TICK_NS = 50_000_000


@dataclass
class ReplayOutcome:
    """What one replay did (the log has the detail)."""

    applied: int = 0
    skipped: int = 0
    samples: int = 0
    reason: str = ""  # "finished" (one period, no loop), "until", "stopped"


def _never() -> bool:
    return False


def run_replay(
    schedule: Schedule,
    apply: Apply,
    log: ReplayLogWriter,
    *,
    start_ns: int,
    sample: Sample | None = None,
    sample_interval_ns: int = DEFAULT_SAMPLE_INTERVAL_NS,
    until_ns: int | None = None,
    should_stop: Callable[[], bool] = _never,
    spin_ns: int = DEFAULT_SPIN_NS,
) -> ReplayOutcome:
    """Replay ``schedule`` from ``start_ns`` (CLOCK_MONOTONIC) until done, ``until_ns`` or stop.

    The first change (t = 0) is applied at ``start_ns`` like every other;
    the caller installs the shaper beforehand (usually with the first shape).
    A non-looping schedule ends one period after the start, the last shape
    left in force.
    """
    clock = time.monotonic_ns
    outcome = ReplayOutcome()
    deadlines = schedule.deadlines_ns(start_ns)
    pending = next(deadlines, None)
    end_ns = until_ns
    if not schedule.loop:
        period_end = start_ns + round(schedule.period_s * 1e9)
        end_ns = period_end if end_ns is None else min(end_ns, period_end)
    # Counters are read half an interval off the change grid: a read costs
    # ~0.6 ms of Python, and it should not sit in front of a change deadline.
    next_sample = start_ns + sample_interval_ns // 2 if sample is not None else None
    while True:
        if should_stop():
            outcome.reason = "stopped"
            break
        wake = clock() + IDLE_TICK_NS
        if pending is not None:
            wake = min(wake, pending[0])
        if next_sample is not None:
            wake = min(wake, next_sample)
        if end_ns is not None and wake >= end_ns:
            wake = end_ns
        now = sleep_until_ns(wake, spin_ns)
        if end_ns is not None and now >= end_ns and (pending is None or pending[0] >= end_ns):
            outcome.reason = "until" if until_ns is not None and end_ns == until_ns else "finished"
            break
        if pending is not None and pending[0] <= now:
            superseded: list[tuple[int, int, LinkShape]] = []
            following = next(deadlines, None)
            while following is not None and following[0] <= now:
                superseded.append(pending)
                pending, following = following, next(deadlines, None)
            scheduled_ns, _, shape = pending
            called_ns = clock()
            apply(shape)
            applied_ns = clock()
            for old_ns, _, old_shape in superseded:
                log.change(old_ns, -1, applied_ns, old_shape)
            log.change(scheduled_ns, called_ns, applied_ns, shape)
            outcome.applied += 1
            outcome.skipped += len(superseded)
            pending = following
        if sample is not None and next_sample is not None and next_sample <= clock():
            before = clock()
            counters = sample()
            after = clock()
            log.sample((before + after) // 2, after - before, counters)
            outcome.samples += 1
            next_sample += sample_interval_ns
            if next_sample <= after:  # missed slots are skipped, not bunched up
                missed = (after - next_sample) // sample_interval_ns + 1
                next_sample += missed * sample_interval_ns
    log.flush()
    return outcome
