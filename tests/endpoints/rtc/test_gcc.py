"""GCC on synthetic arrival patterns, and its stages one by one."""

from __future__ import annotations

import itertools

import pytest

from endpoints.rtc.gcc import (
    AckedBitrateEstimator,
    AimdRateControl,
    BandwidthUsage,
    InterArrival,
    LossBasedControl,
    OveruseDetector,
    RateControlState,
    SendSideBwe,
    TrendlineEstimator,
)
from endpoints.rtc.twcc import PacketResult

PACKET = 1200  # bytes


class Path:
    """A FIFO bottleneck: base delay + serialisation at ``capacity_bps`` (pure)."""

    def __init__(self, capacity_bps: float, base_delay_us: int = 20_000,
                 loss_every: int = 0) -> None:
        self.capacity_bps = capacity_bps
        self.base_delay_us = base_delay_us
        self.loss_every = loss_every
        self._link_free_us = 0.0
        self._count = 0

    def arrival(self, send_us: int, size: int) -> int | None:
        self._count += 1
        if self.loss_every and self._count % self.loss_every == 0:
            return None
        start = max(float(send_us), self._link_free_us)
        self._link_free_us = start + size * 8 * 1e6 / self.capacity_bps
        return int(self._link_free_us) + self.base_delay_us


def run(bwe: SendSideBwe, path: Path, seconds: float, *, feedback_us: int = 100_000,
        fixed_send_bps: float | None = None) -> list[tuple[int, float, BandwidthUsage]]:
    """Closed loop (sender rate = target, unless fixed): returns (time, target, usage)."""
    log = []
    now = 0
    next_send = 0.0
    seq = 0
    pending: list[PacketResult] = []
    while now < seconds * 1e6:
        next_feedback = now + feedback_us
        while next_send < next_feedback:
            send_us = int(next_send)
            pending.append(PacketResult(seq, send_us, PACKET, path.arrival(send_us, PACKET)))
            seq += 1
            rate = fixed_send_bps or bwe.target_bps
            next_send += PACKET * 8 * 1e6 / rate
        now = next_feedback
        # Feedback covers what has arrived by now (+ what is lost).
        ready = [r for r in pending if r.arrival_time_us is None or r.arrival_time_us <= now]
        pending = [r for r in pending if r not in ready]
        bwe.on_feedback(ready, now)
        log.append((now, bwe.target_bps, bwe.usage))
    return log


def test_constant_delay_never_overuses_and_the_rate_grows() -> None:
    bwe = SendSideBwe(start_bitrate_bps=300_000)
    log = run(bwe, Path(capacity_bps=100e6), seconds=5)
    assert all(usage is not BandwidthUsage.OVERUSING for _, _, usage in log)
    targets = [t for _, t, _ in log]
    assert all(b >= a for a, b in itertools.pairwise(targets))
    # Multiplicative increase of 8 %/s: 300k·1.08^5 ≈ 441k.
    assert 400_000 < targets[-1] < 480_000


def test_growing_queue_is_overuse_and_backs_off_to_085_of_received_rate() -> None:
    capacity = 500_000
    bwe = SendSideBwe(start_bitrate_bps=1_000_000)
    log = run(bwe, Path(capacity_bps=capacity), seconds=3)
    first_overuse = next(i for i, (_, _, usage) in enumerate(log)
                         if usage is BandwidthUsage.OVERUSING)
    assert log[first_overuse][0] <= 1_500_000, "a doubling of the queue rate is seen within 1.5 s"
    first_decrease = next(t for _, t, _ in log[first_overuse:] if t < 1_000_000)
    assert first_decrease == pytest.approx(0.85 * capacity, rel=0.06)
    # Afterwards the target stays near the capacity, not far below or above.
    late = [t for time, t, _ in log if time > 2_000_000]
    assert 0.6 * capacity < min(late) and max(late) < 1.1 * capacity


def test_fifteen_percent_loss_decreases_by_one_minus_half_the_loss() -> None:
    bwe = SendSideBwe(start_bitrate_bps=1_000_000)
    # Every 7th packet lost = 14.3 % loss, no queue (capacity far above the rate).
    log = run(bwe, Path(capacity_bps=100e6, loss_every=7), seconds=3)
    targets = [t for _, t, _ in log]
    drops = [b / a for a, b in itertools.pairwise(targets) if b < a]
    assert drops, "loss above 10 % must decrease the target"
    loss = bwe.loss_based.last_loss_fraction
    assert 0.12 < loss < 0.17
    # Each decrease is x(1 - 0.5·loss) for that report's loss (≈ 0.93).
    assert all(0.90 < d < 0.95 for d in drops)
    assert targets[-1] < 0.8 * 1_000_000


def test_loss_based_rules() -> None:
    control = LossBasedControl(1_000_000)
    assert control.on_packets(15, 100, now_ms=0) == pytest.approx(1_000_000 * (1 - 0.075))
    # Not again within 300 ms + RTT.
    assert control.on_packets(15, 100, now_ms=100) == pytest.approx(925_000)
    assert control.on_packets(15, 100, now_ms=400) == pytest.approx(925_000 * 0.925)
    held = control.estimate_bps
    assert control.on_packets(5, 100, now_ms=1000) == held  # 5 %: hold
    assert control.on_packets(1, 100, now_ms=2000) == pytest.approx(held * 1.05 + 1000)
    # Fewer than 20 packets: accumulate, no decision yet.
    before = control.estimate_bps
    assert control.on_packets(5, 10, now_ms=3000) == before
    assert control.on_packets(5, 10, now_ms=3100) < before  # 10/20 = 50 % loss
    # Never above the delay-based limit.
    assert control.on_packets(0, 100, now_ms=4000, upper_limit_bps=200_000) == 200_000


def test_inter_arrival_groups_5ms_of_sends() -> None:
    inter = InterArrival()
    deltas = []
    # Groups of 3 packets sent 1 ms apart, groups 20 ms apart, arriving 30 ms later.
    for group in range(4):
        for k in range(3):
            send = group * 20_000 + k * 1_000
            out = inter.compute_deltas(send, send + 30_000, 1000)
            if out is not None:
                deltas.append(out)
    assert [(d.send_delta_ms, d.arrival_delta_ms) for d in deltas] == [(20.0, 20.0)] * 2
    assert all(d.size_delta == 0 for d in deltas)


def test_inter_arrival_keeps_bursts_together() -> None:
    inter = InterArrival()
    inter.compute_deltas(0, 50_000, 1000)
    # Sent 10 ms later but arrives 1 ms after the previous one: queued behind it.
    assert inter.compute_deltas(10_000, 51_000, 1000) is None
    out = inter.compute_deltas(40_000, 80_000, 1000)  # a new group completes the burst
    assert out is None  # only one group pair complete so far
    out = inter.compute_deltas(80_000, 120_000, 1000)
    assert out is not None and out.send_delta_ms == pytest.approx(30.0)


def test_trendline_slope_follows_queue_growth() -> None:
    trend = TrendlineEstimator()
    # Each 10 ms group arrives 1 ms later than sent: delay grows 0.1 ms per ms.
    for i in range(100):
        trend.update(recv_delta_ms=11.0, send_delta_ms=10.0, arrival_time_ms=11.0 * i)
    assert trend.trend == pytest.approx(1 / 11, rel=0.05)
    assert trend.state is BandwidthUsage.OVERUSING
    flat = TrendlineEstimator()
    for i in range(100):
        flat.update(10.0, 10.0, 10.0 * i)
    assert flat.trend == pytest.approx(0.0, abs=1e-9)
    assert flat.state is BandwidthUsage.NORMAL


def test_overuse_detector_needs_10ms_and_two_samples_and_adapts() -> None:
    detector = OveruseDetector()
    assert detector.detect(20.0, 0.1, send_delta_ms=5, now_ms=0) is BandwidthUsage.NORMAL
    assert detector.detect(20.0, 0.1, send_delta_ms=5, now_ms=5) is BandwidthUsage.NORMAL
    assert detector.detect(20.0, 0.1, send_delta_ms=5, now_ms=10) is BandwidthUsage.OVERUSING
    assert detector.detect(-30.0, -0.1, 5, 15) is BandwidthUsage.UNDERUSING
    # Small signals pull the threshold down (k_down), never below 6.
    quiet = OveruseDetector()
    for step in range(200):
        quiet.detect(0.0, 0.0, 5, step * 100.0)
    assert quiet.threshold == 6.0
    # Spikes above threshold + 15 do not move it.
    spiky = OveruseDetector()
    spiky.detect(100.0, 1.0, 5, 0)
    spiky.detect(100.0, 1.0, 5, 100)
    assert spiky.threshold == 12.5


def test_aimd_state_machine() -> None:
    aimd = AimdRateControl(1_000_000)
    # The first increase step has no elapsed time: libwebrtc's 1 kbit/s minimum.
    assert aimd.update(BandwidthUsage.NORMAL, 1_000_000, 0) == 1_001_000
    assert aimd.state is RateControlState.INCREASE
    grown = aimd.update(BandwidthUsage.NORMAL, 1_000_000, 1000)
    assert grown == pytest.approx(1_001_000 * 1.08)
    assert aimd.update(BandwidthUsage.OVERUSING, 600_000, 1100) == pytest.approx(510_000)
    assert aimd.state.value == RateControlState.HOLD.value  # (mypy narrows `is` too eagerly)
    assert aimd.link_capacity.estimate_kbps == pytest.approx(600)
    assert aimd.update(BandwidthUsage.UNDERUSING, 600_000, 1200) == pytest.approx(510_000)
    aimd.update(BandwidthUsage.NORMAL, 520_000, 1300)  # hold → increase, now additive
    after = aimd.update(BandwidthUsage.NORMAL, 520_000, 2300)
    assert 510_000 < after < 510_000 + 20_000  # ~ one packet per response time, not 8 %
    # The increase never runs beyond 1.5 × throughput + 10 kbit/s.
    capped = AimdRateControl(1_000_000)
    capped.update(BandwidthUsage.NORMAL, 100_000, 0)
    assert capped.update(BandwidthUsage.NORMAL, 100_000, 1000) == 1_000_000


def test_acked_bitrate_window() -> None:
    acked = AckedBitrateEstimator()
    assert acked.bitrate_bps() is None
    for i in range(200):  # 1000 bytes every 10 ms = 800 kbit/s
        acked.on_packet(i * 10_000, 1000)
    rate = acked.bitrate_bps()
    assert rate is not None and rate == pytest.approx(800_000, rel=0.03)


def test_remb_caps_the_target() -> None:
    bwe = SendSideBwe(start_bitrate_bps=1_000_000)
    assert bwe.on_remb(400_000) == 400_000
    # 0 lifts the limit; the target then climbs back through the controllers.
    assert bwe.on_remb(0) == 400_000
    assert bwe.remote_limit_bps == float("inf")


def test_inter_arrival_drops_reordered_groups_and_resets_after_three() -> None:
    inter = InterArrival()
    inter.compute_deltas(0, 100_000, 1000)  # group A completes at 100 ms
    inter.compute_deltas(10_000, 150_000, 1000)  # group B ...
    inter.compute_deltas(12_000, 90_000, 1000)  # ... whose last packet is stamped at 90 ms
    # B "completed" before A: each packet that would close B is dropped; the third resets.
    assert inter.compute_deltas(30_000, 200_000, 1000) is None
    assert inter.compute_deltas(40_000, 210_000, 1000) is None
    assert inter.compute_deltas(50_000, 220_000, 1000) is None
    assert inter.compute_deltas(60_000, 230_000, 1000) is None  # afresh: first group
    assert inter.compute_deltas(70_000, 240_000, 1000) is None  # second group opens
    out = inter.compute_deltas(80_000, 250_000, 1000)
    assert out is not None and out.arrival_delta_ms == pytest.approx(10.0)


def test_congestion_window_follows_feedback_rtt_and_target() -> None:
    """libwebrtc's default window: target x (min of the largest feedback RTTs + 350 ms)."""
    bwe = SendSideBwe(start_bitrate_bps=800_000)
    assert bwe.congestion_window is not None
    assert bwe.pushback_bps(10**9) == bwe.target_bps  # no feedback yet: no window
    # One feedback 70 ms after the oldest packet it reports was sent.
    results = [PacketResult(seq, 10_000 + 5_000 * seq, PACKET, 40_000 + 5_000 * seq)
               for seq in range(5)]
    bwe.on_feedback(results, 80_000)
    window = bwe.congestion_window.data_window_bytes
    assert window == pytest.approx(bwe.target_bps / 8 * (0.070 + 0.350), rel=0.01)
    assert bwe.pushback_bps(0.5 * window) == bwe.target_bps
    assert bwe.pushback_bps(2 * window) == pytest.approx(0.9 * bwe.target_bps)
    bwe.on_process_interval()
    assert bwe.congestion_window.data_window_bytes == pytest.approx(window, rel=0.01)


def test_congestion_window_can_be_turned_off() -> None:
    bwe = SendSideBwe(start_bitrate_bps=800_000, congestion_window_queue_ms=0)
    assert bwe.congestion_window is None
    assert bwe.pushback_bps(10**9) == bwe.target_bps
    with pytest.raises(ValueError, match="congestion_window_queue_ms"):
        SendSideBwe(congestion_window_queue_ms=-1)
