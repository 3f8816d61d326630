"""The capacity-normalised score and the step rewards share the network score's terms,
and the capacity score cannot be gamed by sending little on a fast link."""

from __future__ import annotations

import numpy as np
import pytest

from endpoints.metrics import objectives, opennetlab
from endpoints.metrics.summary import rtc_flow_metrics
from endpoints.rtc import logs as rtc_logs

MS = 1_000_000


def _constant_call(rate_bps: float, seconds: float = 10.0, size: int = 1000,
                   owd_ms: float = 20.0) -> np.ndarray:
    """One SSRC of ``size``-byte packets paced at ``rate_bps``, a fixed delay, no loss."""
    gap_ns = int(size * 8 / rate_bps * 1e9)
    count = int(seconds * 1e9 // gap_ns)
    rows = [(i * gap_ns + int(owd_ms * MS), i * gap_ns, i, 0xA, i // 3, i & 0xFFFF, size, 12,
             96, 0) for i in range(count)]
    return np.array(rows, dtype=rtc_logs.dtype_of(rtc_logs.RECEIVER_PACKETS.fields))


def _scores(rate_bps: float, capacity_bps: float) -> tuple[dict[str, float], dict[str, float]]:
    recv = _constant_call(rate_bps)
    summary = rtc_flow_metrics(recv, start_ns=0, end_ns=10_000 * MS,
                               capacity=(np.array([0]), np.array([capacity_bps])))
    return summary.metrics, summary.scores


def test_capacity_score_pays_for_using_the_link_and_network_score_does_not() -> None:
    # OpenNetLab's checkpoint sent ~0.18 Mbit/s on every link (issue #15); on a 2 Mbit/s
    # link that loses it a few network-score points but most of the capacity rate term.
    low_metrics, low = _scores(0.18e6, 2e6)
    full_metrics, full = _scores(1.9e6, 2e6)
    assert full["network"] - low["network"] < 10  # the fixed 4 Mbit/s reference
    assert low_metrics["utilization"] == pytest.approx(0.18 * 1028 / 1000 / 2, rel=0.02)
    assert full_metrics["utilization"] == pytest.approx(1.9 * 1028 / 1000 / 2, rel=0.02)
    assert full["capacity"] - low["capacity"] > 15
    # Same delay and loss terms: the scores differ only by their rate terms.
    for s in (low, full):
        assert s["capacity"] - s["network"] == pytest.approx(
            20 * (s["capacity_rate_score"] - s["network_recv_rate_score"]))


def test_capacity_rate_term_caps_at_one_and_forgives_an_outage() -> None:
    assert objectives.capacity_rate_term(3e6, 2e6) == 1.0
    assert objectives.capacity_rate_term(0.5e6, 2e6) == 0.25
    assert objectives.capacity_rate_term(0.0, 0.0) == 1.0
    assert objectives.utilization(1e6, 0.0) is None
    metrics, scores = _scores(1e6, 0.0)
    assert metrics["utilization"] is None and scores["capacity_rate_score"] == 1.0


def test_no_capacity_no_capacity_score() -> None:
    summary = rtc_flow_metrics(_constant_call(1e6), start_ns=0, end_ns=10_000 * MS)
    assert "capacity" not in summary.scores and "utilization" not in summary.metrics


def test_rewards_use_the_scores_weights() -> None:
    state = [1e6, 100.0, 0.05, 1e6]
    terms = (objectives.step_delay_term(100.0), objectives.capacity_rate_term(1e6, 2e6), 0.05)
    assert objectives.capacity_reward(state, 2e6) == pytest.approx(
        opennetlab.network_points(*terms) / 70)
    assert objectives.capacity_reward(state, 2e6) == pytest.approx((20 * 0.75 + 20 * 0.5
                                                                    + 30 * 0.95) / 70)
    # A step that fills the link earns the whole rate term, whatever the link's speed.
    assert objectives.capacity_reward([0.5e6, 0.0, 0.0, 0], 0.5e6) == pytest.approx(1.0)
    assert objectives.capacity_reward([5e6, 0.0, 0.0, 0], 5e6) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="capacity"):
        objectives.capacity_reward(state)
    assert {"capacity"} == objectives.NEEDS_CAPACITY


def test_network_points_is_opennetlabs_sum() -> None:
    assert opennetlab.network_points(1.0, 1.0, 0.0) == 70.0
    assert opennetlab.network_points(0.5, 0.25, 0.1) == pytest.approx(10 + 5 + 27)
