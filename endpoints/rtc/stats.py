"""Receiver bookkeeping: the per-packet arrival log record and RFC 3550
reception statistics (fraction lost, cumulative loss, jitter) for receiver
reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from endpoints.rtc.rtcp import ReportBlock
from endpoints.rtc.rtp import RtpPacket, SequenceUnwrapper

#: AlphaRTC's per-packet stats keys, in its order (OpenNetLab BandwidthEstimator.py).
ALPHARTC_STATS_KEYS = ("send_time_ms", "arrival_time_ms", "payload_type", "sequence_number",
                       "ssrc", "padding_length", "header_length", "payload_size")


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
        """The dict AlphaRTC hands to ``Estimator.report_states`` (integers, as AlphaRTC's)."""
        values = asdict(self)
        return {key: int(values[key]) for key in ALPHARTC_STATS_KEYS}

    def as_dict(self) -> dict[str, float | int | bool | None]:
        return asdict(self)


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
