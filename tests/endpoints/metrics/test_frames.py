"""Frame delay from packet logs and libwebrtc's freeze rule."""

from __future__ import annotations

import numpy as np
import pytest

from endpoints.metrics.frames import frame_timing, freezes

MS = 1_000_000


def _times(gaps_ms: list[int]) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(gaps_ms))) * MS


def test_gap_above_average_plus_150ms_is_a_freeze() -> None:
    # 9 gaps of 33 ms, then 200: average (9·33 + 200) // 10 = 49,
    # threshold max(3·49, 49 + 150) = 199 <= 200.
    stats = freezes(_times([33] * 9 + [200]))
    assert stats.count == 1
    assert stats.durations_ms == (200.0,)
    assert stats.total_s == pytest.approx(0.2)
    # 190: average 48, threshold 198 > 190.
    assert freezes(_times([33] * 9 + [190])).count == 0


def test_three_times_average_branch() -> None:
    # 10 fps: 9 × 100 then 300: average 120, threshold max(360, 270) = 360.
    assert freezes(_times([100] * 9 + [300])).count == 0
    # 400: average 130, threshold max(390, 280) = 390.
    assert freezes(_times([100] * 9 + [400])).durations_ms == (400.0,)


def test_needs_five_intervals_and_counts_each_freeze() -> None:
    assert freezes(_times([33, 33, 33, 500])).count == 0  # only 4 intervals
    stats = freezes(_times([33] * 10 + [500] + [33] * 10 + [600]))
    assert stats.count == 2
    assert stats.total_s == pytest.approx(1.1)
    assert freezes(np.array([], dtype=np.int64)).count == 0


def test_frame_delay_first_sent_to_last_received() -> None:
    # frame 1: seq 0, 1; frame 2: seq 2; frame 3: seq 3, 4 (seq 4 lost)
    sent_frame = [1, 1, 2, 3, 3]
    sent_ns = [0, 1 * MS, 33 * MS, 66 * MS, 67 * MS]
    seqs = [0, 1, 2, 3, 4]
    recv_frame = [1, 2, 1, 2, 3]
    recv_ns = [20 * MS, 60 * MS, 45 * MS, 61 * MS, 90 * MS]  # seq 2 duplicated
    recv_seq = [0, 2, 1, 2, 3]
    timing = frame_timing(sent_frame, sent_ns, seqs, recv_frame, recv_ns, recv_seq)
    assert timing.frame_id.tolist() == [1, 2, 3]
    assert timing.complete.tolist() == [True, True, False]
    assert timing.delay_ms.tolist() == [45.0, 27.0]  # 45 - 0, 60 - 33
    assert timing.render_times_ns().tolist() == [45 * MS, 60 * MS]
