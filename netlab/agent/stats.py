"""Decision-latency accounting: a log-spaced histogram for the whole run and
the most recent samples for exact percentiles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Bucket upper edges in µs: 1, 1.26, 1.58, ... (10 per decade) up to 10 s.
_EDGES_US = np.logspace(0, 7, 71)
RECENT = 1 << 16


class LatencyStats:
    def __init__(self) -> None:
        self.counts = np.zeros(len(_EDGES_US) + 1, dtype=np.int64)
        self._recent = np.zeros(RECENT, dtype=np.float64)
        self.total = 0
        self.max_us = 0.0

    def add(self, latency_us: float) -> None:
        self.counts[int(np.searchsorted(_EDGES_US, latency_us))] += 1
        self._recent[self.total % RECENT] = latency_us
        self.total += 1
        self.max_us = max(self.max_us, latency_us)

    def percentiles(self) -> dict[str, float | None]:
        return percentiles(self._recent[:min(self.total, RECENT)])

    def histogram(self) -> dict[str, Any]:
        nonzero = np.nonzero(self.counts)[0]
        return {"upper_edges_us": [round(float(_EDGES_US[i]), 2) if i < len(_EDGES_US)
                                   else math.inf for i in nonzero],
                "counts": [int(self.counts[i]) for i in nonzero]}


def percentiles(samples: Any) -> dict[str, float | None]:
    """p50/p99/p999 in µs (None without samples), the results contract's keys."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return {"p50": None, "p99": None, "p999": None}
    p50, p99, p999 = np.percentile(values, [50, 99, 99.9])
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1),
            "p999": round(float(p999), 1)}
