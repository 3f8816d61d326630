"""GCC's congestion window with encoder pushback (libwebrtc goog_cc, on by default).

libwebrtc's RateControlSettings falls back to the field-trial string
``WebRTC-CongestionWindow/QueueSize:350,MinBitrate:30000,DropFrame:true/``
when none is set, so every libwebrtc call runs this:

* **Data window** (GoogCcNetworkController::UpdateCongestionWindowSize, on
  each feedback and each 25 ms process interval): target × (the smallest of
  the last 32 feedbacks' largest feedback RTT + 350 ms), averaged with the
  previous window, at least 2 × 1500 bytes.
* **Pushback** (CongestionWindowPushbackController::UpdateTargetBitrate, on
  every sent packet, process interval and estimate change): the bytes in
  flight over the window give a fill ratio; above 1.5 the encoding ratio is
  multiplied by 0.9, above 1 by 0.95, below 0.1 reset to 1, otherwise raised
  by 5 % up to 1. The pushed-back rate never goes below 30 kbit/s unless the
  target itself does.
* **Drop frames only** (VideoStreamEncoder, ``DropFrame:true``): the target
  is not lowered for the pacer; the encoder drops one frame in N, where N =
  max(2, target / (target - pushback)), and encodes at target - target / N.
  So the pushback removes at most half the video.

The window bounds the queue GCC builds before its delay signal reacts: after
a capacity drop the bytes in flight exceed about 350 ms of the new target,
and dropping frames drains that queue several times faster than the 0.85 ×
throughput decrease alone. In steady state the bytes in flight are about one
RTT of the target and the pushback is idle.
"""

from __future__ import annotations

from collections import deque

DEFAULT_QUEUE_MS = 350.0
DEFAULT_MIN_PUSHBACK_BPS = 30_000.0
FEEDBACK_RTT_WINDOW = 32  # kMaxFeedbackRttWindow
MIN_DATA_WINDOW_BYTES = 2 * 1500
MIN_REDUCE_RATIO = 0.01  # VideoStreamEncoder: smaller pushbacks drop no frames
MIN_DROP_INTERVAL = 2  # at most one frame in two is dropped


class CongestionWindowPushback:
    """The data window and the encoding-rate ratio it pushes back with."""

    def __init__(self, *, queue_ms: float = DEFAULT_QUEUE_MS,
                 min_pushback_bps: float = DEFAULT_MIN_PUSHBACK_BPS) -> None:
        if queue_ms <= 0:
            raise ValueError("queue_ms must be positive")
        self.queue_ms = queue_ms
        self.min_pushback_bps = min_pushback_bps
        self.data_window_bytes: float | None = None
        self.encoding_rate_ratio = 1.0
        self._feedback_max_rtts_ms: deque[float] = deque(maxlen=FEEDBACK_RTT_WINDOW)

    def on_feedback_rtt(self, max_feedback_rtt_ms: float) -> None:
        """One feedback's largest (feedback time - send time) over its received packets."""
        self._feedback_max_rtts_ms.append(max_feedback_rtt_ms)

    def update_window(self, target_bps: float) -> None:
        """Recompute the data window for ``target_bps`` (needs one feedback RTT first)."""
        if not self._feedback_max_rtts_ms:
            return
        time_window_s = (min(self._feedback_max_rtts_ms) + self.queue_ms) / 1000
        window = target_bps / 8 * time_window_s
        if self.data_window_bytes is not None:
            window = (window + self.data_window_bytes) / 2
        self.data_window_bytes = max(float(MIN_DATA_WINDOW_BYTES), window)

    def pushback_bps(self, target_bps: float, in_flight_bytes: float) -> float:
        """Update the ratio for ``in_flight_bytes``; the pushed-back target in bps."""
        if not self.data_window_bytes:
            return target_bps
        fill = in_flight_bytes / self.data_window_bytes
        if fill > 1.5:
            self.encoding_rate_ratio *= 0.9
        elif fill > 1:
            self.encoding_rate_ratio *= 0.95
        elif fill < 0.1:
            self.encoding_rate_ratio = 1.0
        else:
            self.encoding_rate_ratio = min(1.0, self.encoding_rate_ratio * 1.05)
        adjusted = target_bps * self.encoding_rate_ratio
        if adjusted < self.min_pushback_bps:
            return min(target_bps, self.min_pushback_bps)
        return adjusted


def frame_drop_interval(target_bps: float, pushback_bps: float,
                        codec_min_bps: float = 0.0) -> int | None:
    """Drop one frame in this many (None: none) for a pushback from ``target_bps``.

    libwebrtc VideoStreamEncoder::UpdateTargetBitrate with ``DropFrame:true``;
    the encoder's rate is then target - target / interval.
    """
    if target_bps <= 0 or target_bps <= codec_min_bps:
        return None
    if target_bps - pushback_bps <= MIN_REDUCE_RATIO * target_bps:
        return None
    reduce_bps = min(target_bps - pushback_bps, target_bps - codec_min_bps)
    return max(MIN_DROP_INTERVAL, int(target_bps / reduce_bps))
