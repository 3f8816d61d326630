"""Golden test: the stats dict a plugin gets carries what AlphaRTC hands the same
estimator, field by field, on packets recorded from a real netlab RTC call.

The reference below is written from AlphaRTC's source, not from netlab's RTP
code: ``modules/remote_bitrate_estimator/remote_estimator_proxy.cc``
(``IncomingPacket`` → ``cmdinfer::ReportStates``; ``GetTtimeFromAbsSendtime``
for ``send_time_ms``), ``call/call.cc`` (``DeliverRtp``: arrival ms =
``(packet_time_us + 500) / 1000``; ``NotifyBweOfReceivedPacket``: payload
size = payload + padding) and ``modules/rtp_rtcp/source/rtp_packet_received.cc``
(``GetHeader``: headerLength = headers_size(), paddingLength = padding_size()),
parsing the header bytes by RFC 3550 §5.1 and RFC 8285 §4.2 itself.
"""

from __future__ import annotations

import math
import struct
from collections import defaultdict
from typing import Any

from endpoints.rtc.packetizer import AUDIO_PAYLOAD_TYPE, VIDEO_PAYLOAD_TYPE
from endpoints.rtc.plugin_replay import bundled_recording
from endpoints.rtc.recording import RecordedPacket, read_recording
from endpoints.rtc.rtp import ABS_SEND_TIME_ID, RtpPacket
from endpoints.rtc.stats import ALPHARTC_STATS_KEYS, AlphaRtcStats

LINK_DELAY_MS = 20  # the recorded call's link: 2 Mbit/s, 20 ms, 100-packet queue


class AlphaRtcReference:
    """AlphaRTC's receive path, restated over raw header bytes."""

    def __init__(self) -> None:
        self.cycles = -1
        self.max_abs_send_time = 0

    def send_time_ms(self, abs_send_time: int) -> int:
        # GetTtimeFromAbsSendtime, line by line (uint32 shifts, int32 cast).
        if self.cycles == -1:
            self.max_abs_send_time = abs_send_time
            self.cycles = 0
        diff = ((abs_send_time << 8) - (self.max_abs_send_time << 8)) & 0xFFFFFFFF
        if diff < 0x80000000:  # static_cast<int32_t>(...) >= 0
            if abs_send_time < self.max_abs_send_time:
                self.cycles += 1
            self.max_abs_send_time = abs_send_time
        seconds = abs_send_time / 262144 + 64.0 * self.cycles
        return math.floor(seconds * 1000 + 0.5)  # std::round of a positive value

    def stats(self, recorded: RecordedPacket) -> dict[str, Any]:
        header = recorded.header
        csrc_count, extension = header[0] & 0x0F, bool(header[0] & 0x10)
        payload_type = header[1] & 0x7F
        sequence_number, _timestamp, ssrc = struct.unpack("!HII", header[2:12])
        length = 12 + 4 * csrc_count
        abs_send_time = 0  # RTPHeaderExtension's default when the extension is absent
        if extension:
            profile, words = struct.unpack("!HH", header[length:length + 4])
            assert profile == 0xBEDE  # one-byte elements (RFC 8285 §4.2)
            block = header[length + 4:length + 4 + 4 * words]
            length += 4 + 4 * words
            pos = 0
            while pos < len(block):
                if block[pos] == 0:
                    pos += 1
                    continue
                ext_id, size = block[pos] >> 4, (block[pos] & 0x0F) + 1
                if ext_id == ABS_SEND_TIME_ID:
                    abs_send_time = int.from_bytes(block[pos + 1:pos + 1 + size], "big")
                pos += 1 + size
        assert length == len(header)
        return {"send_time_ms": self.send_time_ms(abs_send_time),
                "arrival_time_ms": (recorded.arrival_ns // 1000 + 500) // 1000,
                "payload_type": payload_type, "sequence_number": sequence_number,
                "ssrc": ssrc, "padding_length": recorded.padding,
                "header_length": length, "payload_size": recorded.size - length}


def _netlab_stats(packets: list[RecordedPacket]) -> list[dict[str, int]]:
    builder = AlphaRtcStats()
    out = []
    for recorded in packets:
        data = recorded.datagram()
        out.append(builder.build(RtpPacket.decode(data), len(data), recorded.arrival_ns))
    return out


def test_every_field_matches_alphartc_on_a_recorded_call() -> None:
    packets = list(read_recording(bundled_recording()))
    assert len(packets) > 3000
    reference = AlphaRtcReference()
    for recorded, stats in zip(packets, _netlab_stats(packets), strict=True):
        assert tuple(stats) == ALPHARTC_STATS_KEYS
        assert all(type(value) is int for value in stats.values()), stats
        assert stats == reference.stats(recorded)


def test_recorded_fields_mean_what_alphartc_means() -> None:
    packets = list(read_recording(bundled_recording()))
    stats = _netlab_stats(packets)
    by_type: dict[int, set[int]] = defaultdict(set)
    for s in stats:
        by_type[s["payload_type"]].add(s["ssrc"])
    # Audio and video both reach the estimator, one SSRC each (plus probe padding).
    assert len(by_type[VIDEO_PAYLOAD_TYPE]) == 1 and len(by_type[AUDIO_PAYLOAD_TYPE]) == 1
    assert by_type[VIDEO_PAYLOAD_TYPE] != by_type[AUDIO_PAYLOAD_TYPE]
    # The per-SSRC RTP sequence space: consecutive within each SSRC (no loss on this
    # link), not the transport-wide number shared by all SSRCs.
    last: dict[int, int] = {}
    for s in stats:
        if s["ssrc"] in last:
            assert s["sequence_number"] == (last[s["ssrc"]] + 1) & 0xFFFF
        last[s["ssrc"]] = s["sequence_number"]
    # Header: 12 bytes + a 4-byte extension header + 8 bytes of abs-send-time and
    # transport-wide sequence elements; the datagram is header + payload_size.
    assert {s["header_length"] for s in stats} == {24}
    assert all(s["header_length"] + s["payload_size"] == p.size
               for s, p in zip(stats, packets, strict=True))
    # Both times are ms on one clock (the lab's host): arrival - send is the
    # one-way delay modulo abs-send-time's 64 s, at least the link's 20 ms.
    delays = [(s["arrival_time_ms"] - s["send_time_ms"]) % 64_000 for s in stats]
    assert min(delays) >= LINK_DELAY_MS - 1 and max(delays) < 1_000
    sends = [s["send_time_ms"] for s in stats]
    assert sends[-1] - sends[0] > 14_000  # unwrapped, increasing over the 15-s call


def test_abs_send_time_unwraps_like_alphartc() -> None:
    """24-bit 6.18 fixed point, 64-s wrap: across two wraps, rounded to ms."""
    builder, reference = AlphaRtcStats(), AlphaRtcReference()
    step = 1 << 16  # 0.25 s
    value = (1 << 24) - 3 * step
    for _ in range(600):  # 150 s: two wraps
        packet = RtpPacket(96, 1, 0, 7, payload=bytes(100))
        packet.extensions[ABS_SEND_TIME_ID] = (value & 0xFFFFFF).to_bytes(3, "big")
        data = packet.encode()
        stats = builder.build(RtpPacket.decode(data), len(data), 10**9)
        assert stats["send_time_ms"] == reference.send_time_ms(value & 0xFFFFFF)
        value += step
    assert stats["send_time_ms"] == math.floor((value - step) * 1000 / 2**18 + 0.5)


def test_reordered_packet_across_a_wrap_keeps_its_cycle() -> None:
    """Where netlab knowingly differs: AlphaRTC puts an older packet from before
    the wrap 64 s ahead; netlab keeps it where it was sent."""
    builder, reference = AlphaRtcStats(), AlphaRtcReference()
    results = []
    # 0.25 s before the wrap, 0.25 s after, then one sent 0.125 s before the wrap
    for value in ((1 << 24) - (1 << 16), 1 << 16, (1 << 24) - (1 << 15)):
        packet = RtpPacket(96, 1, 0, 7, payload=bytes(10))
        packet.extensions[ABS_SEND_TIME_ID] = value.to_bytes(3, "big")
        data = packet.encode()
        ours = builder.build(RtpPacket.decode(data), len(data), 0)["send_time_ms"]
        results.append((ours, reference.send_time_ms(value)))
    (a, ra), (b, rb), (c, rc) = results
    assert (a, b) == (ra, rb) and a < c < b
    assert rc - c == 64_000


def test_padding_csrcs_and_extensions_count_as_alphartc_counts_them() -> None:
    packet = RtpPacket(96, 65535, 0, 0xC0FFED, payload=bytes(1000), padding_size=17,
                       csrcs=(1, 2))
    packet.set_transport_sequence_number(9)
    packet.set_abs_send_time(1_000_000)  # 1 s: 1 << 18 in 6.18 fixed point
    data = packet.encode()
    stats = AlphaRtcStats().build(RtpPacket.decode(data), len(data), 2_000_499_999)
    assert stats == {"send_time_ms": 1000, "arrival_time_ms": 2000, "payload_type": 96,
                     "sequence_number": 65535, "ssrc": 0xC0FFED, "padding_length": 17,
                     "header_length": 12 + 8 + 4 + 8, "payload_size": 1000 + 17}
    assert stats == AlphaRtcReference().stats(RecordedPacket(
        2_000_499_999, len(data), data[:stats["header_length"]], 17))
