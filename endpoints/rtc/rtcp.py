"""RTCP packets: SR/RR and SDES (RFC 3550 §6.4-6.5), transport-wide feedback
(RTPFB FMT 15, draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) and
REMB (PSFB FMT 15, draft-alvestrand-rmcat-remb-03 §2.2), plus compound packets.

Pure wire format. ``TransportFeedback`` is the packet as it is on the wire
(reference time, per-slot receive deltas in 250 µs ticks); turning arrival
times into it and back is :mod:`endpoints.rtc.twcc`'s job.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from endpoints.rtc.errors import PacketError

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_RTPFB = 205  # RFC 4585 §6.1 transport-layer feedback
PT_PSFB = 206  # RFC 4585 §6.1 payload-specific feedback
FMT_TRANSPORT_CC = 15
FMT_REMB = 15  # application-layer feedback (RFC 4585 §6.4), identified by 'REMB'

REMB_IDENTIFIER = b"REMB"
#: TWCC receive deltas are multiples of 250 µs; the reference time of 64 ms.
DELTA_TICK_US = 250
REFERENCE_TIME_UNIT_US = 64_000
TICKS_PER_REFERENCE_UNIT = REFERENCE_TIME_UNIT_US // DELTA_TICK_US  # 256

# Packet status symbols (draft-holmer §3.1.1).
STATUS_NOT_RECEIVED = 0
STATUS_SMALL_DELTA = 1
STATUS_LARGE_DELTA = 2

MAX_RUN_LENGTH = (1 << 13) - 1


def _header(count: int, packet_type: int, body_len: int, padding: bool = False) -> bytes:
    if body_len % 4:
        raise PacketError(f"RTCP body of {body_len} bytes is not a multiple of 4")
    length_words = (4 + body_len) // 4 - 1
    if length_words > 0xFFFF:
        raise PacketError("RTCP packet longer than its 16-bit length field allows",
                          fix="split the content over several packets")
    first = 0x80 | (0x20 if padding else 0) | (count & 0x1F)
    return struct.pack("!BBH", first, packet_type, length_words)


# ---------------------------------------------------------------- SR / RR


@dataclass(frozen=True)
class ReportBlock:
    """RFC 3550 §6.4.1 reception report block (24 bytes)."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point: lost/expected * 256
    cumulative_lost: int  # 24-bit signed
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in timestamp units
    last_sr: int = 0  # middle 32 bits of the last SR's NTP timestamp
    delay_since_last_sr: int = 0  # in 1/65536 s

    def encode(self) -> bytes:
        lost = max(-(1 << 23), min((1 << 23) - 1, self.cumulative_lost)) & 0xFFFFFF
        return struct.pack("!IIIIII", self.ssrc, (self.fraction_lost & 0xFF) << 24 | lost,
                           self.highest_sequence & 0xFFFFFFFF, self.jitter & 0xFFFFFFFF,
                           self.last_sr & 0xFFFFFFFF, self.delay_since_last_sr & 0xFFFFFFFF)

    @classmethod
    def decode(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, word, high, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, pos)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, word >> 24, lost, high, jitter, lsr, dlsr)


@dataclass(frozen=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def encode(self) -> bytes:
        if len(self.reports) > 31:
            raise PacketError("more than 31 report blocks in one RR")
        body = struct.pack("!I", self.ssrc) + b"".join(r.encode() for r in self.reports)
        return _header(len(self.reports), PT_RR, len(body)) + body


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def encode(self) -> bytes:
        if len(self.reports) > 31:
            raise PacketError("more than 31 report blocks in one SR")
        body = struct.pack("!IQIII", self.ssrc, self.ntp_timestamp & (2**64 - 1),
                           self.rtp_timestamp & 0xFFFFFFFF, self.packet_count & 0xFFFFFFFF,
                           self.octet_count & 0xFFFFFFFF)
        body += b"".join(r.encode() for r in self.reports)
        return _header(len(self.reports), PT_SR, len(body)) + body


@dataclass(frozen=True)
class Sdes:
    """SDES with one CNAME item per chunk: RFC 3550 §6.1 wants one in each compound."""

    chunks: tuple[tuple[int, str], ...]  # (ssrc, cname)

    def encode(self) -> bytes:
        body = bytearray()
        for ssrc, cname in self.chunks:
            text = cname.encode()
            if len(text) > 255:
                raise PacketError("SDES CNAME longer than 255 bytes")
            chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text + b"\x00"
            chunk += b"\x00" * (-len(chunk) % 4)  # null item terminates, pad to 32 bits
            body += chunk
        return _header(len(self.chunks), PT_SDES, len(body)) + bytes(body)


# ---------------------------------------------------------------- REMB


@dataclass(frozen=True)
class Remb:
    """Receiver Estimated Max Bitrate; ``bitrate_bps`` is sent as mantissa(18)·2^exp(6)."""

    sender_ssrc: int
    bitrate_bps: int
    ssrcs: tuple[int, ...] = ()

    def encode(self) -> bytes:
        if not 0 <= self.bitrate_bps < (1 << 18) << 63:
            raise PacketError(f"REMB bitrate {self.bitrate_bps} cannot be encoded")
        if len(self.ssrcs) > 255:
            raise PacketError("REMB lists more than 255 SSRCs")
        exponent = 0
        while self.bitrate_bps >> exponent >= 1 << 18:
            exponent += 1
        mantissa = self.bitrate_bps >> exponent
        body = struct.pack("!II4sI", self.sender_ssrc, 0, REMB_IDENTIFIER,
                           len(self.ssrcs) << 24 | exponent << 18 | mantissa)
        body += b"".join(struct.pack("!I", s) for s in self.ssrcs)
        return _header(FMT_REMB, PT_PSFB, len(body)) + body

    @staticmethod
    def representable(bitrate_bps: int) -> int:
        """The value a receiver decodes for ``bitrate_bps`` (mantissa truncation)."""
        exponent = 0
        while bitrate_bps >> exponent >= 1 << 18:
            exponent += 1
        return (bitrate_bps >> exponent) << exponent


# ---------------------------------------------------------------- transport-wide feedback


@dataclass(frozen=True)
class TransportFeedback:
    """One transport-cc feedback packet as on the wire.

    ``deltas`` has one entry per reported sequence number, starting at
    ``base_sequence``: ``None`` for "not received", else the receive delta in
    250 µs ticks from the previous received packet (the first from
    ``reference_time`` × 64 ms). Deltas in 0..255 go out as 1 byte, others as
    2 signed bytes (draft-holmer §3.1.5).
    """

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    reference_time: int  # 24-bit signed, units of 64 ms
    feedback_count: int  # 8 bits, wraps
    deltas: tuple[int | None, ...] = field(default=())

    def symbols(self) -> list[int]:
        return [_symbol_for(d) for d in self.deltas]

    def encode(self) -> bytes:
        count = len(self.deltas)
        if not 1 <= count <= 0xFFFF:
            raise PacketError(f"transport feedback must report 1..65535 packets, not {count}")
        if not -(1 << 23) <= self.reference_time < 1 << 23:
            raise PacketError(f"reference time {self.reference_time} does not fit 24 signed bits")
        symbols = self.symbols()
        body = bytearray(struct.pack(
            "!IIHHI", self.sender_ssrc, self.media_ssrc, self.base_sequence & 0xFFFF, count,
            (self.reference_time & 0xFFFFFF) << 8 | (self.feedback_count & 0xFF)))
        for chunk in _encode_chunks(symbols):
            body += struct.pack("!H", chunk)
        for delta in self.deltas:
            if delta is None:
                continue
            body += struct.pack("!B" if 0 <= delta <= 0xFF else "!h", delta)
        body += b"\x00" * (-len(body) % 4)  # "zero padding" to 32 bits (draft §3.1)
        return _header(FMT_TRANSPORT_CC, PT_RTPFB, len(body)) + bytes(body)

    @classmethod
    def decode_body(cls, body: bytes) -> TransportFeedback:
        if len(body) < 16:
            raise PacketError("transport feedback shorter than its 16-byte fixed part")
        sender, media, base, count, word = struct.unpack_from("!IIHHI", body, 0)
        reference = word >> 8
        if reference & 0x800000:
            reference -= 1 << 24
        pos = 16
        symbols: list[int] = []
        while len(symbols) < count:
            if pos + 2 > len(body):
                raise PacketError("transport feedback truncated inside its status chunks")
            (chunk,) = struct.unpack_from("!H", body, pos)
            pos += 2
            symbols.extend(_decode_chunk(chunk))
        del symbols[count:]
        deltas: list[int | None] = []
        for symbol in symbols:
            if symbol == STATUS_NOT_RECEIVED:
                deltas.append(None)
            elif symbol == STATUS_SMALL_DELTA:
                if pos + 1 > len(body):
                    raise PacketError("transport feedback truncated inside its receive deltas")
                deltas.append(body[pos])
                pos += 1
            elif symbol == STATUS_LARGE_DELTA:
                if pos + 2 > len(body):
                    raise PacketError("transport feedback truncated inside its receive deltas")
                deltas.append(struct.unpack_from("!h", body, pos)[0])
                pos += 2
            else:
                raise PacketError("transport feedback uses the reserved status symbol 3")
        return cls(sender, media, base, reference, word & 0xFF, tuple(deltas))


def _symbol_for(delta: int | None) -> int:
    if delta is None:
        return STATUS_NOT_RECEIVED
    if 0 <= delta <= 0xFF:
        return STATUS_SMALL_DELTA
    if -(1 << 15) <= delta < 1 << 15:
        return STATUS_LARGE_DELTA
    raise PacketError(f"receive delta of {delta} ticks does not fit 16 signed bits",
                      fix="start a new feedback packet (twcc.FeedbackBuilder does this)")


def _encode_chunks(symbols: Sequence[int]) -> Iterable[int]:
    """Greedy chunking: run-length for long runs, else the denser status vector."""
    i, n = 0, len(symbols)
    while i < n:
        run = 1
        while i + run < n and run < MAX_RUN_LENGTH and symbols[i + run] == symbols[i]:
            run += 1
        window = symbols[i:i + 14]
        if run >= 14 or i + run == n:
            yield symbols[i] << 13 | run  # run-length chunk: 0 | S(2) | length(13)
            i += run
        elif STATUS_LARGE_DELTA not in window:
            bits = 0
            for k in range(14):  # 1-bit vector: 1 | 0 | 14 symbols
                bits = bits << 1 | (window[k] if k < len(window) else 0)
            yield 0x8000 | bits
            i += min(14, n - i)
        elif run >= 7:
            yield symbols[i] << 13 | run
            i += run
        else:
            bits = 0
            for k in range(7):  # 2-bit vector: 1 | 1 | 7 symbols
                bits = bits << 2 | (window[k] if k < len(window) else 0)
            yield 0xC000 | bits
            i += min(7, n - i)


def _decode_chunk(chunk: int) -> list[int]:
    if not chunk & 0x8000:
        return [(chunk >> 13) & 0x3] * (chunk & 0x1FFF)
    if not chunk & 0x4000:
        return [(chunk >> (13 - k)) & 0x1 for k in range(14)]
    return [(chunk >> (12 - 2 * k)) & 0x3 for k in range(7)]


# ---------------------------------------------------------------- compound


@dataclass(frozen=True)
class UnknownRtcp:
    """A packet type this module does not interpret, kept so nothing is lost."""

    packet_type: int
    count: int
    body: bytes

    def encode(self) -> bytes:
        return _header(self.count, self.packet_type, len(self.body)) + self.body


RtcpPacket = (SenderReport | ReceiverReport | Sdes | TransportFeedback | Remb | UnknownRtcp)


def encode_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate RTCP packets into one compound packet (RFC 3550 §6.1)."""
    return b"".join(p.encode() for p in packets)


def decode_compound(data: bytes) -> list[RtcpPacket]:
    """Split and decode a compound RTCP packet; raises :class:`PacketError` if malformed."""
    out: list[RtcpPacket] = []
    pos = 0
    if not data:
        raise PacketError("empty RTCP packet")
    while pos < len(data):
        if pos + 4 > len(data):
            raise PacketError("RTCP packet truncated inside its common header")
        first, packet_type, length_words = struct.unpack_from("!BBH", data, pos)
        if first >> 6 != 2:
            raise PacketError(f"RTCP version {first >> 6}, expected 2")
        end = pos + 4 * (length_words + 1)
        if end > len(data):
            raise PacketError(f"RTCP packet type {packet_type} runs past the datagram")
        body = data[pos + 4:end]
        if first & 0x20:  # padding: last octet counts it (RFC 3550 §6.4.1)
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise PacketError("RTCP padding count is invalid")
            body = body[:-body[-1]]
        out.append(_decode_one(first & 0x1F, packet_type, bytes(body)))
        pos = end
    return out


def _decode_one(count: int, packet_type: int, body: bytes) -> RtcpPacket:
    if packet_type in (PT_SR, PT_RR):
        fixed = 24 if packet_type == PT_SR else 4
        if len(body) < fixed + 24 * count:
            raise PacketError(f"RTCP {'SR' if packet_type == PT_SR else 'RR'} truncated")
        blocks = tuple(ReportBlock.decode(body, fixed + 24 * k) for k in range(count))
        if packet_type == PT_RR:
            return ReceiverReport(struct.unpack_from("!I", body, 0)[0], blocks)
        ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", body, 0)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks)
    if packet_type == PT_RTPFB and count == FMT_TRANSPORT_CC:
        return TransportFeedback.decode_body(body)
    if packet_type == PT_PSFB and count == FMT_REMB and body[8:12] == REMB_IDENTIFIER:
        if len(body) < 16:
            raise PacketError("REMB truncated")
        sender, _media, _ident, word = struct.unpack_from("!II4sI", body, 0)
        num = word >> 24
        if len(body) < 16 + 4 * num:
            raise PacketError("REMB SSRC list truncated")
        bitrate = (word & 0x3FFFF) << ((word >> 18) & 0x3F)
        ssrcs = struct.unpack_from(f"!{num}I", body, 16)
        return Remb(sender, bitrate, tuple(ssrcs))
    if packet_type == PT_SDES:
        return _decode_sdes(count, body)
    return UnknownRtcp(packet_type, count, body)


def _decode_sdes(count: int, body: bytes) -> Sdes:
    chunks: list[tuple[int, str]] = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise PacketError("SDES truncated")
        (ssrc,) = struct.unpack_from("!I", body, pos)
        pos += 4
        cname = ""
        while pos < len(body) and body[pos] != 0:
            if pos + 2 > len(body):
                raise PacketError("SDES item truncated")
            item_type, length = body[pos], body[pos + 1]
            text = body[pos + 2:pos + 2 + length]
            if item_type == 1:
                cname = text.decode(errors="replace")
            pos += 2 + length
        pos += 1  # the null item
        pos += -pos % 4
        chunks.append((ssrc, cname))
    return Sdes(tuple(chunks))
