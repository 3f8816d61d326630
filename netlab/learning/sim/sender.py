"""The RTC sender of ``endpoints.rtc.sender_app`` (REMB mode) on a virtual clock.

Same parts, same seeds: :class:`~endpoints.rtc.media.VideoModel` and
:class:`~endpoints.rtc.media.AudioModel`, two
:class:`~endpoints.rtc.packetizer.Packetizer` streams and the 5 ms
:class:`~endpoints.rtc.pacer.Pacer`, built in the order ``RtcSender`` builds
them from one ``random.Random(seed)``, so a simulated call and an emulated
call with the same seed carry the same SSRCs and frame-size noise. The
event loop itself is re-stated here because ``RtcSender.run`` reads
CLOCK_MONOTONIC and a socket; what it does per wake-up is the same: hand
due frames to the packetizer and pacer, run the pacer when its 5 ms
interval is up, stamp each released packet (transport-wide sequence
number, abs-send-time, the 16-byte payload stamp) and put it on the wire.
A REMB sets the target (``--estimator remb``), clamped to the flow's
min/max rate, and the video encoder follows the target minus audio.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from endpoints.rtc.clock import STAMP_SIZE
from endpoints.rtc.media import AudioModel, VideoModel
from endpoints.rtc.pacer import Pacer
from endpoints.rtc.packetizer import AUDIO_PAYLOAD_TYPE, VIDEO_PAYLOAD_TYPE, Packetizer
from endpoints.rtc.rtp import RtpPacket
from endpoints.rtc.sender_app import AUDIO_BPS, SenderConfig, video_share_bps

NO_FRAME = 0xFFFFFFFF
_DEFAULTS = SenderConfig(dest=("127.0.0.1", 9))


@dataclass(frozen=True)
class SenderSettings:
    """What ``flows.py`` passes the emulated sender (its defaults unless a flow sets them)."""

    start_bps: float = _DEFAULTS.start_bps
    min_bps: float = _DEFAULTS.min_bps
    max_bps: float = _DEFAULTS.max_bps
    fps: float = _DEFAULTS.fps
    audio: bool = _DEFAULTS.audio


@dataclass(slots=True)
class SentPacket:
    """What the receiver learns from one packet (its header and payload stamp)."""

    send_us: int
    transport_seq: int
    ssrc: int
    frame_id: int
    rtp_seq: int
    size: int  # UDP payload bytes (RTP header + extensions + payload)
    header_length: int
    payload_size: int
    payload_type: int
    marker: bool
    last_of_frame: bool


def _stamped_header_size() -> int:
    """Header bytes of a sent packet: fixed header + transport-seq + abs-send-time."""
    probe = RtpPacket(VIDEO_PAYLOAD_TYPE, 0, 0, 1)
    probe.set_transport_sequence_number(0)
    probe.set_abs_send_time(0)
    return probe.header_size


HEADER_BYTES = _stamped_header_size()


class SimSender:
    """Media → packetizer → pacer on the caller's clock (µs, starting at 0)."""

    def __init__(self, settings: SenderSettings, seed: int) -> None:
        self.settings = settings
        rng = random.Random(seed)
        self.video_ssrc, self.audio_ssrc = rng.sample(range(1, 1 << 32), 2)
        self.video = VideoModel(self._video_share(settings.start_bps), fps=settings.fps,
                                seed=rng.randrange(1 << 30), start_us=0)
        self.audio = AudioModel(AUDIO_BPS, start_us=0) if settings.audio else None
        self.video_packetizer = Packetizer(self.video_ssrc, VIDEO_PAYLOAD_TYPE,
                                           self.video.clock_rate, seed=rng.randrange(1 << 30))
        self.audio_packetizer = Packetizer(self.audio_ssrc, AUDIO_PAYLOAD_TYPE,
                                           AudioModel.clock_rate, seed=rng.randrange(1 << 30),
                                           marker_on_last=False)
        self.target_bps = self._clamp(settings.start_bps)
        self.pacer = Pacer(self.target_bps)
        self.transport_seq = 0
        self._frame_of: dict[int, tuple[int, bool]] = {}

    def _clamp(self, bps: float) -> float:
        return min(self.settings.max_bps, max(self.settings.min_bps, bps))

    def _video_share(self, target_bps: float) -> float:
        return video_share_bps(target_bps, audio=self.settings.audio,
                               min_bps=self.settings.min_bps)

    def on_remb(self, bitrate_bps: float, now_us: int) -> None:
        """``RtcSender._on_rtcp`` for a REMB in ``remb`` mode."""
        self.target_bps = self._clamp(bitrate_bps if bitrate_bps > 0 else self.settings.min_bps)
        self.pacer.set_target(self.target_bps)
        self.video.set_target(self._video_share(self.target_bps), now_us)

    def next_wake_us(self) -> int:
        """The sender loop's next deadline: the pacer's interval or the next frame."""
        wake = min(self.pacer.next_process_time_us(), self.video.next_frame_time_us())
        if self.audio is not None:
            wake = min(wake, self.audio.next_frame_time_us())
        return wake

    def wake(self, now_us: int) -> list[SentPacket]:
        """One turn of the sender loop at ``now_us``: the packets put on the wire."""
        for source, packetizer, audio in ((self.video, self.video_packetizer, False),
                                          (self.audio, self.audio_packetizer, True)):
            if source is None:
                continue
            for frame in source.frames_due(now_us):
                packets = packetizer.packetize(frame)
                last = len(packets) - 1
                for index, packet in enumerate(packets):
                    self._frame_of[id(packet)] = (frame.index, index == last)
                    self.pacer.enqueue(packet, now_us, audio=audio)
        if now_us < self.pacer.next_process_time_us():
            return []
        out: list[SentPacket] = []
        for packet in self.pacer.process(now_us):
            frame_id, last = self._frame_of.pop(id(packet), (NO_FRAME, False))
            payload = max(STAMP_SIZE, len(packet.payload))  # stamp_payload grows it to 16
            out.append(SentPacket(now_us, self.transport_seq, packet.ssrc, frame_id,
                                  packet.sequence_number, HEADER_BYTES + payload, HEADER_BYTES,
                                  payload, packet.payload_type, packet.marker, last))
            self.transport_seq += 1
        return out
