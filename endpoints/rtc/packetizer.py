"""Frames into RTP packets (RFC 3550): payloads of at most 1200 bytes split
evenly over the fewest packets, the marker bit on a frame's last packet
(RFC 3551 §4.1 for video), timestamps in the stream's clock (90 kHz video).

Header extensions (transport-wide sequence number, abs-send-time) are
stamped later, when the pacer releases a packet, as libwebrtc does: they
describe the send, not the frame.
"""

from __future__ import annotations

import random

from endpoints.rtc.media import Frame
from endpoints.rtc.rtp import MAX_PAYLOAD_SIZE, RtpPacket

VIDEO_PAYLOAD_TYPE = 96  # dynamic range, as browsers offer VP8
AUDIO_PAYLOAD_TYPE = 111  # dynamic range, as browsers offer Opus


class Packetizer:
    """One RTP stream: owns its SSRC, sequence numbers and timestamp offset."""

    def __init__(self, ssrc: int, payload_type: int, clock_rate: int, *,
                 max_payload_size: int = MAX_PAYLOAD_SIZE, seed: int | None = None,
                 marker_on_last: bool = True) -> None:
        if not 1 <= max_payload_size <= MAX_PAYLOAD_SIZE:
            raise ValueError(f"max_payload_size must be 1..{MAX_PAYLOAD_SIZE}")
        rng = random.Random(seed)
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.max_payload_size = max_payload_size
        self.marker_on_last = marker_on_last
        # RFC 3550 §5.1: random initial sequence number and timestamp.
        self._sequence = rng.randrange(0x10000)
        self._timestamp_offset = rng.randrange(1 << 32)
        self.packets_sent = 0
        self.octets_sent = 0

    def rtp_timestamp(self, time_us: int) -> int:
        return (self._timestamp_offset + time_us * self.clock_rate // 1_000_000) & 0xFFFFFFFF

    def packetize(self, frame: Frame) -> list[RtpPacket]:
        count = max(1, -(-frame.size // self.max_payload_size))
        base, extra = divmod(frame.size, count)
        timestamp = self.rtp_timestamp(frame.capture_time_us)
        packets: list[RtpPacket] = []
        for index in range(count):
            size = base + (1 if index < extra else 0)
            packets.append(RtpPacket(
                payload_type=self.payload_type, sequence_number=self._sequence,
                timestamp=timestamp, ssrc=self.ssrc,
                marker=self.marker_on_last and index == count - 1,
                payload=bytes(size)))
            self._sequence = (self._sequence + 1) & 0xFFFF
            self.packets_sent += 1
            self.octets_sent += size
        return packets
