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


# ---- predictive polling --------------------------------------------------------------


#: Deltas kept per flow for its period (the median of the newest ones).
PERIOD_SAMPLES = 16
#: Prediction errors kept per flow for its window (quantiles of the newest ones).
ERROR_SAMPLES = 32
#: A flow is polled for only when its window (error spread plus margins) fits in
#: ``max(MAX_WINDOW_NS, period / WINDOW_PERIOD_SHARE)`` (at most ``MAX_WINDOW_CAP_NS``): a
#: flow that asks irregularly costs a sleeping agent nothing extra. (The bench's 10 Hz
#: flows send 101.2 and 98.8 ms apart in turn here: ±1.2 ms around their period.)
MAX_WINDOW_NS = 2_000_000
WINDOW_PERIOD_SHARE = 25
MAX_WINDOW_CAP_NS = 5_000_000
#: Errors seen before a flow gets windows (quantiles of fewer are its extremes).
MIN_ERRORS = 8
#: How long a request takes from the flow's timestamp to the socket until measured: a
#: flow that just woke needs 80–200 µs for it (encoding on cold caches).
DEFAULT_LAG_NS = 250_000
#: Slack on each side of the learnt window (scheduling noise the samples missed).
MARGIN_NS = 40_000
#: How far the phase follows each error (a first-order phase-locked loop): small enough
#: that one late wake-up of the flow does not move the next window much.
PHASE_GAIN = 0.25


class ArrivalPredictor:
    """When one flow's next request will reach the agent, learnt from its requests.

    Flows decide periodically (OpenNetLab every 60 ms, mvfst-rl every 100 ms, the
    bench at 10–50 Hz), so the period is the median of the newest gaps between the
    flows' send timestamps, and the phase follows them with a small gain (a
    first-order phase-locked loop). The window around the prediction spans the
    5th–95th percentile of the recent prediction errors plus ``MARGIN_NS`` (a
    request outside it costs one wake-up, ~150 µs, not the deadline), shifted by
    how long the flow's requests take from their timestamp to the socket
    (``reached``, 5th–95th percentile of those read while polling). An arrival
    further than half the largest window (or half a period) from its prediction
    restarts the phase from it and is not counted as an error. ``window`` is None
    until ``MIN_ERRORS`` predictions were checked, while the error spread exceeds
    the largest window, and once the flow has skipped 4 periods.
    """

    __slots__ = (
        "deltas",
        "early_ns",
        "errors",
        "lag_high_ns",
        "lag_low_ns",
        "lags",
        "last_ns",
        "late_ns",
        "period_ns",
        "predicted_ns",
    )

    def __init__(self) -> None:
        self.last_ns = 0
        self.deltas: list[int] = []
        self.errors: list[int] = []
        self.predicted_ns = 0
        self.period_ns = 0
        self.early_ns = MARGIN_NS
        self.late_ns = MARGIN_NS
        self.lags: list[int] = []
        self.lag_low_ns, self.lag_high_ns = 0, DEFAULT_LAG_NS

    def arrived(self, t_ns: int) -> None:
        if self.last_ns and t_ns > self.last_ns:
            self.deltas.append(t_ns - self.last_ns)
            if len(self.deltas) > PERIOD_SAMPLES:
                del self.deltas[0]
        self.last_ns = t_ns
        if len(self.deltas) < 3:
            return
        self.period_ns = sorted(self.deltas)[len(self.deltas) // 2]
        error = t_ns - self.predicted_ns
        if self.predicted_ns and abs(error) < min(self.period_ns, self.max_window_ns) // 2:
            self.errors.append(error)
            if len(self.errors) > ERROR_SAMPLES:
                del self.errors[0]
            ordered = sorted(self.errors)
            n = len(ordered)
            if n >= MIN_ERRORS:
                self.early_ns = max(0, -ordered[n // 20]) + MARGIN_NS
                self.late_ns = max(0, ordered[n - 1 - n // 20]) + MARGIN_NS
            self.predicted_ns += self.period_ns + int(PHASE_GAIN * error)
        else:  # first prediction, or the flow paused / changed phase: start from here
            self.predicted_ns = t_ns + self.period_ns

    @property
    def max_window_ns(self) -> int:
        return min(MAX_WINDOW_CAP_NS, max(MAX_WINDOW_NS, self.period_ns // WINDOW_PERIOD_SHARE))

    def reached(self, lag_ns: int) -> None:
        """One request went from the flow's timestamp to the socket in ``lag_ns``."""
        self.lags.append(lag_ns)
        if len(self.lags) > ERROR_SAMPLES:
            del self.lags[0]
        if len(self.lags) >= MIN_ERRORS:
            ordered = sorted(self.lags)
            n = len(ordered)
            self.lag_low_ns, self.lag_high_ns = ordered[n // 20], ordered[n - 1 - n // 20]

    def window(self, now_ns: int) -> tuple[int, int] | None:
        """(open, close) of the next expected request in CLOCK_MONOTONIC ns."""
        if len(self.errors) < MIN_ERRORS or self.early_ns + self.late_ns > self.max_window_ns:
            return None
        predicted = self.predicted_ns
        if now_ns > predicted + self.late_ns:  # it did not come: a period (or more) later
            skipped = (now_ns - predicted - self.late_ns) // self.period_ns + 1
            if skipped > 4:
                return None
            predicted += skipped * self.period_ns
        return (predicted - self.early_ns + self.lag_low_ns,
                predicted + self.late_ns + self.lag_high_ns)


class SpinBudget:
    """A token bucket of CPU time for busy-polling: ``share`` of one core on average,
    with bursts of at most ``share`` × 1 s. Spinning stops when it runs dry."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.capacity_ns = int(share * 1e9)
        self.tokens_ns = self.capacity_ns
        self.stamp_ns = 0
        self.spent_ns = 0
        self.refused = 0

    def available(self, now_ns: int) -> bool:
        if self.share <= 0:
            return False
        if self.stamp_ns:
            self.tokens_ns = min(self.capacity_ns,
                                 self.tokens_ns + int((now_ns - self.stamp_ns) * self.share))
        self.stamp_ns = now_ns
        if self.tokens_ns <= 0:
            self.refused += 1
            return False
        return True

    def spend(self, ns: int) -> None:
        self.tokens_ns -= ns
        self.spent_ns += ns
