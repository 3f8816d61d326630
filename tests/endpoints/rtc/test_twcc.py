"""Transport-wide feedback: builder ↔ parser property, splitting, sender matching."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from endpoints.rtc.rtcp import TransportFeedback, decode_compound, encode_compound
from endpoints.rtc.twcc import FeedbackAdapter, FeedbackBuilder, feedback_arrivals


def quantised(arrival_us: int) -> int:
    return arrival_us // 250 * 250


def round_trip(received: dict[int, int], first_seq: int = 0,
               max_status_count: int = 500) -> dict[int, int | None]:
    """Build feedback for ``received`` (seq offset → arrival µs), send it as bytes, parse it."""
    builder = FeedbackBuilder(sender_ssrc=1, media_ssrc=2, max_status_count=max_status_count)
    for offset, arrival_us in sorted(received.items(), key=lambda item: item[1]):
        builder.on_packet((first_seq + offset) & 0xFFFF, arrival_us)
    wire = encode_compound(builder.build())
    parsed: dict[int, int | None] = {}
    for packet in decode_compound(wire):
        assert isinstance(packet, TransportFeedback)
        for seq, arrival in feedback_arrivals(packet):
            offset = (seq - first_seq) & 0xFFFF
            assert offset not in parsed, "a sequence number was reported twice"
            parsed[offset] = arrival
    return parsed


# Arrival times: up to ~10 minutes from the receiver's epoch, in any order with
# respect to sequence numbers (reordering gives negative deltas).
received_sets = st.dictionaries(st.integers(0, 2000), st.integers(0, 600_000_000),
                                min_size=1, max_size=300)


@settings(max_examples=300, deadline=None)
@given(received=received_sets, first_seq=st.integers(0, 0xFFFF),
       max_status_count=st.sampled_from([1, 7, 50, 500, 0xFFFF]))
def test_parse_of_build_is_identity_at_250_us(received: dict[int, int], first_seq: int,
                                              max_status_count: int) -> None:
    parsed = round_trip(received, first_seq, max_status_count)
    expected: dict[int, int | None] = {offset: None
                                       for offset in range(min(received), max(received) + 1)}
    expected.update({offset: quantised(arrival) for offset, arrival in received.items()})
    assert parsed == expected


def test_large_gaps_split_into_packets_with_their_own_reference_time() -> None:
    builder = FeedbackBuilder(1)
    builder.on_packet(10, 1_000_000)
    builder.on_packet(11, 1_000_000 + 9_000_000)  # 9 s later: beyond ±8.19 s of 16-bit deltas
    builder.on_packet(12, 10_000_000 - 50_000)  # reordered: negative delta, 2-byte symbol
    packets = builder.build()
    assert len(packets) == 2
    assert [p.base_sequence for p in packets] == [10, 11]
    assert packets[0].feedback_count + 1 == packets[1].feedback_count
    arrivals = [a for p in packets for _, a in feedback_arrivals(p)]
    assert arrivals == [1_000_000, 10_000_000, 9_950_000]
    assert packets[1].deltas[1] == -200  # -50 ms in 250 µs ticks


def test_builder_reports_each_sequence_once_and_counts_late_packets() -> None:
    builder = FeedbackBuilder(1)
    builder.on_packet(65535, 100_000)
    builder.on_packet(1, 102_000)  # 0 missing (across the wrap)
    first = builder.build()
    assert [a for p in first for a in feedback_arrivals(p)] == [
        (65535, 100_000), (0, None), (1, 102_000)]
    builder.on_packet(0, 103_000)  # arrives after it was reported lost
    builder.on_packet(2, 104_000)
    second = builder.build()
    assert [a for p in second for a in feedback_arrivals(p)] == [(2, 104_000)]
    assert builder.late_packets == 1
    assert builder.build() == []


def test_maybe_build_respects_the_interval() -> None:
    builder = FeedbackBuilder(1, interval_us=50_000)
    builder.on_packet(0, 0)
    assert builder.maybe_build(0)
    builder.on_packet(1, 10_000)
    assert builder.maybe_build(40_000) == []
    assert builder.maybe_build(50_000)


def test_adapter_matches_send_history_across_the_wrap() -> None:
    adapter = FeedbackAdapter()
    sent = {}
    for i in range(10):
        seq16 = (65530 + i) & 0xFFFF
        sent[seq16] = adapter.on_packet_sent(seq16, send_time_us=1_000 * i, size=1000 + i)
    builder = FeedbackBuilder(1)
    for i in range(10):
        if i != 4:
            builder.on_packet((65530 + i) & 0xFFFF, 20_000 + 1_000 * i)
    results = [r for fb in builder.build() for r in adapter.on_feedback(fb)]
    assert [r.sequence for r in results] == [65530 + i for i in range(10)]
    assert [r.send_time_us for r in results] == [1_000 * i for i in range(10)]
    assert results[4].arrival_time_us is None and not results[4].received
    assert results[5].arrival_time_us == 25_000 and results[5].size == 1005
    # The same feedback again yields nothing new for packets already acknowledged.
    assert all(not r.received for fb in builder.build() for r in adapter.on_feedback(fb))


def test_adapter_ignores_unknown_sequence_numbers() -> None:
    adapter = FeedbackAdapter()
    adapter.on_packet_sent(100, 0, 500)
    fb = TransportFeedback(1, 2, 98, 0, 0, (1, 1, 1))
    results = adapter.on_feedback(fb)
    assert [r.sequence for r in results] == [100]
    assert adapter.unknown_reports == 2


def test_adapter_counts_bytes_in_flight_until_a_feedback_covers_them() -> None:
    adapter = FeedbackAdapter()
    for seq in range(4):
        adapter.on_packet_sent(seq, send_time_us=1_000 * seq, size=100 * (seq + 1))
    assert adapter.in_flight_bytes == 100 + 200 + 300 + 400
    builder = FeedbackBuilder(1)
    builder.on_packet(0, 20_000)
    builder.on_packet(2, 22_000)  # 1 is reported lost: covered, so no longer in flight
    for fb in builder.build():
        adapter.on_feedback(fb)
    assert adapter.in_flight_bytes == 400
    # A late report of the lost packet as received does not count it twice.
    late = FeedbackBuilder(1)
    late.on_packet(1, 30_000)
    for fb in late.build():
        adapter.on_feedback(fb)
    assert adapter.in_flight_bytes == 400


def test_adapter_forgets_in_flight_bytes_it_drops_from_history() -> None:
    adapter = FeedbackAdapter(history_us=10_000)
    adapter.on_packet_sent(0, send_time_us=0, size=500)
    adapter.on_packet_sent(1, send_time_us=20_000, size=700)
    assert adapter.in_flight_bytes == 700
