"""Rate time series: bytes in fixed bins turned into bit/s, and
sample-and-hold lookups for step signals (capacity traces, estimates)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RateSeries:
    """``rate_bps[i]`` is the mean rate over ``[bin_start_ns[i], bin_start_ns[i] + bin_ns)``."""

    bin_start_ns: Int64Array
    rate_bps: FloatArray
    bin_ns: int


def rate_series(times_ns: npt.ArrayLike, sizes: npt.ArrayLike, *, bin_ns: int,
                start_ns: int | None = None, end_ns: int | None = None) -> RateSeries:
    """Bytes of the events at ``times_ns`` summed per bin of ``bin_ns``.

    Bins start at ``start_ns`` (default: the first event) and cover
    ``[start_ns, end_ns)`` (default: through the last event); events outside
    are ignored. Empty bins are zeros, so outages show. A partial last bin
    is still divided by the full ``bin_ns``.
    """
    if bin_ns <= 0:
        raise ValueError(f"bin_ns must be positive, got {bin_ns}")
    times = np.asarray(times_ns, dtype=np.int64)
    weights = np.asarray(sizes, dtype=np.float64)
    if times.shape != weights.shape:
        raise ValueError("times_ns and sizes must have the same length")
    if times.size == 0 and (start_ns is None or end_ns is None):
        return RateSeries(np.zeros(0, np.int64), np.zeros(0), bin_ns)
    first = int(times.min()) if start_ns is None else int(start_ns)
    if end_ns is None:  # up to and including the last event
        count = (int(times.max()) - first) // bin_ns + 1 if times.size else 1
        keep = times >= first
    else:  # [first, end_ns), the last bin possibly partial
        count = max(1, -(-(int(end_ns) - first) // bin_ns))
        keep = (times >= first) & (times < end_ns)
    count = max(1, count)
    index = (times - first) // bin_ns
    totals = np.bincount(index[keep], weights=weights[keep], minlength=count)[:count]
    starts = first + bin_ns * np.arange(count, dtype=np.int64)
    return RateSeries(starts, totals * 8.0 * 1e9 / bin_ns, bin_ns)


def rebin(bin_start_ns: npt.ArrayLike, nbytes: npt.ArrayLike, *, bin_ns: int,
          start_ns: int | None = None, end_ns: int | None = None) -> RateSeries:
    """Coarser bins from finely binned byte counts (e.g. the TCP receiver's
    10 ms bins to 100 ms). Each fine bin counts at its start time."""
    return rate_series(bin_start_ns, nbytes, bin_ns=bin_ns, start_ns=start_ns, end_ns=end_ns)


def mean_rate_bps(times_ns: npt.ArrayLike, sizes: npt.ArrayLike, start_ns: int,
                  end_ns: int) -> float:
    """Bytes with ``start_ns <= t < end_ns``, as bit/s over that interval."""
    if end_ns <= start_ns:
        raise ValueError(f"empty interval [{start_ns}, {end_ns})")
    times = np.asarray(times_ns, dtype=np.int64)
    weights = np.asarray(sizes, dtype=np.float64)
    keep = (times >= start_ns) & (times < end_ns)
    return float(weights[keep].sum() * 8.0 * 1e9 / (end_ns - start_ns))


def hold_values(times_ns: npt.ArrayLike, values: npt.ArrayLike,
                query_ns: npt.ArrayLike) -> FloatArray:
    """The value of a step signal (each value holds from its time until the
    next) at each query time; NaN before the first change."""
    times = np.asarray(times_ns, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    query = np.asarray(query_ns, dtype=np.int64)
    order = np.argsort(times, kind="stable")
    times, vals = times[order], vals[order]
    index = np.searchsorted(times, query, side="right") - 1
    out: npt.NDArray[Any] = np.full(query.shape, np.nan)
    valid = index >= 0
    out[valid] = vals[index[valid]]
    return out


def mean_held(times_ns: npt.ArrayLike, values: npt.ArrayLike, start_ns: int,
              end_ns: int) -> float:
    """The time average of a step signal over ``[start_ns, end_ns)`` (NaN where
    it is not known yet counts as nothing known: the average of the known part;
    NaN if none of it is known)."""
    if end_ns <= start_ns:
        raise ValueError(f"empty interval [{start_ns}, {end_ns})")
    times = np.asarray(times_ns, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    inside = times[(times > start_ns) & (times < end_ns)]
    edges = np.unique(np.concatenate(([start_ns], inside, [end_ns])))
    held = hold_values(times, vals, edges[:-1])
    widths = np.diff(edges).astype(np.float64)
    known = np.isfinite(held)
    if not np.any(known):
        return math.nan
    return float(np.dot(held[known], widths[known]) / widths[known].sum())
