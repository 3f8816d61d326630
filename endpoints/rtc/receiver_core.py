"""The RTC receiver's protocol logic without a clock or a socket (sans-IO).

Per RTP packet: the payload stamp read back (exact one-way delay), transport
feedback recorded (transport-cc draft, :class:`~endpoints.rtc.twcc.FeedbackBuilder`),
RFC 3550 reception statistics, and the estimator handed AlphaRTC's stats
(:mod:`endpoints.rtc.stats`). On timers armed by the first packet: transport
feedback every feedback interval with RR + SDES every 500 ms in the same
compound, and the estimator polled into a REMB every poll interval (a plugin:
right after the first packet that arrives more than an interval after the
previous poll, as AlphaRTC's RemoteEstimatorProxy::IncomingPacket does).

:class:`ReceiverCore` takes every event with its time and returns what to
send; the lab's process (:mod:`endpoints.rtc.receiver_app`) feeds it from a
socket on CLOCK_MONOTONIC and the simulator from its modelled link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from endpoints.rtc.clock import NO_FRAME, read_stamp
from endpoints.rtc.errors import PacketError
from endpoints.rtc.estimators import GccEstimator, PluginEstimator, ReceiverEstimator
from endpoints.rtc.packetizer import AUDIO_PAYLOAD_TYPE
from endpoints.rtc.rtcp import (
    ReceiverReport,
    Remb,
    RtcpPacket,
    Sdes,
    SenderReport,
    decode_compound,
)
from endpoints.rtc.rtp import AbsSendTimeUnwrapper, RtpPacket, SequenceUnwrapper
from endpoints.rtc.stats import AlphaRtcStats, ReceptionStats
from endpoints.rtc.twcc import FeedbackBuilder

RECEIVER_SSRC = 0x52454356  # "RECV"
REPORT_INTERVAL_NS = 500_000_000
DEFAULT_FEEDBACK_INTERVAL_S = 0.05  # transport feedback every 50 ms (50–100 ms allowed)
MAX_RTCP_DATAGRAM = 1200  # stays under a 1500-byte MTU with IP/UDP headers
MAX_REMB_BPS = (1 << 18) << 40  # REMB's 18-bit mantissa and 6-bit exponent


@dataclass
class ReceiverCounters:
    packets_received: int = 0
    bytes_received: int = 0
    packets_unstamped: int = 0
    rtp_malformed: int = 0
    rtcp_received: int = 0
    rtcp_sent: int = 0
    feedback_sent: int = 0
    remb_sent: int = 0
    send_errors: int = 0
    estimator_polls: int = 0
    foreign_packets: int = 0  # datagrams from anyone but the sender, dropped
    last_estimate_bps: int | None = None
    late_feedback_packets: int = 0
    plugin: dict[str, Any] | None = None
    error: str | None = None
    per_ssrc: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Arrival:
    """One received RTP packet as the receiver's packet log records it."""

    arrival_ns: int
    send_ns: int  # from the payload stamp; -1 when the packet carries none
    transport_seq: int
    ssrc: int
    frame_id: int
    rtp_seq: int
    size: int
    header_length: int
    payload_type: int
    marker: bool

    def log_row(self) -> tuple[int, int, int, int, int, int, int, int, int, bool]:
        """The row of ``logs.RECEIVER_PACKETS``."""
        return (self.arrival_ns, self.send_ns, self.transport_seq, self.ssrc, self.frame_id,
                self.rtp_seq, self.size, self.header_length, self.payload_type, self.marker)


def pack_rtcp(packets: Sequence[RtcpPacket], max_bytes: int = MAX_RTCP_DATAGRAM) -> list[bytes]:
    """RTCP packets packed into datagrams of at most ``max_bytes`` (one oversized packet
    goes alone); feedback-only datagrams are reduced-size RTCP (RFC 5506)."""
    datagrams: list[bytes] = []
    datagram = bytearray()
    for packet in packets:
        encoded = packet.encode()
        if datagram and len(datagram) + len(encoded) > max_bytes:
            datagrams.append(bytes(datagram))
            datagram.clear()
        datagram += encoded
    if datagram:
        datagrams.append(bytes(datagram))
    return datagrams


class ReceiverCore:
    """One receiver's bookkeeping, feedback and estimator, on the caller's clock (ns)."""

    def __init__(self, estimator: ReceiverEstimator | None, *, start_ns: int,
                 poll_interval_s: float, feedback_interval_s: float,
                 cname: str = "receiver@netlab") -> None:
        self.estimator = estimator
        self.cname = cname
        self.poll_ns = int(poll_interval_s * 1e9)
        self.feedback_ns = int(feedback_interval_s * 1e9)
        #: The built-in GCC gets send/arrival times as float ms (AlphaRTC's ints would
        #: quantise its delay gradient to 1 ms); plugins get AlphaRTC's ints.
        self._float_stats = isinstance(estimator, GccEstimator)
        self._alphartc_stats = AlphaRtcStats()
        #: A plugin is polled on arrival, as RemoteEstimatorProxy::IncomingPacket does.
        self.poll_on_arrival = isinstance(estimator, PluginEstimator)
        #: AlphaRTC's last_bwe_sendback_ms_ starts at the proxy's construction.
        self._last_poll_ns = start_ns
        #: TWCC carries arrival times from an epoch in 24 bits of 64 ms (≈ 6 days):
        #: count from the receiver's start, not from boot.
        self._epoch_us = start_ns // 1000
        self.builder = FeedbackBuilder(RECEIVER_SSRC, 0,
                                       interval_us=int(feedback_interval_s * 1e6))
        self.reception: dict[int, ReceptionStats] = {}
        self._last_sr: dict[int, tuple[int, int]] = {}  # ssrc → (LSR, arrival ns)
        self._abs_send_time = AbsSendTimeUnwrapper()
        self._transport_unwrapper = SequenceUnwrapper()
        self.counters = ReceiverCounters()
        # Timers, armed by the first packet.
        self.next_feedback_ns: int | None = None
        self.next_poll_ns: int | None = None
        self._next_report_ns = start_ns

    @property
    def polls_on_timer(self) -> bool:
        return self.estimator is not None and not self.poll_on_arrival

    # ---- RTP in ------------------------------------------------------------------------

    def on_rtp(self, packet: RtpPacket, size: int, arrival_ns: int
               ) -> tuple[Arrival, list[RtcpPacket]]:
        """A decoded RTP packet of ``size`` bytes (UDP payload) arrived at ``arrival_ns``:
        its log record, and the REMB to send now if a plugin was polled on it."""
        if self.next_feedback_ns is None:
            self.next_feedback_ns = arrival_ns + self.feedback_ns
            self.next_poll_ns = arrival_ns + self.poll_ns
        wire_seq = packet.transport_sequence_number()
        stamp = read_stamp(packet.payload, wire_seq)
        if stamp is not None:
            send_ns, transport_seq, frame_id = stamp
        else:
            self.counters.packets_unstamped += 1
            send_ns, frame_id = -1, NO_FRAME
            transport_seq = (self._transport_unwrapper.unwrap(wire_seq) & 0xFFFFFFFF
                             if wire_seq is not None else 0xFFFFFFFF)
        arrival_us = arrival_ns // 1000
        if wire_seq is not None:
            self.builder.on_packet(wire_seq, arrival_us - self._epoch_us)
        stats = self.reception.get(packet.ssrc)
        if stats is None:
            clock = 48_000 if packet.payload_type == AUDIO_PAYLOAD_TYPE else 90_000
            stats = self.reception[packet.ssrc] = ReceptionStats(packet.ssrc, clock)
            if self.builder.media_ssrc == 0:
                self.builder.media_ssrc = packet.ssrc
        stats.on_packet(packet.sequence_number, packet.timestamp, arrival_us)
        header_length = size - len(packet.payload) - packet.padding_size
        self.counters.packets_received += 1
        self.counters.bytes_received += size
        arrival = Arrival(arrival_ns, send_ns, transport_seq, packet.ssrc, frame_id,
                          packet.sequence_number, size, header_length, packet.payload_type,
                          packet.marker)
        out: list[RtcpPacket] = []
        if self.estimator is not None:
            self._report_states(packet, size, arrival_ns, send_ns)
            if self.poll_on_arrival and arrival_ns - self._last_poll_ns > self.poll_ns:
                out.append(self.poll_estimator(arrival_ns))
        return arrival, out

    def _report_states(self, packet: RtpPacket, size: int, arrival_ns: int,
                       send_ns: int) -> None:
        """AlphaRTC's per-packet stats (:class:`AlphaRtcStats`); the built-in GCC
        gets the same with float ms times."""
        assert self.estimator is not None
        stats = self._alphartc_stats.build(packet, size, arrival_ns, send_ns)
        if self._float_stats:
            abs_send_time = packet.abs_send_time()
            stats_f: dict[str, Any] = dict(stats)
            stats_f["send_time_ms"] = (self._abs_send_time.unwrap(abs_send_time) / 1000
                                       if abs_send_time is not None else send_ns / 1e6)
            stats_f["arrival_time_ms"] = arrival_ns / 1e6
            self.estimator.report_states(stats_f)
        else:
            self.estimator.report_states(stats)

    def on_rtcp_datagram(self, data: bytes, arrival_ns: int) -> None:
        """RTCP from the sender: an SR's time is kept for the next RR's LSR/DLSR."""
        self.counters.rtcp_received += 1
        try:
            packets = decode_compound(data)
        except PacketError:
            return
        for rtcp in packets:
            if isinstance(rtcp, SenderReport):
                # RFC 3550 §6.4.1: LSR is the middle 32 bits of the SR's NTP timestamp.
                self._last_sr[rtcp.ssrc] = ((rtcp.ntp_timestamp >> 16) & 0xFFFFFFFF, arrival_ns)

    # ---- timers -------------------------------------------------------------------------

    def next_deadline_ns(self) -> int | None:
        """When a timer fires next (None: no packet has arrived yet)."""
        if self.next_feedback_ns is None:
            return None
        if self.polls_on_timer and self.next_poll_ns is not None:
            return min(self.next_feedback_ns, self.next_poll_ns)
        return self.next_feedback_ns

    def poll_due(self, now_ns: int) -> bool:
        """Whether :meth:`on_timer` at ``now_ns`` polls the estimator."""
        return self.polls_on_timer and self.next_poll_ns is not None and now_ns >= self.next_poll_ns

    def on_timer(self, now_ns: int) -> list[list[RtcpPacket]]:
        """What the timers due at ``now_ns`` send: each inner list is one compound
        (transport feedback with RR + SDES when due; a REMB)."""
        out: list[list[RtcpPacket]] = []
        if self.next_feedback_ns is None or self.next_poll_ns is None:
            return out
        if now_ns >= self.next_feedback_ns:
            with_report = now_ns >= self._next_report_ns
            compound = self._feedback(now_ns, with_report)
            if compound:
                out.append(compound)
            if with_report:
                self._next_report_ns = now_ns + REPORT_INTERVAL_NS
            self.next_feedback_ns = max(self.next_feedback_ns + self.feedback_ns,
                                        now_ns + self.feedback_ns // 2)
        if self.poll_due(now_ns):
            out.append([self.poll_estimator(now_ns)])
            self.next_poll_ns = max(self.next_poll_ns + self.poll_ns, now_ns + self.poll_ns // 2)
        return out

    def _report_packets(self, now_ns: int) -> list[RtcpPacket]:
        blocks = []
        for ssrc, stats in self.reception.items():
            lsr, dlsr = 0, 0
            if ssrc in self._last_sr:
                lsr, sr_arrival = self._last_sr[ssrc]
                dlsr = (now_ns - sr_arrival) * 65536 // 1_000_000_000
            blocks.append(stats.report_block(lsr, dlsr))
        return [ReceiverReport(RECEIVER_SSRC, tuple(blocks[:31])),
                Sdes(((RECEIVER_SSRC, self.cname),))]

    def _feedback(self, now_ns: int, with_report: bool) -> list[RtcpPacket]:
        feedback = self.builder.build()
        self.counters.feedback_sent += len(feedback)
        out: list[RtcpPacket] = self._report_packets(now_ns) if with_report else []
        out.extend(feedback)
        return out

    def poll_estimator(self, now_ns: int) -> Remb:
        """Ask the estimator now; its answer, as the REMB that carries it."""
        assert self.estimator is not None
        estimate = min(MAX_REMB_BPS - 1, max(0, int(self.estimator.get_estimated_bandwidth())))
        self._last_poll_ns = now_ns
        self.counters.estimator_polls += 1
        self.counters.last_estimate_bps = estimate
        self.counters.remb_sent += 1
        return Remb(RECEIVER_SSRC, estimate, tuple(self.reception)[:255])

    # ---- totals ----------------------------------------------------------------------------

    def totals(self) -> tuple[int, int]:
        """(packets expected, packets lost) over every SSRC (RFC 3550 A.3)."""
        expected = sum(s.expected for s in self.reception.values())
        lost = sum(max(0, s.cumulative_lost) for s in self.reception.values())
        return expected, lost
