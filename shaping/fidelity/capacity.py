"""Capacity tracking: did the link deliver the trace's capacity while it had work to do?

Per bin of ``bin_s`` (500 ms by default), over the bins in which the link was
backlogged throughout, the error is ``|delivered rate - asked capacity| /
asked capacity``; the report gives the mean of those (MAPE).  Bins with no
backlog are left out (an idle link delivers less than its capacity by
design), and so are bins where the asked capacity is zero or undefined
(unshaped).  Both sides count the same bytes: whole Ethernet frames for tc
(the qdisc's byte counter and the rate both count them), IP size plus the
link's per-packet overhead for the user-space link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shaping.fidelity.series import FloatArray, IntArray, StepSeries, step_series
from shaping.traces.model import Trace

DEFAULT_BIN_S = 0.5

#: A bin's capacity is judged by its bytes only if it was asked for at least this
#: many full Ethernet frames (1514 B): below that, packet sizes decide the error.
MIN_JUDGED_FRAMES = 4
FRAME_BITS = 1514 * 8

#: A bin counts as sampled only if its counter samples are this dense
#: (fraction of the nominal count); a stalled sampler proves nothing.
MIN_SAMPLE_COVERAGE = 0.5


@dataclass(frozen=True)
class CapacityBins:
    """Per-bin delivered and asked rates (bits/s) and which bins count."""

    edges_ns: IntArray
    delivered_bps: FloatArray
    asked_bps: FloatArray
    backlogged: npt.NDArray[np.bool_]

    @property
    def counted(self) -> npt.NDArray[np.bool_]:
        asked_ok = np.isfinite(self.asked_bps) & (np.nan_to_num(self.asked_bps) > 0)
        return self.backlogged & asked_ok & np.isfinite(self.delivered_bps)

    @property
    def judged(self) -> npt.NDArray[np.bool_]:
        """Counted bins that carry enough frames to be judged by their bytes.

        A bin asked for one or two packets' worth (a Mahimahi trace at 24 kbit/s
        gives a 500 ms bin one delivery opportunity) misses by a whole packet's
        size difference: one 1,250-byte packet in a 1,504-byte opportunity is
        -17 % with the link exactly right. Such bins stay in ``counted_bins``,
        where the per-bin check allows a slack of frames.
        """
        widths_s = np.diff(self.edges_ns).astype(np.float64) / 1e9
        asked_bits = np.nan_to_num(self.asked_bps) * widths_s
        return self.counted & (asked_bits >= MIN_JUDGED_FRAMES * FRAME_BITS)

    def errors(self) -> FloatArray:
        """Absolute percentage error (as a fraction) of each judged bin."""
        mask = self.judged
        errors: FloatArray = np.abs(self.delivered_bps[mask] - self.asked_bps[mask]) / (
            self.asked_bps[mask]
        )
        return errors

    def mape(self) -> float | None:
        errors = self.errors()
        return float(errors.mean()) if errors.size else None

    def counted_bins(self, start_ns: int) -> list[dict[str, float]]:
        """Each counted bin as ``{t_s, asked_bps, delivered_bps}`` (``t_s`` from ``start_ns``).

        The verdict judges bins one by one: a mean error can hide a bin
        that delivered nothing.
        """
        index = np.flatnonzero(self.counted)
        return [{"t_s": round((int(self.edges_ns[k]) - start_ns) / 1e9, 3),
                 "asked_bps": round(float(self.asked_bps[k])),
                 "delivered_bps": round(float(self.delivered_bps[k]))} for k in index]


def bin_edges(start_ns: int, end_ns: int, bin_s: float = DEFAULT_BIN_S) -> IntArray:
    """Whole bins from the replay start (a partial last bin is dropped)."""
    width = round(bin_s * 1e9)
    count = max(0, (end_ns - start_ns) // width)
    return start_ns + np.arange(count + 1, dtype=np.int64) * width


def asked_from_changes(changes: npt.NDArray[Any]) -> StepSeries:
    """Asked capacity over time from a change log (replay or user-space link).

    Uses the *scheduled* times: what the scenario asked, not when the backend
    got to it (timing is judged separately).  ``rate_bps`` -1 (unshaped) is
    undefined.
    """
    order = np.argsort(changes["scheduled_ns"], kind="stable")
    rates = changes["rate_bps"][order].astype(np.float64)
    rates[rates < 0] = np.nan
    return step_series(changes["scheduled_ns"][order], rates)


def asked_from_trace(trace: Trace, start_ns: int, end_ns: int) -> StepSeries:
    """Asked capacity of ``trace`` started at ``start_ns``, looped (or held) up to ``end_ns``.

    For a Mahimahi trace the series is its opportunities counted per
    millisecond, i.e. exactly the bytes mm-link would let through.
    """
    period_ns = round(trace.period_s * 1e9)
    offsets = np.round(np.asarray(trace.times_s) * 1e9).astype(np.int64)
    rates = np.asarray(trace.rates_bps, dtype=np.float64)
    laps = max(1, -(-(end_ns - start_ns) // period_ns)) if trace.loop else 1
    times = np.concatenate([start_ns + k * period_ns + offsets for k in range(laps)])
    values = np.tile(rates, laps)
    return step_series(times, values)


def delay_line_bytes(changes: npt.NDArray[Any]) -> StepSeries:
    """Bytes netem's delay line holds at the applied rate, from a replay's change log.

    netem is the leaf under htb: a packet waits its delay there before htb may
    take it, so the tree's backlog includes every packet merely in flight, up
    to rate x (delay + jitter) on a link that is not the bottleneck at all.
    Only a queue deeper than that says the rate was the limit.  Times are when
    each change was applied (what the qdisc held); an unshaped rate holds none.
    """
    order = np.argsort(changes["applied_ns"], kind="stable")
    rate = changes["rate_bps"][order].astype(np.float64)
    held = np.where(rate > 0, rate, 0.0) * (changes["delay_s"][order]
                                           + changes["jitter_s"][order]) / 8.0
    return step_series(changes["applied_ns"][order], held)


def kernel_bins(samples: npt.NDArray[Any], asked: StepSeries, edges_ns: IntArray,
                sample_interval_ns: int = 10_000_000,
                in_flight: StepSeries | None = None) -> CapacityBins:
    """Bins from the shaping qdisc's counters (replay log samples).

    Delivered bytes in a bin are the byte counter interpolated linearly at the
    bin's edges; the bin is backlogged when every sample in it (edges
    included, within half a sampling interval) saw a queue: any packet, or,
    with ``in_flight`` (:func:`delay_line_bytes`), more bytes than netem's
    delay line holds at the asked rate.
    """
    t = samples["t_ns"].astype(np.int64)
    count = len(edges_ns) - 1
    delivered = np.full(count, np.nan)
    backlogged = np.zeros(count, dtype=bool)
    if len(t) >= 2 and count > 0:
        cumulative = samples["bytes"].astype(np.float64)
        inside = (edges_ns >= t[0]) & (edges_ns <= t[-1])
        at_edges = np.interp(edges_ns.astype(np.float64), t.astype(np.float64), cumulative)
        at_edges[~inside] = np.nan
        widths_s = np.diff(edges_ns).astype(np.float64) / 1e9
        delivered = np.diff(at_edges) * 8.0 / widths_s
        queued = (samples["backlog_packets"] > 0) | (samples["backlog_bytes"] > 0)
        if in_flight is not None:
            allowance = np.nan_to_num(in_flight.at(t), nan=0.0)
            queued = np.where(allowance > 0, samples["backlog_bytes"] > allowance, queued)
        slack = sample_interval_ns // 2
        for k in range(count):
            lo = int(np.searchsorted(t, edges_ns[k] - slack, side="left"))
            hi = int(np.searchsorted(t, edges_ns[k + 1] + slack, side="right"))
            expected = (edges_ns[k + 1] - edges_ns[k]) / sample_interval_ns
            if hi - lo >= MIN_SAMPLE_COVERAGE * expected and bool(np.all(queued[lo:hi])):
                backlogged[k] = True
    asked_bps = asked.integrate(edges_ns) / (np.diff(edges_ns).astype(np.float64) / 1e9)
    return CapacityBins(edges_ns, delivered, asked_bps, backlogged)


def _merged_intervals(starts: IntArray, ends: IntArray) -> tuple[IntArray, IntArray]:
    """The union of ``[starts, ends)`` as disjoint sorted intervals."""
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > reach[:-1]
    heads = np.flatnonzero(new)
    tails = np.append(heads[1:], len(s)) - 1
    return s[heads], reach[tails]


def _covered_bins(starts: IntArray, ends: IntArray, edges_ns: IntArray) -> npt.NDArray[np.bool_]:
    """Per bin: does the union of the intervals cover it entirely?"""
    count = len(edges_ns) - 1
    if starts.size == 0:
        return np.zeros(count, dtype=bool)
    m_starts, m_ends = _merged_intervals(starts, ends)
    index = np.searchsorted(m_starts, edges_ns[:-1], side="right") - 1
    ok = index >= 0
    covered = np.zeros(count, dtype=bool)
    covered[ok] = m_ends[index[ok]] >= edges_ns[1:][ok]
    return covered


def packet_bins(packets: npt.NDArray[Any], asked: StepSeries, edges_ns: IntArray, *,
                served_ns: IntArray, overhead_bytes: int) -> CapacityBins:
    """Bins from the user-space link's per-packet log.

    ``served_ns`` is when each delivered packet left the rate server (its
    departure minus the delay it was given).  A packet waits from its
    arrival until it is served, so the link is backlogged over a bin when the
    union of those waiting intervals covers it.  Delivered bytes are counted
    by service time, with ``overhead_bytes`` per packet (14 tc-like, 4 Mahimahi).
    """
    delivered_mask = packets["departure_ns"] >= 0
    arrival = packets["arrival_ns"][delivered_mask].astype(np.int64)
    served = served_ns.astype(np.int64)
    sizes = packets["size"][delivered_mask].astype(np.float64) + overhead_bytes
    widths_s = np.diff(edges_ns).astype(np.float64) / 1e9
    total, _ = np.histogram(served, bins=edges_ns, weights=sizes)
    delivered = total * 8.0 / widths_s
    backlogged = _covered_bins(arrival, np.maximum(served, arrival), edges_ns)
    asked_bps = asked.integrate(edges_ns) / widths_s
    return CapacityBins(edges_ns, delivered.astype(np.float64), asked_bps, backlogged)
