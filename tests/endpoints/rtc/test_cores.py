"""The sans-IO sender and receiver cores: events in with their times, packets out.

Both the lab's processes and the simulator drive these, so what is checked
here holds for both: a packet is stamped with the time it really leaves,
one seed gives one call, a turn waits for each packet it yields, feedback
and estimator polls follow the receiver's timers, and the two cores wired
back to back close GCC's loop.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from endpoints.rtc.clock import read_stamp
from endpoints.rtc.estimators import FixedEstimator
from endpoints.rtc.receiver_core import RECEIVER_SSRC, ReceiverCore, pack_rtcp
from endpoints.rtc.rtcp import ReceiverReport, Remb, TransportFeedback, decode_compound
from endpoints.rtc.rtp import RtpPacket, abs_send_time_from_us
from endpoints.rtc.sender_core import SenderCore, SenderSettings, Sent


def _drive(core: SenderCore, until_us: int, *, lag_ns: int = 7_000) -> list[Sent]:
    """Wake ``core`` at each of its deadlines; packet k of a turn leaves k × lag later."""
    sent: list[Sent] = []
    now_us = 1  # a sender's clock never reads 0 (the payload stamp's "none")
    core.start(now_us)
    while now_us < until_us:
        for k, departure in enumerate(core.turn(now_us)):
            sent.append(core.depart(departure, now_us * 1000 + k * lag_ns))
        now_us = max(now_us + 1, core.next_deadline_us(now_us))
    return sent


def test_packets_are_stamped_with_the_time_they_leave() -> None:
    sent = _drive(SenderCore(SenderSettings(start_bps=1_000_000), seed=4, start_us=1),
                  2_000_000)
    assert len(sent) > 300
    for seq, s in enumerate(sent):
        packet = s.packet
        assert s.transport_seq == seq
        assert packet.transport_sequence_number() == seq & 0xFFFF
        assert packet.abs_send_time() == abs_send_time_from_us(s.send_ns // 1000)
        assert read_stamp(packet.payload, seq & 0xFFFF) == (s.send_ns, seq, s.frame_id)
        assert s.size == len(packet.encode())
    # Packets of one pacer burst leave one after another, each at its own time.
    assert len({s.send_ns for s in sent}) == len(sent)


def test_one_seed_one_call_another_seed_another() -> None:
    def rows(seed: int) -> list[tuple[object, ...]]:
        core = SenderCore(SenderSettings(), seed=seed, start_us=1)
        return [s.log_row() for s in _drive(core, 1_000_000)]

    assert rows(9) == rows(9)
    assert rows(9) != rows(10)


def test_a_turn_waits_for_each_packet_it_yields() -> None:
    core = SenderCore(SenderSettings(start_bps=2_000_000), seed=1, start_us=1)
    turn = core.turn(1)
    next(turn)
    with pytest.raises(RuntimeError, match="depart"):
        next(turn)


def test_remb_sets_the_target_within_the_flow_limits() -> None:
    core = SenderCore(SenderSettings(estimator="remb", min_bps=100_000, max_bps=2_000_000),
                      seed=1, start_us=0)
    for datagram in pack_rtcp([Remb(RECEIVER_SSRC, 5_000_000, (core.video_ssrc,))]):
        core.on_rtcp_datagram(datagram, 1_000)
    assert core.target_bps == 2_000_000 and core.remb_bps == 5_000_000
    core.on_rtcp([Remb(RECEIVER_SSRC, 0, ())], 2_000)
    assert core.target_bps == 100_000  # a zero REMB: the floor, as libwebrtc's min rate
    assert core.pacer.pacing_rate_bps == pytest.approx(2.5 * 100_000)


@given(st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=5),
       st.integers(0, 3), st.binary(max_size=40), st.booleans())
def test_header_size_counts_what_encode_writes(extensions: dict[int, bytes], csrcs: int,
                                              payload: bytes, two_byte: bool) -> None:
    packet = RtpPacket(96, 1, 2, 3, csrcs=tuple(range(csrcs)), extensions=extensions,
                       payload=payload, two_byte_extensions=two_byte)
    assert packet.header_size == len(packet.encode()) - len(payload)
    assert packet.size == len(packet.encode())


def _arrivals(sent: list[Sent], delay_ns: int) -> list[tuple[int, Sent]]:
    return [(s.send_ns + delay_ns, s) for s in sent]


def test_receiver_timers_start_with_the_first_packet() -> None:
    sent = _drive(SenderCore(SenderSettings(estimator="remb"), seed=2, start_us=1), 1_500_000)
    receiver = ReceiverCore(FixedEstimator(700_000), start_ns=0, poll_interval_s=0.2,
                            feedback_interval_s=0.05)
    assert receiver.next_deadline_ns() is None
    out: list[tuple[int, list[object]]] = []
    arrivals = _arrivals(sent, 30_000_000)
    first = arrivals[0][0]
    i = 0
    now = 0
    while now < 1_400_000_000:
        deadline = receiver.next_deadline_ns()
        now = arrivals[i][0] if deadline is None else min(deadline, arrivals[i][0])
        while i < len(arrivals) and arrivals[i][0] <= now:
            arrival, remb = receiver.on_rtp(arrivals[i][1].packet, arrivals[i][1].size,
                                            arrivals[i][0])
            assert remb == []  # a timer-polled estimator answers only on its timer
            assert arrival.send_ns == arrivals[i][1].send_ns
            assert arrival.header_length == 24 and arrival.size == arrivals[i][1].size
            i += 1
        for compound in receiver.on_timer(now):
            out.append((now, list(compound)))
    feedback = [t for t, c in out if any(isinstance(p, TransportFeedback) for p in c)]
    rembs = [(t, p) for t, c in out for p in c if isinstance(p, Remb)]
    reports = [t for t, c in out if any(isinstance(p, ReceiverReport) for p in c)]
    assert feedback[0] == first + 50_000_000
    assert all(b - a == 50_000_000 for a, b in itertools.pairwise(feedback))
    assert [t for t, _ in rembs][:3] == [first + k * 200_000_000 for k in (1, 2, 3)]
    assert all(p.bitrate_bps == 700_000 for _, p in rembs)
    assert all(b - a == 500_000_000 for a, b in itertools.pairwise(reports))
    assert receiver.counters.packets_received == i


def test_the_two_cores_back_to_back_close_gccs_loop() -> None:
    """Sender → 40 ms → receiver → 40 ms → sender with no bottleneck: every packet
    is reported received and GCC, starting at 300 kbit/s, ramps up (probes first)."""
    sender = SenderCore(SenderSettings(), seed=3, start_us=1)
    receiver = ReceiverCore(None, start_ns=0, poll_interval_s=0.2, feedback_interval_s=0.05)
    sender.start(1)
    to_receiver: list[tuple[int, Sent]] = []
    to_sender: list[tuple[int, bytes]] = []
    now = 1000
    while now < 5_000_000_000:
        candidates = [sender.next_deadline_us(now // 1000) * 1000]
        candidates += [t for t, _ in to_receiver[:1]] + [t for t, _ in to_sender[:1]]
        deadline = receiver.next_deadline_ns()
        if deadline is not None:
            candidates.append(deadline)
        now = max(now, min(candidates))
        while to_receiver and to_receiver[0][0] <= now:
            due, sent = to_receiver.pop(0)
            receiver.on_rtp(sent.packet, sent.size, due)
        while to_sender and to_sender[0][0] <= now:
            sender.on_rtcp_datagram(to_sender.pop(0)[1], now // 1000)
        if sender.next_deadline_us(now // 1000) * 1000 <= now:
            for departure in sender.turn(now // 1000):
                to_receiver.append((now + 40_000_000, sender.depart(departure, now)))
        for compound in receiver.on_timer(now):
            to_sender += [(now + 40_000_000, d) for d in pack_rtcp(compound)]
    assert sender.counters.feedback_received > 90
    assert sender.counters.packets_reported_lost == 0
    assert sender.counters.probe_clusters >= 2
    assert sender.target_bps > 1_000_000
    assert sender.bwe.rtt_ms == pytest.approx(80, abs=5)
    for datagram in pack_rtcp([Remb(RECEIVER_SSRC, 1, ())] * 200):  # packing: MTU-sized
        assert len(datagram) <= 1200 and decode_compound(datagram)
