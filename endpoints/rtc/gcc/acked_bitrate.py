"""Acknowledged (received) bitrate from transport feedback.

The throughput that AIMD's decrease and increase limit are based on. A
sliding window over receive times of 150 ms (libwebrtc's BitrateEstimator
``noninitial_window_ms``) rather than libwebrtc's Bayesian filter over such
windows (goog_cc/bitrate_estimator.cc): that filter weighs a sample by its
distance from the estimate, so after a drop from 2.4 to 0.8 Mbit/s it still
reads 1.36 Mbit/s 600 ms later, and the first decrease (0.85 × this rate)
then leaves the sender above the new capacity, filling the queue. A 500 ms
window measured here gave a step-down (2 → 1 Mbit/s) p95 delay of
300–380 ms, 150 ms gave 190 ms (bench/endpoints.py).
"""

from __future__ import annotations

from collections import deque

DEFAULT_WINDOW_US = 150_000
MIN_SPAN_US = 100_000


class AckedBitrateEstimator:
    def __init__(self, window_us: int = DEFAULT_WINDOW_US) -> None:
        self.window_us = window_us
        self._packets: deque[tuple[int, int]] = deque()  # (arrival µs, bytes)
        self._bytes = 0
        self._first_arrival_us: int | None = None
        self._last_arrival_us: int | None = None

    def on_packet(self, arrival_us: int, size: int) -> None:
        if self._first_arrival_us is None:
            self._first_arrival_us = arrival_us
        self._last_arrival_us = (arrival_us if self._last_arrival_us is None
                                 else max(self._last_arrival_us, arrival_us))
        self._packets.append((arrival_us, size))
        self._bytes += size
        horizon = self._last_arrival_us - self.window_us
        while self._packets and self._packets[0][0] <= horizon:
            self._bytes -= self._packets.popleft()[1]

    def bitrate_bps(self) -> float | None:
        if self._first_arrival_us is None or self._last_arrival_us is None:
            return None
        span = self._last_arrival_us - self._first_arrival_us
        if span >= self.window_us:
            return self._bytes * 8 * 1_000_000 / self.window_us
        if span < MIN_SPAN_US:
            return None
        # Early on: the first packet opens the interval, it does not count in it.
        first_size = self._packets[0][1]
        return (self._bytes - first_size) * 8 * 1_000_000 / span
