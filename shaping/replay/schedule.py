"""A trace plus a link's static shape, turned into the changes a replayer applies.

The kernel backend cannot follow a Mahimahi file packet by packet: it is
replayed as a rate series binned at ``granularity_s``, where each bin carries
exactly the bits the opportunities in it carry, so a shaper stepping through
the bins delivers the same bytes per period.  Consecutive equal shapes are
merged (no change is sent that would not change anything).

The bin is 50 ms with at least two packets per step, not the 10 ms of
OpenNetLab-style replays: htb charges a frame at the rate in force when it
leaves, so at every step up the last frame of the slower step eats into the
faster one.  At 10 ms an LTE trace's bursts (0 to 75 Mbit/s between bins)
lost 12 % of the capacity per 500 ms bin to 1442-byte frames, 4 % to 1200-byte
ones (``htbmodel``, confirmed on the real qdisc: bench/replay.py); at 50 ms
1-1.3 %.  The user-space link is the per-packet reference.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from shaping.spec import LinkShape, QueueLimit
from shaping.tc.burst import FRAME_BYTES, default_queue
from shaping.traces.model import MAHIMAHI_PACKET_BITS, Trace

#: Default bin width for delivery-opportunity traces on the kernel backend.
DEFAULT_GRANULARITY_S = 0.050

#: Least capacity one step may carry (two Mahimahi packets), see ``_coalesce``.
DEFAULT_MIN_STEP_BITS = 2 * MAHIMAHI_PACKET_BITS

#: Largest frame htb charges for (a full Ethernet frame, as tc counts it).
FRAME_BITS = FRAME_BYTES * 8

#: Step of the outage ramp (``_outage_ramp``): what delivery may resume early by.
RAMP_STEP_S = 0.010

#: Zero-capacity stretches at least this long are replayed as outages; shorter
#: gaps are folded into the delivery that follows them.
DEFAULT_OUTAGE_MIN_S = 0.100


@dataclass(frozen=True)
class Change:
    """At ``t_s`` seconds after the replay's start (within one period), apply ``shape``."""

    t_s: float
    shape: LinkShape


@dataclass(frozen=True)
class Schedule:
    """Changes over one period; the first is at 0 s.

    With ``loop`` the changes repeat every ``period_s``; without it the
    replay ends at ``period_s`` and the last shape stays in force (Genet's
    simulator holds the last value; a non-looping scenario stops there).
    """

    changes: tuple[Change, ...]
    period_s: float
    loop: bool

    def __post_init__(self) -> None:
        if not self.changes:
            raise ValueError("a schedule needs at least one change")
        if self.changes[0].t_s != 0.0:
            raise ValueError("the first change must be at 0 s")
        times = [c.t_s for c in self.changes]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("change times must increase strictly")
        if not (math.isfinite(self.period_s) and self.period_s > times[-1]):
            raise ValueError("period_s must be finite and after the last change")

    @property
    def first_shape(self) -> LinkShape:
        return self.changes[0].shape

    def deadlines_ns(self, start_ns: int) -> Iterator[tuple[int, int, LinkShape]]:
        """``(scheduled_ns, index, shape)`` forever (loop) or for one period.

        Each deadline is computed from ``start_ns`` and the period count, never
        from the previous one, so lateness cannot accumulate.
        """
        period_ns = round(self.period_s * 1e9)
        offsets = [round(c.t_s * 1e9) for c in self.changes]
        lap = 0
        while True:
            base = start_ns + lap * period_ns
            for index, (offset, change) in enumerate(zip(offsets, self.changes, strict=True)):
                yield base + offset, index, change.shape
            if not self.loop:
                return
            lap += 1


def _trace_shape(base: LinkShape, trace: Trace, index: int) -> LinkShape:
    """The base shape with the trace's values of segment ``index`` laid over it."""
    rate = trace.rates_bps[index]
    shape = replace(base, rate_bps=round(rate))
    if trace.delays_s is not None:
        shape = replace(shape, delay_s=trace.delays_s[index])
    if trace.losses is not None:
        shape = replace(shape, loss=trace.losses[index])
    if trace.jitters_s is not None:
        shape = replace(shape, jitter_s=trace.jitters_s[index])
    return shape


def replay_queue(trace: Trace, base: LinkShape) -> QueueLimit:
    """The queue bound held for the whole replay.

    The scenario's queue, else the trace's own (Genet traces carry one), else
    one bandwidth-delay product at the trace's mean rate.  A shaper given no
    queue would size it from the first bin's rate (possibly an outage), and a
    queue that followed every bin would cost a second netlink change per step.
    """
    if base.queue is not None:
        return base.queue
    if trace.queue_packets is not None:
        return QueueLimit(packets=trace.queue_packets)
    return default_queue(round(trace.mean_rate_bps()), base.delay_s, base.jitter_s)


def _outage_ramp(start_s: float, end_s: float, base: LinkShape) -> list[tuple[float, LinkShape]]:
    """An outage as ``RAMP_STEP_S`` steps, each at one full frame over the time from the
    step's *end* to the outage's end, then one frame in the last step.

    htb cannot hold a backlog at rate 0 (tc installs 1 kbit/s) and charges a
    frame at the rate in force when it leaves, as token *time* that no later
    change forgives.  A fixed outage rate lets a smaller frame out before the
    end and that frame's debt runs past it (measured: a 0.9 s gap in a
    T-Mobile LTE trace stalled the link 0.87 s after it, docs/design.md).
    On this ramp a frame leaving at any time in a step costs at least the time
    left after that step: after the frame htb holds tokens for when the gap
    starts, the next can leave only in the last step, whose one frame is paid
    off by the outage's end, where delivery resumes as in Mahimahi.
    """
    count = max(1, round((end_s - start_s) / RAMP_STEP_S))
    edges = [start_s + (end_s - start_s) * k / count for k in range(count + 1)]
    ramp = [(edges[k], base.with_rate(math.ceil(FRAME_BITS / (end_s - edges[k + 1]))))
            for k in range(count - 1)]
    ramp.append((edges[-2], base.with_rate(math.ceil(FRAME_BITS / (end_s - edges[-2])))))
    return ramp


def _coalesce(
    steps: list[tuple[float, float, LinkShape]], min_bits: float, outage_min_s: float
) -> list[tuple[float, LinkShape]]:
    """Join steps too small for one packet with the step after them, keeping every bit.

    ``steps`` are ``(start_s, end_s, shape)``.  htb keeps its tokens in
    *time* across rate changes: a frame sent at rate r costs ``frame / r`` of
    token time, whatever the rate becomes next.  A 10 ms bin holding no
    opportunity (rate 0, which tc installs as 1 kbit/s) that lets one queued
    frame through leaves ~12 s of debt and stalls the link (measured: a
    Mahimahi LTE replay delivered 0.03 Mbit/s of 5.7).  So each step carries
    at least ``min_bits`` (one packet: its frame then costs at most the step's
    length); a shorter gap is spread over the step that ends it (the same
    bits, delivered up to ``outage_min_s`` earlier within the gap).  A gap of
    ``outage_min_s`` or more is an outage, replayed as ``_outage_ramp``.
    Steps whose delay, loss, jitter or queue differ are never joined.
    """
    out: list[tuple[float, LinkShape]] = []
    acc_start = 0.0
    acc_bits = 0.0
    acc_base: LinkShape | None = None
    longest = 10 * outage_min_s

    def flush(end_s: float) -> None:
        assert acc_base is not None
        width = end_s - acc_start
        if acc_bits > 0:
            out.append((acc_start, acc_base.with_rate(round(acc_bits / width))))
        elif width >= outage_min_s:
            out.extend(_outage_ramp(acc_start, end_s, acc_base))
        else:  # a short gap at the end of the period, or before a shape change
            out.append((acc_start, acc_base.with_rate(math.ceil(min_bits / width))))

    for start, end, shape in steps:
        base = shape.with_rate(None)
        rate = float(shape.rate_bps or 0)
        whole_outage = rate == 0 and end - start >= outage_min_s  # a step cut at a gap's ends
        if acc_base is not None and (
            base != acc_base
            or (acc_bits == 0.0 and rate > 0 and start - acc_start >= outage_min_s)
            or (acc_bits > 0.0 and whole_outage)
        ):
            flush(start)
            acc_base = None
        if acc_base is None:
            acc_start, acc_bits, acc_base = start, 0.0, base
        acc_bits += rate * (end - start)
        if acc_bits >= min_bits or (acc_bits > 0 and end - acc_start >= longest):
            flush(end)
            acc_base = None
    if acc_base is not None:
        flush(steps[-1][1])
    return out


def step_edges(trace: Trace, granularity_s: float, outage_min_s: float | None
               ) -> npt.NDArray[np.float64]:
    """The replay's step edges over one period: every ``granularity_s``, but cut at
    both ends of each zero-capacity stretch of ``outage_min_s`` or more, so that
    stretch is one whole step (replayed as an outage) whatever the grid.

    A 160 ms gap starting 20 ms into a 50 ms step would otherwise cover only two
    whole steps and have its edges averaged with the delivery around it: htb
    would send frames into it where Mahimahi sends none (``representable``).
    Grid edges closer than half a step to a gap's ends are dropped, so no step
    is shorter than that; a gap with less than half a step of delivery before
    or after it keeps the grid.
    """
    period = trace.period_s
    count = max(1, math.ceil(period / granularity_s - 1e-9))
    grid = np.minimum(np.arange(count + 1, dtype=np.float64) * granularity_s, period)
    grid[-1] = period
    if outage_min_s is None:
        return grid
    starts = np.asarray(trace.times_s, dtype=np.float64)
    ends = np.append(starts[1:], period)
    zero = np.asarray(trace.rates_bps) <= 0
    gaps: list[tuple[float, float]] = []
    for start, end, empty in zip(starts, ends, zero, strict=True):
        if not empty:
            continue
        if gaps and gaps[-1][1] == start:  # adjacent zero segments are one stretch
            gaps[-1] = (gaps[-1][0], float(end))
        else:
            gaps.append((float(start), float(end)))
    half = granularity_s / 2
    long = [(a, b) for a, b in gaps if b - a >= outage_min_s]
    # Only a gap with half a step of delivery on each side is cut: a burst of a
    # millisecond between two gaps would be a step htb cannot carry (its first
    # frame is charged at the ramp's rate), so those keep the grid.
    bounds = [0.0] + [t for gap in long for t in gap] + [period]
    gaps = [gap for index, gap in enumerate(long)
            if gap[0] - bounds[2 * index] >= half and bounds[2 * index + 3] - gap[1] >= half]
    if not gaps:
        return grid
    keep = np.ones(len(grid), dtype=bool)
    for a, b in gaps:
        keep &= ~((grid > a - half) & (grid < b + half))
    keep[0] = keep[-1] = True
    cuts = [t for gap in gaps for t in gap if 0.0 < t < period]
    return np.unique(np.concatenate((grid[keep], np.asarray(cuts, dtype=np.float64))))


def needs_binning(trace: Trace, granularity_s: float) -> bool:
    """Opportunity traces always; rate traces whose segments are shorter than a bin."""
    if trace.opportunities_ms is not None:
        return True
    return any(segment.duration_s < granularity_s - 1e-12 for segment in trace.segments())


def build_schedule(
    trace: Trace,
    base: LinkShape,
    *,
    granularity_s: float = DEFAULT_GRANULARITY_S,
    loop: bool | None = None,
    min_step_bits: float | None = DEFAULT_MIN_STEP_BITS,
    outage_min_s: float = DEFAULT_OUTAGE_MIN_S,
) -> Schedule:
    """The changes that replay ``trace`` over ``base`` (its delay, jitter, loss, queue).

    The trace's rate always replaces ``base.rate_bps``; its delay, loss and
    jitter series, where it has them, replace the base's.  ``loop`` defaults
    to the trace's own looping; the scenario may override it.  Rates are
    whole bits/s, counted like tc counts them (whole frames).
    ``min_step_bits`` (kernel backend: one packet) joins steps too small to
    carry a packet with the next (see ``_coalesce``); None keeps every step.
    """
    if not (math.isfinite(granularity_s) and granularity_s > 0):
        raise ValueError("granularity_s must be a positive number of seconds")
    source = trace
    if needs_binning(trace, granularity_s):
        edges = step_edges(trace, granularity_s,
                           outage_min_s if min_step_bits is not None else None)
        source = trace.binned_at(edges)
    base = replace(base, queue=replay_queue(trace, base))
    steps = [
        (start, source.segment(index).end_s, _trace_shape(base, source, index))
        for index, start in enumerate(source.times_s)
    ]
    timed = (
        [(start, shape) for start, _, shape in steps]
        if min_step_bits is None
        else _coalesce(steps, min_step_bits, outage_min_s)
    )
    changes: list[Change] = []
    for start, shape in timed:
        if changes and changes[-1].shape == shape:
            continue
        changes.append(Change(start, shape))
    return Schedule(tuple(changes), source.period_s, trace.loop if loop is None else loop)


def constant_steps(rates_bps: list[int], step_s: float, base: LinkShape) -> Schedule:
    """A looping schedule cycling through ``rates_bps``, one every ``step_s`` (benchmarks, tests).

    Equal neighbours are kept: a benchmark of change timing wants every step applied.
    """
    changes = tuple(
        Change(i * step_s, replace(base, rate_bps=rate)) for i, rate in enumerate(rates_bps)
    )
    return Schedule(changes, step_s * len(rates_bps), loop=True)
