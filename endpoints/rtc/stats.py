"""Receiver bookkeeping: the per-packet arrival log record, the stats dict
AlphaRTC hands an estimator plugin, and RFC 3550 reception statistics
(fraction lost, cumulative loss, jitter) for receiver reports.

AlphaRTC's stats, field by field, as OpenNetLab/AlphaRTC builds them
(``modules/remote_bitrate_estimator/remote_estimator_proxy.cc``,
``RemoteEstimatorProxy::IncomingPacket`` → ``cmdinfer::ReportStates`` in
``modules/third_party/cmdinfer/cmdinfer.cc``, fed by
``call/call.cc`` ``Call::NotifyBweOfReceivedPacket``):

``send_time_ms``
    the packet's abs-send-time (24-bit 6.18 fixed-point seconds), unwrapped
    over its 64-s wrap and rounded to whole ms (``GetTtimeFromAbsSendtime``:
    ``round((abs / 2**18 + 64 * cycles) * 1000)``): the sender's clock modulo
    64 s at the first packet, not zero-based.
``arrival_time_ms``
    the receiver's monotonic clock in ms, rounded (``(packet_time_us + 500) /
    1000`` in ``Call::DeliverRtp``).
``payload_type``, ``sequence_number``, ``ssrc``
    from the RTP header as sent: the per-SSRC 16-bit RTP sequence number
    (wrapping, not unwrapped; not the transport-wide one), audio and video
    alike (``OnReceivedPacketWithType`` passes audio too).
``padding_length``
    RTP padding octets (``RtpPacket::padding_size``).
``header_length``
    the whole RTP header: 12 + 4 × CSRCs + the extension block with its
    4-byte header (``RtpPacket::headers_size``).
``payload_size``
    payload **plus padding** (``packet.payload_size() + packet.padding_size()``
    in ``Call::NotifyBweOfReceivedPacket``), so header_length + payload_size
    is the datagram's size.

All eight are ints, as cmdinfer's JSON carries them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from endpoints.rtc.rtcp import ReportBlock
from endpoints.rtc.rtp import ABS_SEND_TIME_BITS, RtpPacket, SequenceUnwrapper

#: AlphaRTC's per-packet stats keys, in its order (OpenNetLab BandwidthEstimator.py).
ALPHARTC_STATS_KEYS = ("send_time_ms", "arrival_time_ms", "payload_type", "sequence_number",
                       "ssrc", "padding_length", "header_length", "payload_size")

_ABS_WRAP = 1 << ABS_SEND_TIME_BITS
_ABS_FRACTION_BITS = 18  # 6.18 fixed point: units of 2**-18 s


def abs_send_time_ms(units: int) -> int:
    """Unwrapped abs-send-time units (2**-18 s) to ms, rounded half up like ``std::round``."""
    return (units * 1000 + (1 << (_ABS_FRACTION_BITS - 1))) >> _ABS_FRACTION_BITS


def arrival_ms(arrival_ns: int) -> int:
    """A CLOCK_MONOTONIC time in ns to AlphaRTC's arrival ms: µs first, then rounded."""
    return (arrival_ns // 1000 + 500) // 1000


class AbsSendTimeMs:
    """AlphaRTC's ``GetTtimeFromAbsSendtime``: abs-send-time to unwrapped ms.

    One deliberate difference: AlphaRTC counts a wrap only on a newer packet
    and adds the new cycle count to an older, reordered packet from before the
    wrap (its send time jumps 64 s ahead); here that packet keeps its cycle.
    """

    def __init__(self) -> None:
        self._newest: int | None = None  # the newest abs-send-time seen (24 bits)
        self._newest_units = 0  # ... and its unwrapped units

    def __call__(self, value: int) -> int:
        if self._newest is None:
            self._newest, self._newest_units = value, value
            return abs_send_time_ms(value)
        # Signed 24-bit distance from the newest (AlphaRTC: the << 8 and int32 cast).
        diff = (value - self._newest) % _ABS_WRAP
        if diff >= _ABS_WRAP // 2:
            diff -= _ABS_WRAP
        units = self._newest_units + diff
        if diff >= 0:
            self._newest, self._newest_units = value, units
        return abs_send_time_ms(units)


@dataclass(frozen=True)
class ArrivalRecord:
    """One received RTP packet, as the receiver logs it.

    ``send_time_ms`` is the sender's abs-send-time unwrapped (sender clock);
    ``arrival_time_ms`` is the receiver's clock. In a lab both are the same
    host clock, so their difference is the one-way delay.
    """

    send_time_ms: float
    arrival_time_ms: float
    payload_type: int
    sequence_number: int
    ssrc: int
    padding_length: int
    header_length: int
    payload_size: int
    transport_sequence: int | None = None
    marker: bool = False
    rtp_timestamp: int = 0

    @classmethod
    def from_packet(cls, packet: RtpPacket, *, send_time_ms: float, arrival_time_ms: float,
                    transport_sequence: int | None = None) -> ArrivalRecord:
        return cls(send_time_ms=send_time_ms, arrival_time_ms=arrival_time_ms,
                   payload_type=packet.payload_type, sequence_number=packet.sequence_number,
                   ssrc=packet.ssrc, padding_length=packet.padding_size,
                   header_length=packet.header_size, payload_size=len(packet.payload),
                   transport_sequence=transport_sequence, marker=packet.marker,
                   rtp_timestamp=packet.timestamp)

    def alphartc_stats(self) -> dict[str, int]:
        """The dict AlphaRTC hands to ``Estimator.report_states``: ints, times rounded,
        ``payload_size`` with the padding (see the module's notes)."""
        values = asdict(self)
        stats = {key: int(values[key]) for key in ALPHARTC_STATS_KEYS}
        stats["send_time_ms"] = math.floor(self.send_time_ms + 0.5)  # std::round, >= 0
        stats["arrival_time_ms"] = math.floor(self.arrival_time_ms + 0.5)
        stats["payload_size"] = self.payload_size + self.padding_length
        return stats

    def as_dict(self) -> dict[str, float | int | bool | None]:
        return asdict(self)


class AlphaRtcStats:
    """Builds, per received RTP packet, the stats dict AlphaRTC hands a plugin."""

    def __init__(self) -> None:
        self.send_time = AbsSendTimeMs()

    def build(self, packet: RtpPacket, datagram_size: int, arrival_ns: int,
              stamp_send_ns: int = -1) -> dict[str, int]:
        """``datagram_size`` is the UDP payload's length; ``stamp_send_ns`` (netlab's
        payload stamp) stands in for a missing abs-send-time, where AlphaRTC would
        report 0."""
        abs_send_time = packet.abs_send_time()
        if abs_send_time is not None:
            send_ms = self.send_time(abs_send_time)
        else:
            send_ms = arrival_ms(stamp_send_ns) if stamp_send_ns >= 0 else 0
        header_length = datagram_size - len(packet.payload) - packet.padding_size
        return {
            "send_time_ms": send_ms,
            "arrival_time_ms": arrival_ms(arrival_ns),
            "payload_type": packet.payload_type,
            "sequence_number": packet.sequence_number,
            "ssrc": packet.ssrc,
            "padding_length": packet.padding_size,
            "header_length": header_length,
            "payload_size": datagram_size - header_length,
        }


class ReceptionStats:
    """Per-SSRC loss and jitter as RFC 3550 A.3 and A.8 compute them."""

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self._unwrapper = SequenceUnwrapper()
        self._base: int | None = None
        self._highest = 0
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter = 0.0  # in timestamp units
        self._last_transit: float | None = None

    def on_packet(self, sequence_number: int, rtp_timestamp: int, arrival_time_us: int) -> None:
        seq = self._unwrapper.unwrap(sequence_number)
        if self._base is None:
            self._base = seq
            self._highest = seq
        self._highest = max(self._highest, seq)
        self.received += 1
        # A.8: transit = arrival (in RTP units) - RTP timestamp; J += (|D| - J) / 16.
        arrival_units = arrival_time_us * self.clock_rate / 1_000_000
        transit = arrival_units - rtp_timestamp
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            self._jitter += (d - self._jitter) / 16.0
        self._last_transit = transit

    @property
    def expected(self) -> int:
        return 0 if self._base is None else self._highest - self._base + 1

    @property
    def cumulative_lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter(self) -> float:
        """Interarrival jitter in RTP timestamp units."""
        return self._jitter

    def report_block(self, last_sr: int = 0, delay_since_last_sr: int = 0) -> ReportBlock:
        """A report block for the interval since the previous call (A.3)."""
        expected_interval = self.expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = self.expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportBlock(self.ssrc, fraction, self.cumulative_lost, self._highest & 0xFFFFFFFF,
                           int(self._jitter), last_sr, delay_since_last_sr)
