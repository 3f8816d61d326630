"""A model of what htb delivers while backlogged, for choosing and checking replay schedules.

htb (net/sched/sch_htb.c, ``htb_accnt_tokens``) keeps a class's tokens in
nanoseconds: time accrues them up to ``buffer`` (the burst at the current
rate), and a frame leaving costs ``len / rate`` at the rate in force *when it
leaves*; the class waits while its tokens are negative.  A rate change keeps
the tokens (``htb_change_class`` resets only the rate tables and buffers).
That is all this model does: frames of one size, always queued.  It does
not model the qdisc watchdog's timer slack or the CPU.  Sans-IO: no clock.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from shaping.replay.schedule import Schedule
from shaping.tc.base import effective_rate
from shaping.tc.burst import burst_bytes


def backlogged_departures(schedule: Schedule, frame_bytes: int, seconds: float
                          ) -> npt.NDArray[np.float64]:
    """Departure times (s from the start) of back-to-back ``frame_bytes`` frames.

    The schedule loops (or holds its last shape) as the replayer would.
    """
    period = schedule.period_s
    laps = int(seconds // period) + 1 if schedule.loop else 1
    times = [c.t_s + k * period for k in range(laps) for c in schedule.changes]
    rates = [float(effective_rate(c.shape.rate_bps)) for c in schedule.changes] * laps
    buffers = [burst_bytes(int(rate)) * 8 / rate for rate in rates]  # token time at each rate
    times.append(math.inf)
    bits = frame_bytes * 8
    t = 0.0
    tokens = buffers[0]
    checkpoint = 0.0
    k = 0  # the change in force at t (t only grows, so this only moves forward)
    out: list[float] = []
    while t < seconds:
        while times[k + 1] <= t:
            k += 1
        rate = rates[k]
        available = min(tokens + (t - checkpoint), buffers[k])
        if available >= 0:
            out.append(t)
            tokens, checkpoint = available - bits / rate, t
            t += max(-tokens, 1e-7)
        else:
            t += max(-available, 1e-7)
    return np.asarray(out)
