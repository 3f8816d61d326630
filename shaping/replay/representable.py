"""Can htb replay this trace faithfully?  Decided before a lab is built, by the model.

The kernel backend replays a trace as rate steps (:mod:`shaping.replay.schedule`),
and htb's token accounting (:mod:`shaping.replay.htbmodel`) decides what a
backlogged link then delivers.  This runs that model over the run (full
frames, an idle machine: the best htb can do) and holds it to the trace's
own delivery, as Mahimahi would make it, on two scales:

* capacity, in the fidelity report's 500 ms bins: every bin after the first
  (the run's flows are only starting then, and the model's full initial
  bucket would show on no real link) within ``BIN_LIMIT`` of the trace (the
  agreement target of issue #13: 5 %), with ``SLACK_FRAMES`` of slack for
  frame granularity at low rates;
* gaps (Mahimahi: nothing is delivered during a gap, delivery resumes at its
  first opportunity after it): in every zero-capacity stretch of at least
  ``GAP_MIN_S``, at most ``GAP_LEAK_FRAMES`` frames leave once one replay step
  has passed (the step before a gap may carry its own bits into it; the
  outage ramp lets one frame out in its last 10 ms by design).

A direction that fails either is better served by the user-space link, which
spends the trace's opportunities one by one (the lab chooses it, says so and
records why); one that passes is recorded as representable with the figures.
Sans-IO and deterministic: the model has no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shaping.replay.htbmodel import backlogged_departures
from shaping.replay.schedule import (
    DEFAULT_GRANULARITY_S,
    DEFAULT_OUTAGE_MIN_S,
    build_schedule,
)
from shaping.spec import LinkShape
from shaping.tc.burst import FRAME_BYTES
from shaping.traces.model import Trace

#: The fidelity report's capacity bin.
BIN_S = 0.5
#: A bin further than this from the trace fails (issue #13's per-bin agreement target).
BIN_LIMIT = 0.05
#: Frames a bin may be off by whatever its rate (one frame is 8 % of a 300 kbit/s bin).
SLACK_FRAMES = 2
#: Zero-capacity stretches this long are outages the schedule promises to keep.
GAP_MIN_S = DEFAULT_OUTAGE_MIN_S
#: Frames allowed out inside such a stretch once one replay step has passed.
GAP_LEAK_FRAMES = 2
#: The longest stretch of trace the model is run over (a looping trace repeats).
MAX_CHECK_S = 180.0


@dataclass(frozen=True)
class LeakyGap:
    """A zero-capacity stretch htb would deliver into."""

    t_s: float
    length_s: float
    frames: int


@dataclass(frozen=True)
class HtbCheck:
    """The verdict on one traced direction, in figures and in words."""

    representable: bool
    seconds: float  # of trace checked
    bins: int  # 500 ms bins with capacity
    mape: float | None
    worst_bin_t_s: float | None
    worst_bin_error: float | None
    within_bins: bool  # every bin within BIN_LIMIT (+ slack)
    gaps: int  # stretches of at least GAP_MIN_S checked
    leaky: list[LeakyGap] = field(default_factory=list)

    def reason(self) -> str:
        """One sentence: why htb can or cannot replay this direction."""
        figures = (f"{self.bins} bins of 500 ms over {self.seconds:g} s, MAPE "
                   f"{(self.mape or 0) * 100:.1f} %, worst bin {self._worst()}; "
                   f"{self.gaps} gap(s) of {GAP_MIN_S * 1000:.0f} ms or more")
        if self.representable:
            return f"htb: trace representable (model: {figures}, none delivered into)"
        problems = []
        if not self.within_bins:
            problems.append(f"a 500 ms bin would miss the trace by more than "
                            f"{BIN_LIMIT * 100:.0f} % (worst {self._worst()})")
        if self.leaky:
            first = self.leaky[0]
            problems.append(
                f"{len(self.leaky)} of {self.gaps} gap(s) would carry frames, first the "
                f"{first.length_s * 1000:.0f} ms gap at {first.t_s:.2f} s ({first.frames} "
                "frames where Mahimahi delivers none)")
        return "htb: trace not representable: " + "; ".join(problems)

    def _worst(self) -> str:
        if self.worst_bin_error is None or self.worst_bin_t_s is None:
            return "-"
        return f"{self.worst_bin_error * 100:+.1f} % at {self.worst_bin_t_s:.1f} s"


def _cumulative_bits(trace: Trace, t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Bits the trace carries from 0 to each time (looping, or holding its last rate)."""
    starts = np.asarray(trace.times_s, dtype=np.float64)
    rates = np.asarray(trace.rates_bps, dtype=np.float64)
    ends = np.append(starts[1:], trace.period_s)
    per_period = np.concatenate(([0.0], np.cumsum(rates * (ends - starts))))

    def within(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        index = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
        out: npt.NDArray[np.float64] = per_period[index] + rates[index] * (t - starts[index])
        return out

    if trace.loop:
        laps = np.floor(t_s / trace.period_s)
        looped: npt.NDArray[np.float64] = laps * per_period[-1] + within(
            t_s - laps * trace.period_s)
        return looped
    held: npt.NDArray[np.float64] = within(np.minimum(t_s, trace.period_s)) + rates[-1] * (
        np.maximum(t_s - trace.period_s, 0.0))
    return held


def zero_stretches(trace: Trace, seconds: float, min_s: float = GAP_MIN_S
                   ) -> list[tuple[float, float]]:
    """``(start, end)`` of every zero-capacity stretch of at least ``min_s`` in ``[0, seconds)``."""
    starts = np.asarray(trace.times_s, dtype=np.float64)
    zero = np.asarray(trace.rates_bps) <= 0
    laps = math.ceil(seconds / trace.period_s) if trace.loop else 1
    out: list[tuple[float, float]] = []
    open_at: float | None = None
    for lap in range(laps):
        offset = lap * trace.period_s
        for s, z in zip(starts + offset, zero, strict=True):
            if z and open_at is None:
                open_at = float(s)
            elif not z and open_at is not None:
                if s - open_at >= min_s and open_at < seconds:
                    out.append((open_at, float(s)))
                open_at = None
    if open_at is not None and min(seconds, laps * trace.period_s) - open_at >= min_s:
        out.append((open_at, laps * trace.period_s if trace.loop else seconds))
    return out


def check_htb(trace: Trace, base: LinkShape, seconds: float, *,
              frame_bytes: int = FRAME_BYTES) -> HtbCheck:
    """Run the htb model over ``seconds`` of the kernel schedule of ``trace`` and judge it."""
    seconds = max(BIN_S, min(seconds, MAX_CHECK_S))
    schedule = build_schedule(trace, base)
    departures = backlogged_departures(schedule, frame_bytes, seconds)
    frame_bits = frame_bytes * 8
    edges = np.arange(0.0, seconds + 1e-9, BIN_S)
    sent, _ = np.histogram(departures, edges)
    asked = np.diff(_cumulative_bits(trace, edges))
    counted = asked > 0
    counted[0] = False  # flows are only starting: htb's first bucket shows on no real link
    delivered = sent[counted] * frame_bits
    errors = delivered / asked[counted] - 1
    slack = SLACK_FRAMES * frame_bits / asked[counted]
    within = bool(np.all(np.abs(errors) <= BIN_LIMIT + slack))
    worst = int(np.argmax(np.abs(errors))) if errors.size else None
    gaps = zero_stretches(trace, seconds)
    leaky = []
    for start, end in gaps:
        inside = int(((departures >= start + DEFAULT_GRANULARITY_S) & (departures < end)).sum())
        if inside > GAP_LEAK_FRAMES:
            leaky.append(LeakyGap(round(start, 3), round(end - start, 3), inside))
    return HtbCheck(
        representable=within and not leaky, seconds=round(seconds, 3),
        bins=int(counted.sum()), mape=float(np.mean(np.abs(errors))) if errors.size else None,
        worst_bin_t_s=None if worst is None else float(edges[:-1][counted][worst]),
        worst_bin_error=None if worst is None else float(errors[worst]), within_bins=within,
        gaps=len(gaps), leaky=leaky)
