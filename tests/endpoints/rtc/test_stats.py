"""Receiver statistics: the arrival record and RFC 3550 loss/jitter."""

from __future__ import annotations

import pytest

from endpoints.rtc.rtp import RtpPacket
from endpoints.rtc.stats import ALPHARTC_STATS_KEYS, ArrivalRecord, ReceptionStats


def test_arrival_record_carries_alphartc_stats() -> None:
    packet = RtpPacket(96, 1000, 9000, 77, marker=True, payload=bytes(500), padding_size=4)
    packet.set_transport_sequence_number(3)
    packet.set_abs_send_time(0)
    record = ArrivalRecord.from_packet(packet, send_time_ms=1000.4, arrival_time_ms=1030.5,
                                       transport_sequence=3)
    stats = record.alphartc_stats()
    assert tuple(stats) == ALPHARTC_STATS_KEYS
    assert stats == {"send_time_ms": 1000, "arrival_time_ms": 1031, "payload_type": 96,
                     "sequence_number": 1000, "ssrc": 77, "padding_length": 4,
                     "header_length": 24, "payload_size": 504}
    assert record.as_dict()["transport_sequence"] == 3


def test_fraction_lost_and_cumulative_loss() -> None:
    stats = ReceptionStats(ssrc=5, clock_rate=90_000)
    for seq in range(65530, 65530 + 100):
        if seq % 10 != 0:  # lose 10 %
            stats.on_packet(seq & 0xFFFF, 0, 0)
    block = stats.report_block()
    assert block.ssrc == 5
    assert stats.cumulative_lost == block.cumulative_lost
    assert block.fraction_lost == pytest.approx(256 * 0.1, abs=3)
    assert block.highest_sequence == 65530 + 99 - (0 if (65530 + 99) % 10 else 1)
    # Next interval with no loss reports 0.
    for seq in range(65630, 65650):
        stats.on_packet(seq & 0xFFFF, 0, 0)
    assert stats.report_block().fraction_lost == 0


def test_jitter_is_zero_for_a_steady_stream_and_grows_with_variation() -> None:
    steady = ReceptionStats(1, 90_000)
    for i in range(100):
        steady.on_packet(i, i * 3000, i * 33_333 + 20_000)
    assert steady.jitter < 1.0
    noisy = ReceptionStats(1, 90_000)
    for i in range(200):
        noisy.on_packet(i, i * 3000, i * 33_333 + (5_000 if i % 2 else 0))
    # Alternating ±5 ms transit: |D| = 450 units each time, J converges to 450.
    assert noisy.jitter == pytest.approx(450, rel=0.05)
