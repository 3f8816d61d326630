"""Overuse detector with an adaptive threshold (draft-ietf-rmcat-gcc-02 §5.4-5.5).

Constants are libwebrtc's (goog_cc/trendline_estimator.cc): initial
threshold 12.5, k_up 0.0087, k_down 0.039, threshold clamped to 6..600,
no adaptation when |m| exceeds the threshold by more than 15 (a latency spike
from a sudden capacity drop), at most 100 ms of adaptation per update, and
overuse declared only after the signal stayed above the threshold for more
than 10 ms and more than one update while the trend is not falling.
"""

from __future__ import annotations

import enum

K_UP = 0.0087
K_DOWN = 0.039
INITIAL_THRESHOLD = 12.5
MIN_THRESHOLD, MAX_THRESHOLD = 6.0, 600.0
MAX_ADAPT_OFFSET = 15.0
OVERUSING_TIME_THRESHOLD_MS = 10.0
MAX_TIME_DELTA_MS = 100.0


class BandwidthUsage(enum.Enum):
    NORMAL = "normal"
    UNDERUSING = "underusing"
    OVERUSING = "overusing"


class OveruseDetector:
    def __init__(self, *, k_up: float = K_UP, k_down: float = K_DOWN,
                 overusing_time_threshold_ms: float = OVERUSING_TIME_THRESHOLD_MS) -> None:
        self.k_up = k_up
        self.k_down = k_down
        self.overusing_time_threshold_ms = overusing_time_threshold_ms
        self.threshold = INITIAL_THRESHOLD
        self.state = BandwidthUsage.NORMAL
        self._time_over_using_ms = -1.0
        self._overuse_counter = 0
        self._previous_trend = 0.0
        self._last_update_ms: float | None = None

    def detect(self, modified_trend: float, trend: float, send_delta_ms: float,
               now_ms: float) -> BandwidthUsage:
        """One detector step; ``modified_trend`` is the gain-scaled slope m(t)."""
        if modified_trend > self.threshold:
            if self._time_over_using_ms < 0:
                # Assume overuse started halfway since the previous sample.
                self._time_over_using_ms = send_delta_ms / 2
            else:
                self._time_over_using_ms += send_delta_ms
            self._overuse_counter += 1
            if (self._time_over_using_ms > self.overusing_time_threshold_ms
                    and self._overuse_counter > 1 and trend >= self._previous_trend):
                self._time_over_using_ms = 0.0
                self._overuse_counter = 0
                self.state = BandwidthUsage.OVERUSING
        elif modified_trend < -self.threshold:
            self._time_over_using_ms = -1.0
            self._overuse_counter = 0
            self.state = BandwidthUsage.UNDERUSING
        else:
            self._time_over_using_ms = -1.0
            self._overuse_counter = 0
            self.state = BandwidthUsage.NORMAL
        self._previous_trend = trend
        self._update_threshold(modified_trend, now_ms)
        return self.state

    def _update_threshold(self, modified_trend: float, now_ms: float) -> None:
        if self._last_update_ms is None:
            self._last_update_ms = now_ms
        magnitude = abs(modified_trend)
        if magnitude > self.threshold + MAX_ADAPT_OFFSET:
            self._last_update_ms = now_ms
            return
        k = self.k_down if magnitude < self.threshold else self.k_up
        time_delta_ms = min(now_ms - self._last_update_ms, MAX_TIME_DELTA_MS)
        self.threshold += k * (magnitude - self.threshold) * time_delta_ms
        self.threshold = min(MAX_THRESHOLD, max(MIN_THRESHOLD, self.threshold))
        self._last_update_ms = now_ms
