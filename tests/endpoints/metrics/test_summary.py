"""The per-flow metrics dict on a synthetic RTC call whose numbers are known,
with records in the RTC endpoints' own log dtypes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from endpoints.metrics.summary import estimate_vs_capacity, link_fairness, rtc_flow_metrics
from endpoints.rtc import logs as rtc_logs

MS = 1_000_000
VIDEO, AUDIO = 0xA, 0xB
CONTRACT = {"recv_rate_bps", "delay_p50_ms", "delay_p95_ms", "delay_p99_ms", "loss"}


def _call() -> tuple[np.ndarray, np.ndarray]:
    """3 s of 30 fps video (3 × 1000 B packets a frame, 1 ms apart) and
    50 pps audio (200 B); 40 ms one-way delay; frame 10's second packet is
    lost; from 1.5 s deliveries stall until 1.9 s (a freeze)."""
    sent, received = [], []
    events = [(f * 33 * MS + k * MS, VIDEO, f, k, 1000) for f in range(90) for k in range(3)]
    events += [(a * 20 * MS, AUDIO, a, 0, 200) for a in range(150)]
    events.sort()
    for seq, (send_ns, ssrc, frame, k, size) in enumerate(events):
        sent.append((send_ns, seq, ssrc, frame, seq & 0xFFFF, size, 96, k == 2, 0))
        arrival = send_ns + 40 * MS
        if 1500 * MS <= arrival < 1900 * MS:
            arrival = 1900 * MS + (arrival - 1500 * MS) // 100  # released as a burst
        if not (ssrc == VIDEO and frame == 10 and k == 1):
            received.append((arrival, send_ns, seq, ssrc, frame, seq & 0xFFFF, size, 12, 96, 0))
    recv = np.array(received, dtype=rtc_logs.dtype_of(rtc_logs.RECEIVER_PACKETS.fields))
    recv = recv[np.argsort(recv["arrival_ns"], kind="stable")]
    return recv, np.array(sent, dtype=rtc_logs.dtype_of(rtc_logs.SENDER_PACKETS.fields))


def test_rtc_metrics_on_a_known_call() -> None:
    recv, sent = _call()
    summary = rtc_flow_metrics(recv, sent, start_ns=0, end_ns=3500 * MS, tail_grace_ns=0,
                               ground_recv_rate_bps=1e6)
    metrics = summary.metrics
    assert metrics.keys() >= CONTRACT
    total_bytes = 90 * 3 * 1000 + 150 * 200 - 1000
    assert metrics["recv_rate_bps"] == pytest.approx(total_bytes * 8 / 3.5)
    assert metrics["delay_p50_ms"] == pytest.approx(40.0)
    assert metrics["delay_p99_ms"] > 300  # the stalled packets
    assert metrics["packets_lost"] == 1
    assert metrics["loss"] == pytest.approx(1 / (270 + 150))
    assert metrics["duplicates"] == 0
    assert metrics["frames_sent"] == 90 and metrics["frames_complete"] == 89
    # Frame delay: first packet sent -> last arrived: 2 ms + 40 ms normally.
    assert metrics["frame_delay_p50_ms"] == pytest.approx(42.0)
    assert metrics["freezes"] == 1
    assert metrics["freeze_time_s"] == pytest.approx(0.4, abs=0.05)
    scores = summary.scores
    assert 0 < scores["network"] <= 70
    assert scores["network_ground_recv_rate_bps"] == pytest.approx(1e6)
    # OpenNetLab's receive rate is the mean over SSRCs of payload bytes per ms
    # from each one's first to last arrival: video 988 B × 269 packets over
    # 2979 - 40 ms, audio 188 B × 150 over 3020 - 40 ms; ground 1 Mbit/s = 125 B/ms.
    expected_recv = ((988 * 269) / 2939 + (188 * 150) / 2980) / 2 / 125
    assert scores["network_recv_rate_score"] == pytest.approx(expected_recv)
    json.dumps({"metrics": metrics, "scores": scores}, allow_nan=False)  # valid JSON
    assert summary.series["recv_rate_bps"].size == 35


def test_rtc_metrics_without_sender_log() -> None:
    recv, _sent = _call()
    metrics = rtc_flow_metrics(recv).metrics
    assert metrics.keys() >= CONTRACT
    assert metrics["packets_lost"] == 1  # the gap in transport sequence numbers
    assert "frames_sent" not in metrics


def test_estimate_vs_capacity() -> None:
    result = estimate_vs_capacity([0], [2e6], [0, 1000 * MS], [1e6, 4e6], 0, 2000 * MS)
    assert result["mean_ratio"] == pytest.approx((2.0 + 0.5) / 2)
    assert result["median_ratio"] == pytest.approx(1.25)
    assert result["mape"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["over_fraction"] == pytest.approx(0.5)


def test_link_fairness() -> None:
    assert link_fairness([1e6, 3e6]) == pytest.approx(0.8)
    assert link_fairness([0.0, 0.0]) is None
    assert link_fairness([]) is None
