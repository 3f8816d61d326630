"""AIMD rate control for the delay-based estimate (draft-ietf-rmcat-gcc-02
§5.5, libwebrtc remote_bitrate_estimator/aimd_rate_control.cc).

A three-state machine driven by the overuse detector: *decrease* sets the
rate to 0.85 × the measured (acknowledged) throughput, then *hold* until the
signal is normal again; *increase* is multiplicative (8 % per second) while
the link capacity is unknown and additive (about half a packet per response
time) once an overuse has measured it, and never beyond 1.5 × throughput +
10 kbit/s. The link capacity estimate is an exponential average of the
throughputs seen at overuse, with a normalised variance that decides when the
estimate is stale (libwebrtc goog_cc/link_capacity_estimator.cc).
"""

from __future__ import annotations

import enum
import math

from endpoints.rtc.gcc.overuse_detector import BandwidthUsage

BETA = 0.85
MULTIPLICATIVE_ALPHA = 1.08
MIN_INCREASE_BPS = 1_000
MIN_NEAR_MAX_INCREASE_BPS_PER_S = 4_000
DEFAULT_RTT_MS = 200.0
DEFAULT_MIN_BITRATE_BPS = 5_000  # libwebrtc congestion_controller::GetMinBitrate()
DEFAULT_MAX_BITRATE_BPS = 30_000_000


class RateControlState(enum.Enum):
    HOLD = "hold"
    INCREASE = "increase"
    DECREASE = "decrease"


class LinkCapacityEstimator:
    """Throughput at overuse, averaged, with a deviation band (kbit/s internally)."""

    def __init__(self) -> None:
        self.estimate_kbps: float | None = None
        self._deviation_kbps = 0.4

    def reset(self) -> None:
        self.estimate_kbps = None

    def _deviation(self) -> float:
        assert self.estimate_kbps is not None
        return math.sqrt(self._deviation_kbps * self.estimate_kbps)

    def upper_bound_bps(self) -> float:
        if self.estimate_kbps is None:
            return math.inf
        return (self.estimate_kbps + 3 * self._deviation()) * 1000

    def lower_bound_bps(self) -> float:
        if self.estimate_kbps is None:
            return 0.0
        return (self.estimate_kbps - 3 * self._deviation()) * 1000

    def on_overuse_detected(self, acknowledged_bps: float) -> None:
        sample = acknowledged_bps / 1000
        alpha = 0.05
        if self.estimate_kbps is None:
            self.estimate_kbps = sample
        else:
            self.estimate_kbps = (1 - alpha) * self.estimate_kbps + alpha * sample
        norm = max(self.estimate_kbps, 1.0)
        error = self.estimate_kbps - sample
        self._deviation_kbps = (1 - alpha) * self._deviation_kbps + alpha * error * error / norm
        self._deviation_kbps = min(2.5, max(0.4, self._deviation_kbps))


class AimdRateControl:
    def __init__(self, start_bitrate_bps: float, *,
                 min_bitrate_bps: float = DEFAULT_MIN_BITRATE_BPS,
                 max_bitrate_bps: float = DEFAULT_MAX_BITRATE_BPS, beta: float = BETA) -> None:
        if not 0 < beta < 1:
            raise ValueError("beta must be in (0, 1)")
        self.min_bitrate_bps = min_bitrate_bps
        self.max_bitrate_bps = max_bitrate_bps
        self.beta = beta
        self.current_bps = self._clamp(start_bitrate_bps)
        self.state = RateControlState.HOLD
        self.link_capacity = LinkCapacityEstimator()
        self.rtt_ms = DEFAULT_RTT_MS
        self._latest_throughput_bps = self.current_bps
        self._last_change_ms: float | None = None
        self.last_decrease_bps: float | None = None

    def _clamp(self, bitrate_bps: float) -> float:
        return min(self.max_bitrate_bps, max(self.min_bitrate_bps, bitrate_bps))

    def set_rtt(self, rtt_ms: float) -> None:
        self.rtt_ms = rtt_ms

    def set_estimate(self, bitrate_bps: float, now_ms: float) -> None:
        self.current_bps = self._clamp(bitrate_bps)
        self._last_change_ms = now_ms

    def time_to_reduce_further(self, now_ms: float, throughput_bps: float) -> bool:
        """Decrease at most once per RTT (10..200 ms) unless throughput halved."""
        interval_ms = min(200.0, max(10.0, self.rtt_ms))
        if self._last_change_ms is None or now_ms - self._last_change_ms >= interval_ms:
            return True
        return throughput_bps < 0.5 * self.current_bps

    def update(self, usage: BandwidthUsage, throughput_bps: float | None, now_ms: float) -> float:
        """One control step; returns the new delay-based target in bps."""
        if throughput_bps is not None:
            self._latest_throughput_bps = throughput_bps
        throughput = self._latest_throughput_bps
        self._change_state(usage, now_ms)
        new_bps: float | None = None
        if self.state is RateControlState.INCREASE:
            if throughput > self.link_capacity.upper_bound_bps():
                self.link_capacity.reset()  # far above what we measured: capacity grew
            limit = 1.5 * throughput + 10_000
            if self.current_bps < limit:
                if self.link_capacity.estimate_kbps is not None:
                    increase = self._additive_increase(now_ms)
                else:
                    increase = self._multiplicative_increase(now_ms)
                new_bps = min(self.current_bps + increase, limit)
            self._last_change_ms = now_ms
        elif self.state is RateControlState.DECREASE:
            decreased = throughput * self.beta
            if decreased > self.current_bps and self.link_capacity.estimate_kbps is not None:
                decreased = self.beta * self.link_capacity.estimate_kbps * 1000
            if decreased < self.current_bps:
                new_bps = decreased
                if throughput < self.current_bps:
                    self.last_decrease_bps = self.current_bps - decreased
            if throughput < self.link_capacity.lower_bound_bps():
                self.link_capacity.reset()
            self.link_capacity.on_overuse_detected(throughput)
            self.state = RateControlState.HOLD  # let the queues drain
            self._last_change_ms = now_ms
        if new_bps is not None:
            self.current_bps = self._clamp(new_bps)
        return self.current_bps

    def _change_state(self, usage: BandwidthUsage, now_ms: float) -> None:
        if usage is BandwidthUsage.NORMAL:
            if self.state is RateControlState.HOLD:
                self._last_change_ms = now_ms
                self.state = RateControlState.INCREASE
        elif usage is BandwidthUsage.OVERUSING:
            self.state = RateControlState.DECREASE
        else:
            self.state = RateControlState.HOLD

    def _multiplicative_increase(self, now_ms: float) -> float:
        alpha = MULTIPLICATIVE_ALPHA
        if self._last_change_ms is not None:
            elapsed_s = min((now_ms - self._last_change_ms) / 1000, 1.0)
            alpha = alpha ** max(0.0, elapsed_s)
        return max(self.current_bps * (alpha - 1.0), MIN_INCREASE_BPS)

    def near_max_increase_bps_per_s(self) -> float:
        """About one average packet per response time (RTT + 100 ms), doubled."""
        frame_bytes = self.current_bps / 8 / 30
        packets_per_frame = max(1.0, math.ceil(frame_bytes / 1200))
        packet_bits = frame_bytes / packets_per_frame * 8
        response_time_s = 2 * (self.rtt_ms + 100) / 1000
        return max(MIN_NEAR_MAX_INCREASE_BPS_PER_S, packet_bits / response_time_s)

    def _additive_increase(self, now_ms: float) -> float:
        if self._last_change_ms is None:
            return 0.0
        elapsed_s = max(0.0, now_ms - self._last_change_ms) / 1000
        return self.near_max_increase_bps_per_s() * elapsed_s
