"""A trace plus a link's static shape, turned into the changes a replayer applies.

The kernel backend cannot follow a Mahimahi file packet by packet: it is
replayed as a rate series binned at ``granularity_s`` (default 10 ms, the
step OpenNetLab and Pantheon-style replays use), where each bin carries
exactly the bits the opportunities in it carry, so a shaper stepping through
the bins delivers the same bytes per period.  Consecutive equal shapes are
merged (no change is sent that would not change anything).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from shaping.spec import LinkShape, QueueLimit
from shaping.tc.burst import default_queue
from shaping.traces.model import MAHIMAHI_PACKET_BITS, Trace

#: Default bin width for delivery-opportunity traces on the kernel backend.
DEFAULT_GRANULARITY_S = 0.010

#: Least capacity one step may carry (one Mahimahi packet), see ``_coalesce``.
DEFAULT_MIN_STEP_BITS = MAHIMAHI_PACKET_BITS

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
    ``outage_min_s`` or more is an outage, replayed at one packet per
    outage, the least that keeps htb's debt within the outage.  Steps whose
    delay, loss, jitter or queue differ are never joined.
    """
    out: list[tuple[float, LinkShape]] = []
    acc_start = 0.0
    acc_bits = 0.0
    acc_base: LinkShape | None = None
    longest = 10 * outage_min_s

    def flush(end_s: float) -> None:
        assert acc_base is not None
        width = end_s - acc_start
        rate = round(acc_bits / width) if acc_bits > 0 else math.ceil(min_bits / width)
        out.append((acc_start, acc_base.with_rate(rate)))

    for start, end, shape in steps:
        base = shape.with_rate(None)
        rate = float(shape.rate_bps or 0)
        if acc_base is not None and (
            base != acc_base or (acc_bits == 0.0 and rate > 0 and start - acc_start >= outage_min_s)
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
    source = trace.binned(granularity_s) if needs_binning(trace, granularity_s) else trace
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
