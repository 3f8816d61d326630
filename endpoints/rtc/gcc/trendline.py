"""Trendline delay-gradient estimator (libwebrtc goog_cc/trendline_estimator.cc).

Accumulates the one-way delay variation d(i) = Δarrival - Δsend of packet
groups, smooths it exponentially (coefficient 0.9), and fits a least-squares
line over the last 20 (arrival time, smoothed delay) points. The slope,
scaled by min(number of deltas, 60) × 4, is the signal the overuse detector
compares with its adaptive threshold.
"""

from __future__ import annotations

from collections import deque

from endpoints.rtc.gcc.overuse_detector import BandwidthUsage, OveruseDetector

WINDOW_SIZE = 20
SMOOTHING_COEFFICIENT = 0.9
THRESHOLD_GAIN = 4.0
MIN_NUM_DELTAS = 60
DELTA_COUNTER_MAX = 1000


def linear_fit_slope(points: deque[tuple[float, float]]) -> float | None:
    n = len(points)
    x_mean = sum(x for x, _ in points) / n
    y_mean = sum(y for _, y in points) / n
    numerator = sum((x - x_mean) * (y - y_mean) for x, y in points)
    denominator = sum((x - x_mean) ** 2 for x, _ in points)
    return None if denominator == 0 else numerator / denominator


class TrendlineEstimator:
    def __init__(self, *, window_size: int = WINDOW_SIZE,
                 smoothing_coefficient: float = SMOOTHING_COEFFICIENT,
                 threshold_gain: float = THRESHOLD_GAIN,
                 detector: OveruseDetector | None = None) -> None:
        if window_size < 2:
            raise ValueError("window_size must be at least 2")
        self.window_size = window_size
        self.smoothing_coefficient = smoothing_coefficient
        self.threshold_gain = threshold_gain
        self.detector = detector or OveruseDetector()
        self.num_deltas = 0
        self._first_arrival_ms: float | None = None
        self._accumulated_delay_ms = 0.0
        self._smoothed_delay_ms = 0.0
        self._history: deque[tuple[float, float]] = deque()
        self.trend = 0.0
        self.modified_trend = 0.0

    @property
    def state(self) -> BandwidthUsage:
        return self.detector.state

    def update(self, recv_delta_ms: float, send_delta_ms: float,
               arrival_time_ms: float) -> BandwidthUsage:
        """Feed one group delta; returns the detector state."""
        delta_ms = recv_delta_ms - send_delta_ms
        self.num_deltas = min(self.num_deltas + 1, DELTA_COUNTER_MAX)
        if self._first_arrival_ms is None:
            self._first_arrival_ms = arrival_time_ms
        self._accumulated_delay_ms += delta_ms
        a = self.smoothing_coefficient
        self._smoothed_delay_ms = a * self._smoothed_delay_ms + (1 - a) * self._accumulated_delay_ms
        self._history.append((arrival_time_ms - self._first_arrival_ms, self._smoothed_delay_ms))
        if len(self._history) > self.window_size:
            self._history.popleft()
        trend = self.trend
        if len(self._history) == self.window_size:
            # Slope ≈ (send rate - capacity) / capacity: > 0 while queues build.
            slope = linear_fit_slope(self._history)
            if slope is not None:
                trend = slope
        if self.num_deltas < 2:
            self.trend = trend
            self.detector.state = BandwidthUsage.NORMAL
            return self.detector.state
        self.modified_trend = min(self.num_deltas, MIN_NUM_DELTAS) * trend * self.threshold_gain
        self.trend = trend
        return self.detector.detect(self.modified_trend, trend, send_delta_ms, arrival_time_ms)
