"""The one in-memory form every trace format is read into and written from.

A trace is a piecewise-constant capacity over ``[0, period_s)`` (seconds, bits
per second) with optional per-segment one-way delay, loss and jitter. It either
loops (Mahimahi, OpenNetLab, Pensieve replay it from the start) or holds its
last segment forever (Genet's simulator). A Mahimahi trace also keeps its exact
delivery opportunities, so the user-space link can replay them packet by
packet; its capacity series is those opportunities counted per millisecond.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt

#: Bytes one Mahimahi delivery opportunity lets through (an MTU-sized frame
#: as Mahimahi counts it: 1500 B IP + 4 B tun header; mahimahi link_queue.cc
#: ``PACKET_SIZE = 1504``).
MAHIMAHI_PACKET_BYTES = 1504
MAHIMAHI_PACKET_BITS = MAHIMAHI_PACKET_BYTES * 8

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Segment:
    """One constant stretch of a trace: ``[start_s, end_s)`` at ``rate_bps``."""

    start_s: float
    end_s: float
    rate_bps: float
    delay_s: float | None = None
    loss: float | None = None
    jitter_s: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _optional_series(
    values: Sequence[float] | None, count: int, what: str
) -> tuple[float, ...] | None:
    if values is None:
        return None
    series = tuple(float(v) for v in values)
    if len(series) != count:
        raise ValueError(f"{what} has {len(series)} values for {count} segments")
    if any(not math.isfinite(v) or v < 0 for v in series):
        raise ValueError(f"{what} must be finite and >= 0")
    return series


@dataclass(frozen=True)
class Trace:
    """Piecewise capacity (plus optional delay/loss/jitter) over one period.

    ``times_s[i]`` is when segment ``i`` starts; segment ``i`` ends at
    ``times_s[i + 1]`` or ``period_s``. ``delays_s`` are one-way delays.
    ``opportunities_ms`` is set only for traces read from Mahimahi files: the
    file's timestamps, exactly (the period is then the last of them).
    """

    times_s: tuple[float, ...]
    rates_bps: tuple[float, ...]
    period_s: float
    loop: bool = True
    delays_s: tuple[float, ...] | None = None
    losses: tuple[float, ...] | None = None
    jitters_s: tuple[float, ...] | None = None
    opportunities_ms: tuple[int, ...] | None = None
    queue_packets: int | None = None
    delay_noise_s: float | None = None
    name: str = field(default="", compare=False)
    source_format: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        count = len(self.times_s)
        if count == 0 or count != len(self.rates_bps):
            raise ValueError("a trace needs one rate per segment start, at least one")
        if self.times_s[0] != 0.0:
            raise ValueError("the first segment must start at 0 s")
        if any(b <= a for a, b in zip(self.times_s, self.times_s[1:], strict=False)):
            raise ValueError("segment start times must increase strictly")
        if not (math.isfinite(self.period_s) and self.period_s > self.times_s[-1]):
            raise ValueError("period_s must be finite and after the last segment start")
        if any(not math.isfinite(r) or r < 0 for r in self.rates_bps):
            raise ValueError("rates must be finite and >= 0")
        object.__setattr__(self, "times_s", tuple(float(t) for t in self.times_s))
        object.__setattr__(self, "rates_bps", tuple(float(r) for r in self.rates_bps))
        object.__setattr__(self, "delays_s", _optional_series(self.delays_s, count, "delays_s"))
        object.__setattr__(self, "losses", _optional_series(self.losses, count, "losses"))
        object.__setattr__(self, "jitters_s", _optional_series(self.jitters_s, count, "jitters_s"))
        if self.losses is not None and any(v > 1 for v in self.losses):
            raise ValueError("losses are probabilities in [0, 1]")

    # -- construction -------------------------------------------------------

    @classmethod
    def from_opportunities(
        cls,
        opportunities_ms: Sequence[int],
        *,
        name: str = "",
        source_format: str = "mahimahi",
    ) -> Trace:
        """A looping trace from Mahimahi delivery opportunities.

        Mahimahi replays the schedule with period = last timestamp, so the
        opportunity at ``t`` ms lets one packet out at ``t`` and again at
        ``t + k * period`` (link_queue.cc, ``next_delivery_``). The packet
        leaves at the end of millisecond ``t``: it is counted as capacity in
        ``[t - 1, t)`` ms, and timestamp 0 (the same instant as the period
        end) in the last millisecond. This keeps the mean rate at Mahimahi's
        ``count * 1504 B * 8 / period``.
        """
        stamps = tuple(int(t) for t in opportunities_ms)
        if not stamps or stamps[-1] <= 0:
            raise ValueError("a Mahimahi schedule needs a last timestamp > 0")
        period_ms = stamps[-1]
        # Packets per millisecond, kept sparse (memory grows with the lines,
        # not with the period): the busy milliseconds and their counts, with
        # a zero-capacity run after each one that its successor does not follow.
        busy, counts = np.unique(
            (np.asarray(stamps, dtype=np.int64) - 1) % period_ms, return_counts=True
        )
        idle = busy + 1
        idle = idle[(idle < period_ms) & ~np.isin(idle, busy)]
        all_starts = np.concatenate((busy, idle, [0]))
        all_counts = np.concatenate((counts, np.zeros(len(idle) + 1, dtype=counts.dtype)))
        order = np.lexsort((-all_counts, all_starts))  # a busy 0 wins over the filler 0
        all_starts, all_counts = all_starts[order], all_counts[order]
        first = np.concatenate(([True], np.diff(all_starts) > 0))
        all_starts, all_counts = all_starts[first], all_counts[first]
        keep = np.concatenate(([True], np.diff(all_counts) != 0))
        starts, kept = all_starts[keep], all_counts[keep]
        rates = kept.astype(np.float64) * MAHIMAHI_PACKET_BITS * 1000.0
        return cls(
            times_s=tuple((starts / 1000.0).tolist()),
            rates_bps=tuple(rates.tolist()),
            period_s=period_ms / 1000.0,
            loop=True,
            opportunities_ms=stamps,
            name=name,
            source_format=source_format,
        )

    @classmethod
    def constant(cls, rate_bps: float, duration_s: float, *, loop: bool = True) -> Trace:
        return cls(times_s=(0.0,), rates_bps=(rate_bps,), period_s=duration_s, loop=loop)

    # -- queries --------------------------------------------------------------

    @property
    def segment_count(self) -> int:
        return len(self.times_s)

    def _index_at(self, t_s: float) -> int:
        if t_s < 0:
            raise ValueError("time must be >= 0")
        if self.loop:
            t_s = math.fmod(t_s, self.period_s)
        elif t_s >= self.period_s:
            return len(self.times_s) - 1  # Genet holds the last value after the end
        return bisect.bisect_right(self.times_s, t_s) - 1

    def segment(self, index: int) -> Segment:
        end = self.times_s[index + 1] if index + 1 < len(self.times_s) else self.period_s
        return Segment(
            start_s=self.times_s[index],
            end_s=end,
            rate_bps=self.rates_bps[index],
            delay_s=None if self.delays_s is None else self.delays_s[index],
            loss=None if self.losses is None else self.losses[index],
            jitter_s=None if self.jitters_s is None else self.jitters_s[index],
        )

    def segment_at(self, t_s: float) -> Segment:
        """The segment in force at ``t_s`` seconds after the trace started."""
        return self.segment(self._index_at(t_s))

    def capacity_at(self, t_s: float) -> float:
        """Capacity in bits/s at ``t_s`` (looping or holding past the end)."""
        return self.rates_bps[self._index_at(t_s)]

    def segments(self) -> Iterator[Segment]:
        """The segments of one period, in order."""
        for index in range(len(self.times_s)):
            yield self.segment(index)

    @cached_property
    def _ends(self) -> FloatArray:
        return np.append(np.asarray(self.times_s[1:], dtype=np.float64), self.period_s)

    @cached_property
    def _widths(self) -> FloatArray:
        return self._ends - np.asarray(self.times_s, dtype=np.float64)

    def total_bits(self) -> float:
        """Bits the link can carry in one period."""
        if self.opportunities_ms is not None:
            return float(len(self.opportunities_ms) * MAHIMAHI_PACKET_BITS)
        return float(np.dot(np.asarray(self.rates_bps), self._widths))

    @cached_property
    def _integral(self) -> FloatArray:
        """Bits carried from the period's start to each segment start, and to its end."""
        bits = np.asarray(self.rates_bps, dtype=np.float64) * self._widths
        result: FloatArray = np.concatenate(([0.0], np.cumsum(bits)))
        return result

    def bits_until(self, t_s: float) -> float:
        """Bits the link can carry from the trace's start to ``t_s`` (looping or
        holding the last rate past the end, as :meth:`capacity_at`)."""
        if t_s < 0:
            raise ValueError("time must be >= 0")
        period_bits = float(self._integral[-1])
        laps = 0.0
        if self.loop:
            laps, t_s = divmod(t_s, self.period_s)
        elif t_s >= self.period_s:
            return period_bits + self.rates_bps[-1] * (t_s - self.period_s)
        index = bisect.bisect_right(self.times_s, t_s) - 1
        return (laps * period_bits + float(self._integral[index])
                + self.rates_bps[index] * (t_s - self.times_s[index]))

    def mean_capacity_bps(self, start_s: float, end_s: float) -> float:
        """Time-averaged capacity over ``[start_s, end_s)``: what the link offered
        a flow in that interval (the capacity at ``start_s`` for an empty one)."""
        if end_s <= start_s:
            return self.capacity_at(max(0.0, start_s))
        start_s = max(0.0, start_s)
        return (self.bits_until(end_s) - self.bits_until(start_s)) / (end_s - start_s)

    def mean_rate_bps(self) -> float:
        """Time-averaged capacity over one period (Mahimahi: opportunities x 1504 x 8 / period)."""
        return self.total_bits() / self.period_s

    def outage_fraction(self) -> float:
        """Share of the period with zero capacity."""
        rates = np.asarray(self.rates_bps)
        return float(self._widths[rates == 0].sum() / self.period_s)

    def _mean_over_bins(self, values: Sequence[float], edges: FloatArray) -> FloatArray:
        """Time-weighted mean of a per-segment series over each bin of ``edges``."""
        starts = np.asarray(self.times_s, dtype=np.float64)
        series = np.asarray(values, dtype=np.float64)
        integral = np.concatenate(([0.0], np.cumsum(series * self._widths)))
        index = np.clip(np.searchsorted(starts, edges, side="right") - 1, 0, len(starts) - 1)
        at_edges = integral[index] + series[index] * (edges - starts[index])
        at_edges[-1] = integral[-1]
        result: FloatArray = np.diff(at_edges) / np.diff(edges)
        return result

    def binned(self, granularity_s: float) -> Trace:
        """The same trace averaged into bins of ``granularity_s`` (last bin may be shorter).

        Each bin carries exactly the bits the original carries in it (for a
        Mahimahi trace: opportunities x 1504 x 8 / bin width), so a kernel
        shaper stepping through the bins delivers the same bytes per period.
        Delay, loss and jitter become time-weighted means per bin; the
        opportunities are dropped (the result is a rate series).
        """
        if not (math.isfinite(granularity_s) and granularity_s > 0):
            raise ValueError("granularity_s must be > 0")
        bins = max(1, math.ceil(self.period_s / granularity_s - 1e-9))
        edges = np.minimum(np.arange(bins + 1, dtype=np.float64) * granularity_s, self.period_s)
        edges[-1] = self.period_s
        return self.binned_at(edges)

    def binned_at(self, edges: FloatArray) -> Trace:
        """``binned`` with bins of any widths: ``edges`` from 0 to ``period_s``, increasing."""
        if not (edges[0] == 0.0 and edges[-1] == self.period_s and np.all(np.diff(edges) > 0)):
            raise ValueError("bin edges must increase from 0 to the period")
        rates = self._mean_over_bins(self.rates_bps, edges)
        rates[rates < 0] = 0.0  # rounding noise on zero-capacity bins

        def series(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
            if values is None:
                return None
            return tuple(np.maximum(self._mean_over_bins(values, edges), 0.0).tolist())

        losses = series(self.losses)
        if losses is not None:
            losses = tuple(min(v, 1.0) for v in losses)
        return replace(
            self,
            times_s=tuple(edges[:-1].tolist()),
            rates_bps=tuple(rates.tolist()),
            delays_s=series(self.delays_s),
            losses=losses,
            jitters_s=series(self.jitters_s),
            opportunities_ms=None,
        )

    def window(self, start_s: float, duration_s: float) -> Trace:
        """The stretch ``[start_s, start_s + duration_s)`` as a trace of its own.

        Test and training sets cut several calls from one long recording
        (Mahimahi's LTE traces are 140 s; a call is 30 s). Segments are cut at
        the window's edges. A Mahimahi trace keeps its own opportunities in
        ``(start, end]`` ms, shifted; its period is then the last of them
        (Mahimahi's rule), at most a few ms short of ``duration_s``. Otherwise
        the window has the trace's loop rule and one period of ``duration_s``.
        """
        end_s = start_s + duration_s
        if not (math.isfinite(start_s) and start_s >= 0 and duration_s > 0):
            raise ValueError("a window needs start_s >= 0 and duration_s > 0")
        if end_s > self.period_s + 1e-9:
            raise ValueError(f"window {start_s:g}-{end_s:g} s runs past the trace's "
                             f"{self.period_s:g} s")
        name = f"{self.name}@{start_s:g}s" if self.name else ""
        if self.opportunities_ms is not None:
            start_ms, end_ms = round(start_s * 1000), round(end_s * 1000)
            stamps = [t - start_ms for t in self.opportunities_ms if start_ms < t <= end_ms]
            if not stamps:
                raise ValueError(f"window {start_s:g}-{end_s:g} s has no delivery opportunity")
            return Trace.from_opportunities(stamps, name=name,
                                            source_format=self.source_format)
        first = self._index_at(start_s)
        indices = [first] + [i for i in range(first + 1, len(self.times_s))
                             if self.times_s[i] < end_s]

        def pick(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
            return None if values is None else tuple(values[i] for i in indices)

        return replace(
            self,
            times_s=(0.0, *(self.times_s[i] - start_s for i in indices[1:])),
            rates_bps=tuple(self.rates_bps[i] for i in indices),
            period_s=duration_s,
            delays_s=pick(self.delays_s),
            losses=pick(self.losses),
            jitters_s=pick(self.jitters_s),
            opportunities_ms=None,
            name=name,
        )

    def merged(self) -> Trace:
        """Adjacent segments with identical values joined (fewer tc changes)."""
        if self.opportunities_ms is not None:
            return self
        keep = [0]
        for i in range(1, len(self.times_s)):
            same = self.rates_bps[i] == self.rates_bps[i - 1]
            for values in (self.delays_s, self.losses, self.jitters_s):
                if values is not None and values[i] != values[i - 1]:
                    same = False
            if not same:
                keep.append(i)

        def pick(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
            return None if values is None else tuple(values[i] for i in keep)

        return replace(
            self,
            times_s=tuple(self.times_s[i] for i in keep),
            rates_bps=tuple(self.rates_bps[i] for i in keep),
            delays_s=pick(self.delays_s),
            losses=pick(self.losses),
            jitters_s=pick(self.jitters_s),
        )
