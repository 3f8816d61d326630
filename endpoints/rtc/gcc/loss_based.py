"""Loss-based controller (draft-ietf-rmcat-gcc-02 §6; libwebrtc
goog_cc/send_side_bandwidth_estimation.cc for the mechanics).

A loss report is taken once feedback has covered at least 20 packets
(libwebrtc's kLimitNumPackets); with its loss fraction p:
* p < 2 %: As = 1.05 × As + 1 kbit/s (the draft's 5 %; libwebrtc uses 8 %
  of the last second's minimum);
* 2 % ≤ p ≤ 10 %: hold;
* p > 10 %: As = As × (1 - 0.5 p), at most once per 300 ms + RTT.
As is kept at or below the delay-based estimate (libwebrtc clamps its
target to the delay-based limit the same way), so without loss the
delay-based controller sets the pace and the target is min(As, Ad).
Time is in ms, injected.
"""

from __future__ import annotations

LOW_LOSS_THRESHOLD = 0.02
HIGH_LOSS_THRESHOLD = 0.10
INCREASE_FACTOR = 1.05
INCREASE_EXTRA_BPS = 1_000
DECREASE_INTERVAL_MS = 300.0
MIN_PACKETS_PER_REPORT = 20


class LossBasedControl:
    def __init__(self, start_bitrate_bps: float, *, min_bitrate_bps: float = 5_000,
                 max_bitrate_bps: float = 1e9,
                 increase_factor: float = INCREASE_FACTOR) -> None:
        self.min_bitrate_bps = min_bitrate_bps
        self.max_bitrate_bps = max_bitrate_bps
        self.increase_factor = increase_factor
        self.estimate_bps = float(start_bitrate_bps)
        self.rtt_ms = 0.0
        self.last_loss_fraction = 0.0
        self._lost = 0
        self._expected = 0
        self._last_decrease_ms: float | None = None

    def set_rtt(self, rtt_ms: float) -> None:
        self.rtt_ms = rtt_ms

    def on_packets(self, lost: int, expected: int, now_ms: float,
                   upper_limit_bps: float = float("inf")) -> float:
        """Account a report's losses; returns the (possibly updated) estimate."""
        self._lost += lost
        self._expected += expected
        if self._expected < MIN_PACKETS_PER_REPORT:
            return self.estimate_bps
        loss = self._lost / self._expected
        self._lost = self._expected = 0
        self.last_loss_fraction = loss
        if loss < LOW_LOSS_THRESHOLD:
            self._set(self.estimate_bps * self.increase_factor + INCREASE_EXTRA_BPS,
                      upper_limit_bps)
        elif loss > HIGH_LOSS_THRESHOLD and (
                self._last_decrease_ms is None
                or now_ms - self._last_decrease_ms >= DECREASE_INTERVAL_MS + self.rtt_ms):
            self._last_decrease_ms = now_ms
            self._set(self.estimate_bps * (1 - 0.5 * loss), upper_limit_bps)
        return self.estimate_bps

    def cap(self, upper_limit_bps: float) -> None:
        """Keep the estimate at or below another limit (the delay-based one)."""
        self._set(self.estimate_bps, upper_limit_bps)

    def _set(self, bitrate_bps: float, upper_limit_bps: float) -> None:
        upper = min(self.max_bitrate_bps, upper_limit_bps)
        self.estimate_bps = max(self.min_bitrate_bps, min(upper, bitrate_bps))
