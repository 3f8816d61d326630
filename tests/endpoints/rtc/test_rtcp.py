"""RTCP wire format: round trips, compound packets, scapy dissection.

scapy 2.8's ``scapy.contrib.rtcp.RTCP`` dissects SR, RR (report blocks) and
SDES fully; for RTPFB (205) and PSFB (206) it parses only the common header
(version, padding, count = FMT, packet type, length) and leaves the rest as
payload, so those are checked to that depth here and byte-for-byte against
tshark's transport-cc and REMB dissectors in test_tshark.py. It also does not
split compound packets: what follows the first packet is its payload, which
these tests dissect again.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.rtcp import RTCP

from endpoints.rtc.errors import PacketError
from endpoints.rtc.rtcp import (
    FMT_REMB,
    FMT_TRANSPORT_CC,
    PT_PSFB,
    PT_RR,
    PT_RTPFB,
    PT_SDES,
    PT_SR,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtcpPacket,
    Sdes,
    SenderReport,
    TransportFeedback,
    UnknownRtcp,
    decode_compound,
    encode_compound,
)
from endpoints.rtc.rtp import RtpPacket

BLOCK = ReportBlock(ssrc=0xCAFE, fraction_lost=64, cumulative_lost=-3, highest_sequence=70_000,
                    jitter=123, last_sr=0x12345678, delay_since_last_sr=0x10000)
FEEDBACK = TransportFeedback(sender_ssrc=1, media_ssrc=2, base_sequence=65530, reference_time=-5,
                             feedback_count=255,
                             deltas=(0, None, 255, 256, -4, *([None] * 20), 1, 2, 3, -1, 7))


def scapy_split(data: bytes) -> list[Any]:
    """Dissect a compound packet with scapy, one RTCP layer per packet."""
    layers = []
    while data:
        layer = RTCP(data)
        length = (layer.length + 1) * 4
        layers.append(RTCP(data[:length]))
        data = data[length:]
    return layers


def test_receiver_report_round_trip_and_scapy() -> None:
    report = ReceiverReport(ssrc=0xABCDEF01, reports=(BLOCK,))
    data = report.encode()
    assert decode_compound(data) == [report]
    layer = RTCP(data)
    assert (layer.version, layer.packet_type, layer.count, layer.length) == (2, PT_RR, 1, 7)
    assert layer.sourcesync == 0xABCDEF01
    block = layer.report_blocks[0]
    assert block.sourcesync == 0xCAFE
    assert block.fraction_lost == 64
    assert block.cumulative_lost == 0xFFFFFD  # 24-bit two's complement of -3
    assert block.highest_seqnum_recv == 70_000
    assert block.interarrival_jitter == 123
    assert block.last_SR_timestamp == 0x12345678
    assert block.delay_since_last_SR == 0x10000


def test_sender_report_round_trip_and_scapy() -> None:
    report = SenderReport(ssrc=7, ntp_timestamp=0x0123456789ABCDEF, rtp_timestamp=90_000,
                          packet_count=10, octet_count=12_000, reports=(BLOCK,))
    data = report.encode()
    assert decode_compound(data) == [report]
    layer = RTCP(data)
    assert layer.packet_type == PT_SR
    assert layer.sender_info.ntp_timestamp == 0x0123456789ABCDEF
    assert layer.sender_info.rtp_timestamp == 90_000
    assert layer.sender_info.sender_packet_count == 10
    assert layer.sender_info.sender_octet_count == 12_000
    assert layer.report_blocks[0].sourcesync == 0xCAFE


def test_sdes_round_trip_and_scapy() -> None:
    sdes = Sdes(((5, "netlab@alice"), (6, "x")))
    data = sdes.encode()
    assert len(data) % 4 == 0
    assert decode_compound(data) == [sdes]
    layer = RTCP(data)
    assert layer.packet_type == PT_SDES and layer.count == 2
    assert layer.sdes_chunks[0].sourcesync == 5
    assert layer.sdes_chunks[0].items[0].value == b"netlab@alice"


def test_remb_round_trip_and_mantissa_exponent() -> None:
    for bitrate in (0, 1, 262_143, 262_144, 1_000_000, 8_000_000, 123_456_789):
        remb = Remb(sender_ssrc=9, bitrate_bps=bitrate, ssrcs=(1, 2))
        (decoded,) = decode_compound(remb.encode())
        assert isinstance(decoded, Remb)
        assert decoded.bitrate_bps == Remb.representable(bitrate)
        assert bitrate - decoded.bitrate_bps <= bitrate / 2**17
        assert decoded.ssrcs == (1, 2)
    data = Remb(9, 1_000_000, (1,)).encode()
    assert data[12:16] == b"REMB"
    word = int.from_bytes(data[16:20], "big")
    assert word >> 24 == 1
    assert (word & 0x3FFFF) << ((word >> 18) & 0x3F) == 1_000_000
    layer = RTCP(data)  # scapy: common header only for PSFB
    assert (layer.version, layer.packet_type, layer.count) == (2, PT_PSFB, FMT_REMB)
    assert (layer.length + 1) * 4 == len(data)
    assert bytes(layer.payload) == data[4:]


def test_transport_feedback_round_trip_and_scapy_header() -> None:
    data = FEEDBACK.encode()
    assert len(data) % 4 == 0
    assert decode_compound(data) == [FEEDBACK]
    layer = RTCP(data)
    assert (layer.version, layer.padding) == (2, 0)
    assert (layer.packet_type, layer.count) == (PT_RTPFB, FMT_TRANSPORT_CC)
    assert (layer.length + 1) * 4 == len(data)
    body = bytes(layer.payload)
    assert int.from_bytes(body[8:10], "big") == 65530  # base sequence
    assert int.from_bytes(body[10:12], "big") == len(FEEDBACK.deltas)  # status count
    assert int.from_bytes(body[12:15], "big") == (-5) & 0xFFFFFF  # reference time
    assert body[15] == 255  # feedback packet count


def test_transport_feedback_chunk_kinds() -> None:
    # A long run → run-length chunk; mixed small → 1-bit vector; large → 2-bit vector.
    run = TransportFeedback(1, 2, 0, 0, 0, tuple([4] * 100))
    chunk = int.from_bytes(run.encode()[20:22], "big")
    assert chunk >> 15 == 0 and (chunk >> 13) & 3 == 1 and chunk & 0x1FFF == 100
    mixed = TransportFeedback(1, 2, 0, 0, 0, (1, None) * 7)
    chunk = int.from_bytes(mixed.encode()[20:22], "big")
    assert chunk >> 14 == 0b10 and chunk & 0x3FFF == 0b10101010101010
    large = TransportFeedback(1, 2, 0, 0, 0, (300, None, 1, 300, None, 1, 1))
    chunk = int.from_bytes(large.encode()[20:22], "big")
    assert chunk >> 14 == 0b11
    for packet in (run, mixed, large):
        assert decode_compound(packet.encode()) == [packet]


def test_compound_round_trip_and_scapy_walk() -> None:
    packets: list[RtcpPacket] = [ReceiverReport(1, (BLOCK,)), Sdes(((1, "cname"),)), FEEDBACK,
                                 Remb(1, 2_500_000, (3,))]
    data = encode_compound(packets)
    assert decode_compound(data) == packets
    layers = scapy_split(data)
    assert [layer.packet_type for layer in layers] == [PT_RR, PT_SDES, PT_RTPFB, PT_PSFB]
    assert all(layer.version == 2 for layer in layers)
    assert sum((layer.length + 1) * 4 for layer in layers) == len(data)


def test_unknown_packets_survive_and_padding_is_honoured() -> None:
    bye = UnknownRtcp(203, 1, b"\x00\x00\x00\x01")
    assert decode_compound(bye.encode()) == [bye]
    # An RR with the padding bit and 4 bytes of padding (last octet = 4).
    padded = bytes([0xA0, PT_RR, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4])
    assert decode_compound(padded) == [ReceiverReport(9)]


@pytest.mark.parametrize("data", [
    b"",
    bytes([0x80, PT_RR, 0, 5, 0, 0, 0, 1]),  # length past the datagram
    bytes([0x40, PT_RR, 0, 1, 0, 0, 0, 1]),  # version 1
    bytes([0x81, PT_RR, 0, 1, 0, 0, 0, 1]),  # RR claims a block it lacks
    bytes([0x8F, PT_RTPFB, 0, 4]) + bytes(8) + bytes([0, 0, 0, 9]),  # TWCC without chunks
])
def test_malformed_rtcp_raises(data: bytes) -> None:
    with pytest.raises(PacketError):
        decode_compound(data)


def test_unencodable_values_raise() -> None:
    with pytest.raises(PacketError):
        TransportFeedback(1, 2, 0, 0, 0, (40_000,)).encode()
    with pytest.raises(PacketError):
        TransportFeedback(1, 2, 0, 0, 0, ()).encode()
    with pytest.raises(PacketError):
        TransportFeedback(1, 2, 0, 1 << 23, 0, (1,)).encode()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_packet_error(data: bytes) -> None:
    """A receiver faces any UDP payload: malformed input must be a PacketError, never a crash."""
    for raw in (data, bytes([0x80 | (data[0] & 0x3F if data else 0)]) + data[1:]):
        with contextlib.suppress(PacketError):
            decode_compound(raw)
        with contextlib.suppress(PacketError):
            RtpPacket.decode(raw)
