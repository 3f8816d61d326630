"""GCC's congestion window and encoder pushback (libwebrtc goog_cc defaults)."""

from __future__ import annotations

import pytest

from endpoints.rtc.gcc.congestion_window import CongestionWindowPushback, frame_drop_interval


def test_no_window_before_a_feedback_rtt_and_no_pushback_without_a_window() -> None:
    window = CongestionWindowPushback()
    window.update_window(1_000_000)
    assert window.data_window_bytes is None
    assert window.pushback_bps(1_000_000, in_flight_bytes=10**9) == 1_000_000


def test_window_is_target_times_min_feedback_rtt_plus_350_ms_averaged() -> None:
    window = CongestionWindowPushback()
    for rtt in (120.0, 80.0, 150.0):
        window.on_feedback_rtt(rtt)
    window.update_window(1_000_000)
    assert window.data_window_bytes == pytest.approx(1_000_000 / 8 * 0.43)  # (80 + 350) ms
    window.update_window(200_000)  # the target fell: the window halves its way there
    assert window.data_window_bytes == pytest.approx((53_750 + 200_000 / 8 * 0.43) / 2)
    for _ in range(10):
        window.update_window(0)
    assert window.data_window_bytes == 3000  # never below two full packets


def test_only_the_last_32_feedback_rtts_count() -> None:
    window = CongestionWindowPushback()
    window.on_feedback_rtt(10.0)
    for _ in range(32):
        window.on_feedback_rtt(50.0)
    window.update_window(800_000)
    assert window.data_window_bytes == pytest.approx(800_000 / 8 * 0.4)


@pytest.mark.parametrize(("fill", "factor"), [(1.6, 0.9), (1.2, 0.95)])
def test_overfull_window_lowers_the_ratio_per_update(fill: float, factor: float) -> None:
    window = CongestionWindowPushback()
    window.on_feedback_rtt(50.0)
    window.update_window(1_000_000)
    assert window.data_window_bytes is not None
    full = window.data_window_bytes
    assert window.pushback_bps(1_000_000, fill * full) == pytest.approx(1_000_000 * factor)
    assert window.pushback_bps(1_000_000, fill * full) == pytest.approx(
        1_000_000 * factor**2)
    # Part full: back up 5 % per update, to 1 at most; almost empty: back to 1 at once.
    assert window.pushback_bps(1_000_000, 0.5 * full) == pytest.approx(
        1_000_000 * factor**2 * 1.05)
    assert window.pushback_bps(1_000_000, 0.05 * full) == 1_000_000


def test_pushback_stops_at_30_kbit_unless_the_target_is_lower() -> None:
    window = CongestionWindowPushback()
    window.on_feedback_rtt(50.0)
    window.update_window(100_000)
    for _ in range(50):
        rate = window.pushback_bps(100_000, 10**9)
    assert rate == 30_000
    assert window.pushback_bps(20_000, 10**9) == 20_000


@pytest.mark.parametrize(("pushback", "interval"), [
    (1_000_000, None),  # no pushback
    (995_000, None),  # under 1 %: libwebrtc drops nothing
    (900_000, 10),  # drop one frame in ten
    (700_000, 3),
    (100_000, 2),  # at most every other frame
])
def test_frame_drop_interval(pushback: float, interval: int | None) -> None:
    assert frame_drop_interval(1_000_000, pushback) == interval


def test_no_frame_drop_at_or_below_the_codec_minimum() -> None:
    assert frame_drop_interval(50_000, 30_000, codec_min_bps=50_000) is None
    # The drop never takes the rate below the codec minimum.
    assert frame_drop_interval(100_000, 30_000, codec_min_bps=90_000) == 10
