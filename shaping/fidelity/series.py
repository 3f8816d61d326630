"""Small numeric helpers: step functions over absolute time, percentiles of errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StepSeries:
    """A value that holds from ``times_ns[i]`` until ``times_ns[i + 1]`` (the last one forever).

    NaN values mean "not defined" (e.g. an unshaped rate).
    """

    times_ns: IntArray
    values: FloatArray

    def __post_init__(self) -> None:
        if len(self.times_ns) != len(self.values):
            raise ValueError("a step series needs one value per time")
        if len(self.times_ns) and np.any(np.diff(self.times_ns) < 0):
            raise ValueError("step times must not decrease")

    def at(self, t_ns: npt.ArrayLike) -> FloatArray:
        """Values in force at ``t_ns`` (NaN before the first step)."""
        t = np.asarray(t_ns, dtype=np.int64)
        index = np.searchsorted(self.times_ns, t, side="right") - 1
        out = np.full(t.shape, np.nan)
        ok = index >= 0
        out[ok] = self.values[index[ok]]
        return out

    def integrate(self, edges_ns: IntArray) -> FloatArray:
        """Integral (value x seconds) over each ``[edges[k], edges[k+1])``; NaN where undefined.

        Bins before the first step, or touching a NaN value, are NaN.
        """
        edges = np.asarray(edges_ns, dtype=np.int64)
        out = np.full(len(edges) - 1, np.nan)
        if len(self.times_ns) == 0:
            return out
        for k in range(len(edges) - 1):
            lo, hi = int(edges[k]), int(edges[k + 1])
            if lo < self.times_ns[0] or hi <= lo:
                continue
            first = int(np.searchsorted(self.times_ns, lo, side="right")) - 1
            last = int(np.searchsorted(self.times_ns, hi, side="left"))
            starts = np.maximum(self.times_ns[first:last], lo)
            ends = np.append(self.times_ns[first + 1 : last], hi)
            ends = np.minimum(ends, hi)
            widths = (ends - starts).astype(np.float64) / 1e9
            values = self.values[first:last]
            used = widths > 0
            if np.any(np.isnan(values[used])):
                continue
            out[k] = float(np.dot(values[used], widths[used]))
        return out


def step_series(times_ns: npt.ArrayLike, values: npt.ArrayLike) -> StepSeries:
    return StepSeries(np.asarray(times_ns, dtype=np.int64), np.asarray(values, dtype=np.float64))


def percentiles_ms(errors_ns: npt.ArrayLike, keys: tuple[str, ...] = ("p50", "p99", "max")
                   ) -> dict[str, float] | None:
    """``{p50, p99, max}`` (as asked) of errors in ns, in milliseconds; None when empty.

    Linear interpolation between order statistics (numpy's default), so p99 of
    fewer than 100 samples lies between the two largest.
    """
    values = np.asarray(errors_ns, dtype=np.float64)
    if values.size == 0:
        return None
    points = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9, "max": 100.0}
    result: dict[str, Any] = {}
    for key in keys:
        result[key] = round(float(np.percentile(values, points[key])) / 1e6, 4)
    return result
