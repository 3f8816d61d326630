"""RTP wire format: round trips, RFC 8285 forms, abs-send-time, scapy dissection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.rtp import RTP

from endpoints.rtc.errors import PacketError
from endpoints.rtc.rtp import (
    ABS_SEND_TIME_ID,
    ONE_BYTE_PROFILE,
    TRANSPORT_SEQ_ID,
    AbsSendTimeUnwrapper,
    RtpPacket,
    SequenceUnwrapper,
    abs_send_time_from_us,
    abs_send_time_to_us,
    is_rtcp,
)


def media_packet() -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=65535, timestamp=0xFFFFFFF0,
                       ssrc=0x11223344, marker=True, payload=bytes(range(200)))
    packet.set_transport_sequence_number(0xBEEF)
    packet.set_abs_send_time(12_345_678)
    return packet


def test_round_trip_with_one_byte_extensions() -> None:
    packet = media_packet()
    data = packet.encode()
    assert data[0] == 0x90  # V=2, X=1
    assert data[1] == 0x80 | 96
    assert int.from_bytes(data[12:14], "big") == ONE_BYTE_PROFILE
    decoded = RtpPacket.decode(data)
    assert decoded == packet
    assert decoded.transport_sequence_number() == 0xBEEF
    assert decoded.abs_send_time() == abs_send_time_from_us(12_345_678)
    # 12 fixed + 4 extension header + (1+2) + (1+3) = 7 → padded to 8
    assert decoded.header_size == 12 + 4 + 8
    assert decoded.size == len(data)


def test_two_byte_form_when_needed_and_forced() -> None:
    long_element = RtpPacket(96, 1, 2, 3, extensions={20: b"abc", 1: b""}, payload=b"p")
    data = long_element.encode()
    assert int.from_bytes(data[12:14], "big") == 0x1000
    decoded = RtpPacket.decode(data)
    assert decoded.extensions == {20: b"abc", 1: b""}
    forced = RtpPacket(96, 1, 2, 3, extensions={5: b"\x00\x01"}, two_byte_extensions=True)
    assert RtpPacket.decode(forced.encode()) == forced


def test_padding_and_csrcs() -> None:
    packet = RtpPacket(0, 7, 8, 9, csrcs=(1, 2, 3), payload=b"abc", padding_size=5)
    data = packet.encode()
    assert len(data) == 12 + 12 + 3 + 5 and data[-1] == 5
    assert RtpPacket.decode(data) == packet


def test_one_byte_parser_skips_padding_bytes_and_stops_at_id_15() -> None:
    # profile, 2 words: [pad][id=5 L=1: 2 bytes][id=15 stop][junk]
    block = bytes([0x00, 0x51, 0xAB, 0xCD, 0xF0, 0x99, 0x99, 0x99])
    data = bytes([0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]) + b"\xbe\xde\x00\x02" + block
    assert RtpPacket.decode(data).extensions == {5: b"\xab\xcd"}


@pytest.mark.parametrize("data", [
    b"\x80\x60\x00",  # too short
    bytes([0x40, 96]) + bytes(10),  # version 1
    bytes([0x90, 96]) + bytes(10) + b"\xbe\xde\x00\x05",  # extension runs past the end
    bytes([0xA0, 96]) + bytes(10) + b"\x00\x09",  # padding count larger than the packet
])
def test_malformed_packets_raise(data: bytes) -> None:
    with pytest.raises(PacketError):
        RtpPacket.decode(data)


def test_out_of_range_fields_raise_with_a_fix() -> None:
    with pytest.raises(PacketError) as info:
        RtpPacket(payload_type=200, sequence_number=0, timestamp=0, ssrc=0).encode()
    assert info.value.fix


def test_abs_send_time_is_6_18_fixed_point_and_wraps_every_64_s() -> None:
    assert abs_send_time_from_us(1_000_000) == 1 << 18
    assert abs_send_time_from_us(64_000_000) == 0
    assert abs_send_time_from_us(64_500_000) == abs_send_time_from_us(500_000)
    assert abs(abs_send_time_to_us(abs_send_time_from_us(3_141_592)) - 3_141_592) <= 2
    unwrapper = AbsSendTimeUnwrapper()
    times = [63_000_000, 63_900_000, 64_100_000, 64_050_000, 90_000_000, 120_000_000]
    unwrapped = [unwrapper.unwrap(abs_send_time_from_us(t)) for t in times]
    assert [u - unwrapped[0] for u in unwrapped] == pytest.approx(
        [t - times[0] for t in times], abs=4)


def test_sequence_unwrapper_crosses_the_wrap_and_tolerates_reordering() -> None:
    unwrapper = SequenceUnwrapper()
    assert [unwrapper.unwrap(s) for s in (65534, 65535, 1, 0, 2)] == [65534, 65535, 65537,
                                                                     65536, 65538]


def test_rtcp_rtp_demultiplexing() -> None:
    assert not is_rtcp(media_packet().encode())
    assert is_rtcp(bytes([0x80, 201, 0, 1, 0, 0, 0, 1]))


def test_scapy_dissects_our_rtp() -> None:
    packet = media_packet()
    scapy_packet = RTP(packet.encode())
    assert scapy_packet.version == 2
    assert scapy_packet.marker == 1
    assert scapy_packet.payload_type == 96
    assert scapy_packet.sequence == 65535
    assert scapy_packet.timestamp == 0xFFFFFFF0
    assert scapy_packet.sourcesync == 0x11223344
    assert scapy_packet.extension == 1
    ext = scapy_packet["RTP extension"]
    assert ext.header_id == ONE_BYTE_PROFILE
    assert ext.header_len == 2
    words = b"".join(w.to_bytes(4, "big") for w in ext.header)
    # scapy stops at the 32-bit words; the RFC 8285 elements inside are ours to check.
    assert words[0] == (TRANSPORT_SEQ_ID << 4) | 1 and words[1:3] == b"\xbe\xef"
    assert words[3] == (ABS_SEND_TIME_ID << 4) | 2
    assert int.from_bytes(words[4:7], "big") == abs_send_time_from_us(12_345_678)
    assert bytes(ext.payload) == bytes(range(200))


extension_maps = st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16),
                                 max_size=6)


@given(pt=st.integers(0, 127), seq=st.integers(0, 0xFFFF), ts=st.integers(0, 2**32 - 1),
       ssrc=st.integers(0, 2**32 - 1), marker=st.booleans(),
       csrcs=st.lists(st.integers(0, 2**32 - 1), max_size=15), extensions=extension_maps,
       payload=st.binary(max_size=1200), padding=st.integers(0, 255))
def test_round_trip_property(pt: int, seq: int, ts: int, ssrc: int, marker: bool,
                             csrcs: list[int], extensions: dict[int, bytes], payload: bytes,
                             padding: int) -> None:
    packet = RtpPacket(pt, seq, ts, ssrc, marker, tuple(csrcs), extensions, payload, padding)
    data = packet.encode()
    assert len(data) == packet.size
    assert RtpPacket.decode(data) == packet
    assert RTP(data).sequence == seq
