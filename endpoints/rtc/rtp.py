"""RTP packets (RFC 3550 §5.1) with RFC 8285 header extensions.

Pure wire format: bytes in, dataclass out, and back. The two header
extensions GCC needs are encoded here too:

* transport-wide sequence number, draft-holmer-rmcat-transport-wide-cc-extensions-01
  §2: 16 bits, big-endian, one counter across all the session's streams;
* abs-send-time (http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time):
  24 bits, seconds in 6.18 fixed point, so it wraps every 64 s.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from endpoints.rtc.errors import PacketError

RTP_VERSION = 2
FIXED_HEADER_SIZE = 12
#: The largest payload the packetizer puts in one packet (issue: ≤ 1200 bytes).
MAX_PAYLOAD_SIZE = 1200

#: RFC 8285 §4.2 one-byte header profile, §4.3 two-byte header profile (+ 4 app bits).
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000
TWO_BYTE_PROFILE_MASK = 0xFFF0

#: Extension ids as libwebrtc's default SDP offers them (a=extmap lines).
ABS_SEND_TIME_ID = 3
TRANSPORT_SEQ_ID = 5

ABS_SEND_TIME_BITS = 24
ABS_SEND_TIME_WRAP_US = 64_000_000  # 2**24 units of 2**-18 s = 64 s


@dataclass
class RtpPacket:
    """One RTP packet; ``extensions`` maps an RFC 8285 id to its element bytes."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extensions: dict[int, bytes] = field(default_factory=dict)
    payload: bytes = b""
    padding_size: int = 0
    #: Force the two-byte form even when every element fits the one-byte form.
    two_byte_extensions: bool = False

    # ---- sizes (AlphaRTC's stats report them per packet) -----------------

    @property
    def header_size(self) -> int:
        """Bytes before the payload: fixed header, CSRCs and the extension block."""
        return FIXED_HEADER_SIZE + 4 * len(self.csrcs) + self._extension_block_size()

    def _extension_block_size(self) -> int:
        """``len(self._extension_block())``, counted without encoding (the pacer and
        the simulator ask every packet's size several times)."""
        if not self.extensions:
            return 0
        per_element = 2 if self._uses_two_byte_form() else 1
        body = sum(per_element + len(data) for data in self.extensions.values())
        return 4 + body + (-body % 4)

    @property
    def size(self) -> int:
        """Bytes on the wire (UDP payload)."""
        return self.header_size + len(self.payload) + self.padding_size

    # ---- encode ------------------------------------------------------------

    def _uses_two_byte_form(self) -> bool:
        if self.two_byte_extensions:
            return True
        return any(not (1 <= ext_id <= 14 and 1 <= len(data) <= 16)
                   for ext_id, data in self.extensions.items())

    def _extension_block(self) -> bytes:
        if not self.extensions:
            return b""
        body = bytearray()
        if self._uses_two_byte_form():
            profile = TWO_BYTE_PROFILE
            for ext_id, data in self.extensions.items():
                if not (1 <= ext_id <= 255 and len(data) <= 255):
                    raise PacketError(
                        f"RTP header extension id {ext_id} with {len(data)} bytes "
                        "cannot be encoded",
                        where="RtpPacket.extensions",
                        fix="use ids 1..255 and at most 255 bytes per element (RFC 8285 §4.3)",
                    )
                body += bytes((ext_id, len(data))) + data
        else:
            profile = ONE_BYTE_PROFILE
            for ext_id, data in self.extensions.items():
                body += bytes(((ext_id << 4) | (len(data) - 1),)) + data
        body += b"\x00" * (-len(body) % 4)  # RFC 8285 §4.1: pad with zero bytes to 32 bits
        return struct.pack("!HH", profile, len(body) // 4) + bytes(body)

    def encode(self) -> bytes:
        """The packet's wire bytes."""
        _check_range("payload_type", self.payload_type, 0, 127)
        _check_range("sequence_number", self.sequence_number, 0, 0xFFFF)
        _check_range("timestamp", self.timestamp, 0, 0xFFFFFFFF)
        _check_range("ssrc", self.ssrc, 0, 0xFFFFFFFF)
        _check_range("padding_size", self.padding_size, 0, 255)
        if len(self.csrcs) > 15:
            raise PacketError("more than 15 CSRCs", where="RtpPacket.csrcs",
                              fix="RFC 3550 allows at most 15 contributing sources")
        extension = self._extension_block()
        first = (RTP_VERSION << 6) | (0x20 if self.padding_size else 0)
        first |= (0x10 if extension else 0) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        out = bytearray(struct.pack("!BBHII", first, second, self.sequence_number,
                                    self.timestamp, self.ssrc))
        for csrc in self.csrcs:
            out += struct.pack("!I", csrc)
        out += extension
        out += self.payload
        if self.padding_size:
            # RFC 3550 §5.1: the last padding octet counts the padding, itself included.
            out += b"\x00" * (self.padding_size - 1) + bytes((self.padding_size,))
        return bytes(out)

    # ---- decode ------------------------------------------------------------

    @classmethod
    def decode(cls, data: bytes) -> RtpPacket:
        """Parse wire bytes; raises :class:`PacketError` on anything malformed."""
        if len(data) < FIXED_HEADER_SIZE:
            raise PacketError(f"RTP packet of {len(data)} bytes is shorter than its 12-byte header")
        first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", data, 0)
        if first >> 6 != RTP_VERSION:
            raise PacketError(f"RTP version {first >> 6}, expected 2")
        csrc_count = first & 0x0F
        pos = FIXED_HEADER_SIZE
        if len(data) < pos + 4 * csrc_count:
            raise PacketError("RTP packet truncated inside its CSRC list")
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, pos)
        pos += 4 * csrc_count
        extensions: dict[int, bytes] = {}
        two_byte = False
        if first & 0x10:
            if len(data) < pos + 4:
                raise PacketError("RTP packet truncated inside its extension header")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            end = pos + 4 * words
            if len(data) < end:
                raise PacketError("RTP header extension runs past the end of the packet")
            if profile == ONE_BYTE_PROFILE:
                extensions = _parse_one_byte(data[pos:end])
            elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
                extensions = _parse_two_byte(data[pos:end])
                two_byte = True
            # Any other profile is not RFC 8285: skipped, as RFC 3550 §5.3.1 allows.
            pos = end
        padding = 0
        if first & 0x20:
            if len(data) <= pos:
                raise PacketError("RTP padding bit set but there is no padding octet")
            padding = data[-1]
            if padding == 0 or pos + padding > len(data):
                raise PacketError(f"RTP padding count {padding} is invalid for this packet")
        payload = bytes(data[pos:len(data) - padding])
        return cls(payload_type=second & 0x7F, sequence_number=seq, timestamp=ts, ssrc=ssrc,
                   marker=bool(second & 0x80), csrcs=tuple(csrcs), extensions=extensions,
                   payload=payload, padding_size=padding, two_byte_extensions=two_byte)

    # ---- the two extensions GCC uses -----------------------------------------

    def transport_sequence_number(self, ext_id: int = TRANSPORT_SEQ_ID) -> int | None:
        data = self.extensions.get(ext_id)
        if data is None or len(data) < 2:
            return None
        return int.from_bytes(data[:2], "big")

    def set_transport_sequence_number(self, seq: int, ext_id: int = TRANSPORT_SEQ_ID) -> None:
        self.extensions[ext_id] = (seq & 0xFFFF).to_bytes(2, "big")

    def abs_send_time(self, ext_id: int = ABS_SEND_TIME_ID) -> int | None:
        data = self.extensions.get(ext_id)
        if data is None or len(data) != 3:
            return None
        return int.from_bytes(data, "big")

    def set_abs_send_time(self, time_us: int, ext_id: int = ABS_SEND_TIME_ID) -> None:
        self.extensions[ext_id] = abs_send_time_from_us(time_us).to_bytes(3, "big")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise PacketError(f"RTP field {name}={value} is outside {low}..{high}",
                          where=f"RtpPacket.{name}", fix=f"use a value in {low}..{high}")


def _parse_one_byte(block: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(block):
        byte = block[pos]
        if byte == 0:  # padding between elements (RFC 8285 §4.2)
            pos += 1
            continue
        ext_id, length = byte >> 4, (byte & 0x0F) + 1
        if ext_id == 15:  # reserved: stop processing (RFC 8285 §4.2)
            break
        pos += 1
        if pos + length > len(block):
            raise PacketError(f"one-byte extension element id {ext_id} runs past its block")
        out[ext_id] = bytes(block[pos:pos + length])
        pos += length
    return out


def _parse_two_byte(block: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(block):
        ext_id = block[pos]
        if ext_id == 0:
            pos += 1
            continue
        if pos + 2 > len(block):
            raise PacketError("two-byte extension element header truncated")
        length = block[pos + 1]
        pos += 2
        if pos + length > len(block):
            raise PacketError(f"two-byte extension element id {ext_id} runs past its block")
        out[ext_id] = bytes(block[pos:pos + length])
        pos += length
    return out


def abs_send_time_from_us(time_us: int) -> int:
    """A time in µs as abs-send-time: 6.18 fixed-point seconds, low 24 bits, rounded."""
    return (((time_us << 18) + 500_000) // 1_000_000) & ((1 << ABS_SEND_TIME_BITS) - 1)


def abs_send_time_to_us(value: int) -> int:
    """abs-send-time units (2**-18 s) to µs within one 64-s wrap, rounded."""
    return (value * 1_000_000 + (1 << 17)) >> 18


class AbsSendTimeUnwrapper:
    """Turns the 64-s-wrapping abs-send-time into a monotone µs count.

    Assumes consecutive values are less than 32 s apart, which holds for any
    live stream.
    """

    def __init__(self) -> None:
        self._last: int | None = None
        self._units = 0

    def unwrap(self, value: int) -> int:
        if self._last is None:
            self._units = value
        else:
            diff = (value - self._last) & 0xFFFFFF
            if diff >= 1 << 23:
                diff -= 1 << 24  # a reordered, slightly older packet
            self._units += diff
        self._last = value
        return abs_send_time_to_us(self._units)


class SequenceUnwrapper:
    """Extends 16-bit sequence numbers to monotone integers (RFC 3550 A.1 idea)."""

    def __init__(self, bits: int = 16) -> None:
        self._mod = 1 << bits
        self._last: int | None = None

    def unwrap(self, seq: int) -> int:
        if self._last is None:
            self._last = seq
            return seq
        diff = (seq - self._last) % self._mod
        if diff >= self._mod // 2:
            diff -= self._mod
        value = self._last + diff
        # Keep the reference at the newest value seen so reordering does not drift it.
        self._last = max(self._last, value)
        return value


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: on a shared port, RTCP packet types 192..223 tell RTCP from RTP."""
    return len(data) >= 2 and 192 <= data[1] <= 223
