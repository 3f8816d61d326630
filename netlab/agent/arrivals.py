"""When each flow's next request will reach the agent, learnt from its requests
(what the agent's warm-ups and busy-polling are timed by)."""

from __future__ import annotations

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
