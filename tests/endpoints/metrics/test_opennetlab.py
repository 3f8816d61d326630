"""OpenNetLab's network score pinned on a hand-made packet log.

The log (arrival order) has three SSRCs:

A (ssrc 1): seq 10, 11, 13, 14, 15; delays 50, 60, 100, 500, 30 ms
  relative to the first: 0, 10, 50, 450, -20; capped at 400:
  sorted [-20, 0, 10, 50, 400]; p95 at rank 0.95·4 = 3.8:
  50 + 0.8·(400 - 50) = 330; min (uncapped) -20;
  delay score (400 - 330) / (400 + 20) = 1/6.
  Rate: 5 × 1000 B over 630 - 50 ms = 5000/580 B/ms. One gap (12).
B (ssrc 2): seq 100, 102, 101, 103 (101 late); delays 50, 60, 75, 50:
  relative 0, 10, 25, 0; p95 at rank 2.85: 10 + 0.85·15 = 22.75; min 0;
  delay score 377.25 / 400 = 0.943125. Rate 4 × 500 B over 40 ms = 50.
  Gaps as OpenNetLab counts them: 102 after 100 → 1, 101 after 102 → 0,
  103 after 101 → 1 (their quirk: the reordered packet costs a loss).
C (ssrc 3): one packet: delay list [0], score 400/400 = 1; rate 0, so it
  is left out of the receive-rate mean.

delay = (1/6 + 0.943125 + 1) / 3 = 0.703263888…
recv  = min(1, mean(5000/580, 50) / 500) = 0.058620689…
loss  = 3 / (3 + 10) = 0.230769…
network = 20·delay + 20·recv + 30·(1 - loss) = 38.3146146…
"""

from __future__ import annotations

import numpy as np
import pytest

from endpoints.metrics.opennetlab import network_score, network_score_from_packets

# (ssrc, seq, send_ms, arrival_ms, payload bytes), in arrival order
LOG = [
    (1, 10, 0, 50, 1000),
    (2, 100, 10, 60, 500),
    (1, 11, 20, 80, 1000),
    (2, 102, 30, 90, 500),
    (2, 101, 20, 95, 500),
    (2, 103, 50, 100, 500),
    (1, 13, 40, 140, 1000),
    (3, 7, 0, 200, 300),
    (1, 14, 60, 560, 1000),
    (1, 15, 600, 630, 1000),
]

DELAY = (1 / 6 + 0.943125 + 1.0) / 3
RECV = (5000 / 580 + 50.0) / 2 / 500
LOSS = 3 / 13
NETWORK = 20 * DELAY + 20 * RECV + 30 * (1 - LOSS)


def _columns() -> list[np.ndarray]:
    return [np.array(column) for column in zip(*LOG, strict=True)]


def test_hand_made_log() -> None:
    score = network_score(*_columns())
    assert pytest.approx(38.3146146, abs=1e-6) == NETWORK  # the docstring's arithmetic
    assert score.delay_score == pytest.approx(0.70326388889, abs=1e-10)
    assert score.recv_rate_score == pytest.approx(0.05862068966, abs=1e-10)
    assert score.loss_count == 3
    assert score.loss_rate == pytest.approx(LOSS, abs=1e-12)
    assert score.network == pytest.approx(NETWORK, abs=1e-9)
    per = {entry.ssrc: entry for entry in score.per_ssrc}
    assert per[1].delay_p95_ms == pytest.approx(330.0)
    assert per[1].min_delay_ms == -20
    assert per[1].delay_score == pytest.approx(1 / 6)
    assert per[1].avg_recv_rate == pytest.approx(5000 / 580)
    assert per[2].delay_p95_ms == pytest.approx(22.75)
    assert per[2].avg_recv_rate == pytest.approx(50.0)
    assert per[3].delay_score == 1.0 and per[3].avg_recv_rate == 0.0


def test_ground_truth_caps_the_receive_score() -> None:
    score = network_score(*_columns(), ground_recv_rate=20.0)  # mean rate 29.3 B/ms > 20
    assert score.recv_rate_score == 1.0
    assert score.network == pytest.approx(20 * DELAY + 20 + 30 * (1 - LOSS), abs=1e-9)


def test_perfect_stream_scores_seventy() -> None:
    seq = np.arange(100)
    send = seq * 10.0
    score = network_score(np.full(100, 5), seq, send, send + 40.0, np.full(100, 5000),
                          ground_recv_rate=100.0)
    assert score.delay_score == 1.0 and score.loss_rate == 0.0
    assert score.recv_rate_score == 1.0  # 500 kB over 990 ms is above 100 B/ms
    assert score.network == pytest.approx(70.0)


def test_from_receiver_packet_records() -> None:
    """The adapter: ns times floored to ms as AlphaRTC logs them, payload =
    size - RTP header, packets without a send stamp left out."""
    dtype = np.dtype([("arrival_ns", "<i8"), ("send_ns", "<i8"), ("ssrc", "<u4"),
                      ("rtp_seq", "<u2"), ("size", "<u2"), ("header_length", "<u2")])
    rows = [(arr * 1_000_000 + 999_000, send * 1_000_000 + 1_000, ssrc, seq, size + 24, 24)
            for ssrc, seq, send, arr, size in LOG]
    rows.insert(3, (90_000_000, -1, 1, 12, 1224, 24))  # no stamp: ignored
    score = network_score_from_packets(np.array(rows, dtype=dtype))
    assert score.network == pytest.approx(NETWORK, abs=1e-9)
    assert score.packets == len(LOG)


def test_empty_log_is_an_error() -> None:
    with pytest.raises(ValueError, match="no packets"):
        network_score([], [], [], [], [])
