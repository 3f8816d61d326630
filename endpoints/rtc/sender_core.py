"""The RTC sender's decisions without a clock or a socket (sans-IO).

Media models → packetizers → pacer → stamping, and RTCP in → target rate
(sender-side GCC on transport-wide feedback, or the receiver's REMB), as
:class:`SenderCore`. Time comes in with every event and nothing here reads a
clock or touches a socket, so two drivers share one sender: the lab's process
(:mod:`endpoints.rtc.sender_app`, CLOCK_MONOTONIC and a UDP socket) and the
simulator (``netlab.learning.sim``, a virtual clock and a modelled link).

A driver, at each wake-up ``now_us``, walks :meth:`SenderCore.turn`: it
yields each packet as it becomes due, and the driver calls
:meth:`SenderCore.depart` with the moment that packet really leaves, so
every packet is stamped (transport-wide sequence number, abs-send-time, the
payload stamp of :mod:`endpoints.rtc.clock`) just before it is sent, one
after the other. RTCP from the receiver goes to :meth:`SenderCore.on_rtcp`,
and :meth:`SenderCore.next_deadline_us` says when to wake up next.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from endpoints.rtc.clock import NO_FRAME, stamp_payload
from endpoints.rtc.errors import PacketError
from endpoints.rtc.gcc import SendSideBwe
from endpoints.rtc.gcc.congestion_window import DEFAULT_QUEUE_MS, frame_drop_interval
from endpoints.rtc.gcc.probe_controller import DEFAULT_PERIODIC_PROBE_INTERVAL_MS
from endpoints.rtc.media import (
    AUDIO_PACKETS_PER_SECOND,
    AudioModel,
    Frame,
    FrameSizeFile,
    VideoModel,
)
from endpoints.rtc.pacer import Pacer
from endpoints.rtc.packetizer import AUDIO_PAYLOAD_TYPE, VIDEO_PAYLOAD_TYPE, Packetizer
from endpoints.rtc.probing import ProbeCluster
from endpoints.rtc.rtcp import (
    ReceiverReport,
    Remb,
    RtcpPacket,
    TransportFeedback,
    decode_compound,
)
from endpoints.rtc.rtp import MAX_PAYLOAD_SIZE, RtpPacket
from endpoints.rtc.twcc import FeedbackAdapter, PacketResult

#: libwebrtc's GoogCC process interval, which drives the congestion window.
PROCESS_INTERVAL_US = 25_000
AUDIO_BPS = 32_000
# Bytes each packet carries besides media: RTP header with the transport-seq and
# abs-send-time extensions (24) + UDP (8) + IPv4 (20).
PACKET_OVERHEAD_BYTES = 24 + 8 + 20
AUDIO_WIRE_BPS = AUDIO_BPS + AUDIO_PACKETS_PER_SECOND * PACKET_OVERHEAD_BYTES * 8
PADDING_PAYLOAD_TYPE = 97  # the RTX payload type browsers pair with 96
PADDING_SSRC_MASK = 0x50414444  # "PADD": the padding SSRC derives from the video one
PADDING_HEADER_BYTES = 24  # RTP header + transport-seq and abs-send-time extensions

EstimatorMode = Literal["gcc", "remb"]


@dataclass(frozen=True)
class SenderSettings:
    """What decides how the sender behaves (the process adds where it sends and logs)."""

    start_bps: float = 300_000
    min_bps: float = 50_000
    max_bps: float = 30_000_000
    fps: float = 30.0
    frames_file: Path | None = None
    audio: bool = True
    estimator: EstimatorMode = "gcc"
    probing: bool = True
    probe_interval_s: float = DEFAULT_PERIODIC_PROBE_INTERVAL_MS / 1000
    congestion_window_ms: float = DEFAULT_QUEUE_MS


@dataclass
class SenderCounters:
    packets_sent: int = 0
    bytes_sent: int = 0
    send_errors: int = 0
    frames: int = 0
    rtcp_received: int = 0
    rtcp_malformed: int = 0
    feedback_received: int = 0
    packets_reported: int = 0
    packets_reported_lost: int = 0
    remb_received: int = 0
    foreign_datagrams: int = 0  # not RTCP, or not from the receiver's address: dropped
    probe_clusters: int = 0
    probe_packets: int = 0
    frames_dropped_cwnd: int = 0
    padding_packets: int = 0
    last_fraction_lost: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Departure:
    """A packet due to leave now (``cluster``: it belongs to a probe); ``depart`` stamps it."""

    packet: RtpPacket
    cluster: ProbeCluster | None = None
    departed: bool = False


@dataclass(frozen=True, slots=True)
class Sent:
    """A stamped packet, as the sender's packet log records it."""

    packet: RtpPacket
    send_ns: int
    transport_seq: int  # unwrapped
    frame_id: int
    last_of_frame: bool
    size: int  # UDP payload bytes

    def log_row(self, error: bool = False) -> tuple[int, int, int, int, int, int, int, bool,
                                                    bool]:
        """The row of ``logs.SENDER_PACKETS``."""
        packet = self.packet
        return (self.send_ns, self.transport_seq & 0xFFFFFFFF, packet.ssrc,
                self.frame_id & 0xFFFFFFFF, packet.sequence_number, self.size,
                packet.payload_type, self.last_of_frame, error)


def _require_departed(departure: Departure) -> None:
    """A turn goes on only once the packet it yielded has left: the next packet's
    stamp, the probe's size and the congestion window all count on it."""
    if not departure.departed:
        raise RuntimeError("SenderCore.turn resumed before depart() was called for the "
                           "packet it yielded")


def video_share_bps(target_bps: float, *, audio: bool, min_bps: float) -> float:
    """The video encoder's budget: the target less audio and every packet's overhead.

    The estimate is a rate on the wire, so libwebrtc hands its encoders the
    target minus the transport overhead rate (send-side BWE with overhead:
    BitrateAllocator / VideoSendStreamImpl::OnBitrateUpdated); audio's share
    (32 kbit/s Opus in 50 packets/s) is taken off first, headers included.
    """
    budget = target_bps - (AUDIO_WIRE_BPS if audio else 0)
    budget *= MAX_PAYLOAD_SIZE / (MAX_PAYLOAD_SIZE + PACKET_OVERHEAD_BYTES)
    return max(min_bps / 2, budget)


class SenderCore:
    """One sender's media, pacing, stamping and rate control, on the caller's clock (µs).

    SSRCs, frame-size noise and RTP sequence/timestamp offsets all come from
    ``random.Random(seed)``, so two drivers given one seed send the same call.
    """

    def __init__(self, settings: SenderSettings, *, seed: int, start_us: int) -> None:
        self.settings = settings
        rng = random.Random(seed)
        self.video_ssrc, self.audio_ssrc = rng.sample(range(1, 1 << 32), 2)
        self.padding_ssrc = (self.video_ssrc ^ PADDING_SSRC_MASK) or 1
        self._padding_seq = 0
        self.video: VideoModel | FrameSizeFile
        if settings.frames_file is not None:
            self.video = FrameSizeFile.from_file(settings.frames_file, fps=settings.fps,
                                                 start_us=start_us)
        else:
            self.video = VideoModel(self.video_share(settings.start_bps), fps=settings.fps,
                                    seed=rng.randrange(1 << 30), start_us=start_us)
        self.audio = AudioModel(AUDIO_BPS, start_us=start_us) if settings.audio else None
        self.video_packetizer = Packetizer(self.video_ssrc, VIDEO_PAYLOAD_TYPE,
                                           self.video.clock_rate, seed=rng.randrange(1 << 30))
        self.audio_packetizer = Packetizer(self.audio_ssrc, AUDIO_PAYLOAD_TYPE,
                                           AudioModel.clock_rate, seed=rng.randrange(1 << 30),
                                           marker_on_last=False)
        self.target_bps = self._clamp(settings.start_bps)
        self.pacer = Pacer(self.target_bps)
        gcc = settings.estimator == "gcc"
        self.bwe = SendSideBwe(self.target_bps, min_bitrate_bps=settings.min_bps,
                               max_bitrate_bps=settings.max_bps,
                               periodic_probe_interval_ms=settings.probe_interval_s * 1000,
                               congestion_window_queue_ms=(settings.congestion_window_ms
                                                           if gcc else 0))
        self._drop_interval: int | None = None
        self.adapter = FeedbackAdapter()
        self.remb_bps: float | None = None
        self.counters = SenderCounters()
        self._transport_seq = 0
        #: id(packet) → (frame id, last packet of its frame) while it waits in the pacer.
        self._frame_of: dict[int, tuple[int, bool]] = {}
        #: The frames the latest turn produced, with their SSRC (the process logs them).
        self.new_frames: list[tuple[Frame, int]] = []
        self.next_process_us = start_us + PROCESS_INTERVAL_US

    # ---- rates -------------------------------------------------------------------

    def _clamp(self, bps: float) -> float:
        return min(self.settings.max_bps, max(self.settings.min_bps, bps))

    def video_share(self, target_bps: float) -> float:
        return video_share_bps(target_bps, audio=self.settings.audio,
                               min_bps=self.settings.min_bps)

    def _set_target(self, bps: float, now_us: int) -> None:
        self.target_bps = self._clamp(bps)
        self.pacer.set_target(self.target_bps)  # the pacer ignores the pushback (libwebrtc)
        self.update_encoder(now_us, force=True)

    def update_encoder(self, now_us: int, *, force: bool = False) -> None:
        """The encoder's rate: the target, less GCC's congestion-window pushback.

        With the pushback, libwebrtc drops one frame in N and encodes at
        target - target / N (``DropFrame:true``, see ``gcc.congestion_window``).
        """
        if self.bwe.congestion_window is not None and isinstance(self.video, VideoModel):
            pushback = self.bwe.pushback_bps(self.adapter.in_flight_bytes)
            interval = frame_drop_interval(self.target_bps, pushback, self.settings.min_bps)
            if interval != self._drop_interval:
                self._drop_interval = interval
                self.video.set_frame_drop_interval(interval)
                force = True
        if force:
            interval = self._drop_interval
            encoder_bps = self.target_bps - (self.target_bps / interval if interval else 0.0)
            self.video.set_target(self.video_share(encoder_bps), now_us)

    def loss_fraction(self) -> float:
        """The share of packets transport feedback reported lost, over the whole call."""
        reported = self.counters.packets_reported
        return self.counters.packets_reported_lost / reported if reported else 0.0

    # ---- time --------------------------------------------------------------------

    def start(self, now_us: int) -> None:
        """The call starts: with GCC, the initial probe clusters are queued."""
        if self.settings.estimator == "gcc" and self.settings.probing:
            self._add_probe_clusters(self.bwe.start_probing(now_us), now_us)

    def next_deadline_us(self, now_us: int) -> int:
        """When the sender has something to do next: pacer, media, probe, process interval."""
        deadline = min(self.pacer.next_process_time_us(), self.video.next_frame_time_us())
        if self.audio is not None:
            deadline = min(deadline, self.audio.next_frame_time_us())
        if self.bwe.congestion_window is not None:
            deadline = min(deadline, self.next_process_us)
        probe_us = self.pacer.next_probe_time_us(now_us)
        if probe_us is not None:
            deadline = min(deadline, probe_us)
        return deadline

    def turn(self, now_us: int) -> Iterator[Departure]:
        """One wake-up at ``now_us``: due frames go to the pacer; the packets the pacer
        (then a due probe) releases are yielded one by one, each to be passed to
        :meth:`depart` as it leaves; then the congestion window's process interval."""
        self._produce(now_us)
        if now_us >= self.pacer.next_process_time_us():
            for packet in self.pacer.process(now_us):
                departure = Departure(packet)
                yield departure
                _require_departed(departure)
        due = self.pacer.process_probe(now_us)
        if due is not None:
            cluster, packets, padding = due
            if padding > 0:
                packets.append(self._padding_packet(padding, now_us))
            sent_bytes = 0
            for packet in packets:
                departure = Departure(packet, cluster)
                yield departure
                _require_departed(departure)
                sent_bytes += packet.size
            self.counters.probe_packets += len(packets)
            self.pacer.on_probe_sent(now_us, sent_bytes)
        if now_us >= self.next_process_us:
            if self.bwe.congestion_window is not None:
                self.bwe.on_process_interval()
                self.update_encoder(now_us)
            self.next_process_us = max(self.next_process_us + PROCESS_INTERVAL_US,
                                       now_us + PROCESS_INTERVAL_US // 2)

    def depart(self, departure: Departure, send_ns: int) -> Sent:
        """``departure``'s packet leaves at ``send_ns``: stamp it and account for it.
        ``send_ns`` is positive: the payload stamp reads 0 as "no stamp"."""
        if send_ns <= 0:
            raise ValueError(f"send time {send_ns} ns: a sender's clock reads > 0")
        packet = departure.packet
        departure.departed = True
        frame_id, last = self._frame_of.pop(id(packet), (NO_FRAME, False))
        seq = self._transport_seq
        self._transport_seq += 1
        send_us = send_ns // 1000
        packet.set_transport_sequence_number(seq & 0xFFFF)
        packet.set_abs_send_time(send_us)
        packet.payload = stamp_payload(packet.payload, send_ns, seq, frame_id)
        size = packet.size
        unwrapped = self.adapter.on_packet_sent(seq & 0xFFFF, send_us, size)
        if departure.cluster is not None:
            self.bwe.on_probe_sent(unwrapped, departure.cluster)
        if self.bwe.congestion_window is not None:
            self.update_encoder(send_us)  # libwebrtc: on every sent packet
        return Sent(packet, send_ns, seq, frame_id, last, size)

    # ---- media → pacer -------------------------------------------------------------

    def _produce(self, now_us: int) -> None:
        self.new_frames = []
        for source, packetizer, audio in ((self.video, self.video_packetizer, False),
                                          (self.audio, self.audio_packetizer, True)):
            if source is None:
                continue
            for frame in source.frames_due(now_us):
                self.new_frames.append((frame, packetizer.ssrc))
                self.counters.frames += 1
                packets = packetizer.packetize(frame)
                for index, packet in enumerate(packets):
                    self._frame_of[id(packet)] = (frame.index, index == len(packets) - 1)
                    self.pacer.enqueue(packet, now_us, audio=audio)

    # ---- probes -------------------------------------------------------------------

    def _add_probe_clusters(self, clusters: Sequence[ProbeCluster], now_us: int) -> None:
        for cluster in clusters:
            self.pacer.add_probe_cluster(cluster, now_us)
            self.counters.probe_clusters += 1

    def _padding_packet(self, size: int, now_us: int) -> RtpPacket:
        """A padding packet of about ``size`` bytes (stamped like media, so delays are exact)."""
        payload = max(16, min(MAX_PAYLOAD_SIZE, size - PADDING_HEADER_BYTES))
        self._padding_seq += 1
        self.counters.padding_packets += 1
        return RtpPacket(PADDING_PAYLOAD_TYPE, self._padding_seq & 0xFFFF,
                         (now_us * 9 // 100) & 0xFFFFFFFF, self.padding_ssrc,
                         payload=bytes(payload))

    # ---- RTCP in -----------------------------------------------------------------------

    def on_rtcp(self, packets: Sequence[RtcpPacket], now_us: int) -> None:
        """One RTCP compound from the receiver, decoded, arrived at ``now_us``."""
        for rtcp in packets:
            if isinstance(rtcp, TransportFeedback):
                self.counters.feedback_received += 1
                results = self.adapter.on_feedback(rtcp)
                self._account(results)
                if self.settings.estimator == "gcc":
                    self._set_target(self.bwe.on_feedback(results, now_us), now_us)
                    if self.settings.probing:
                        self._add_probe_clusters(self.bwe.take_probe_clusters(), now_us)
            elif isinstance(rtcp, Remb):
                self.counters.remb_received += 1
                self.remb_bps = float(rtcp.bitrate_bps)
                if self.settings.estimator == "remb":
                    self._set_target(self.remb_bps if self.remb_bps > 0
                                     else self.settings.min_bps, now_us)
                else:
                    self._set_target(self.bwe.on_remb(rtcp.bitrate_bps), now_us)
            elif isinstance(rtcp, ReceiverReport):
                for block in rtcp.reports:
                    self.counters.last_fraction_lost[f"{block.ssrc:08x}"] = block.fraction_lost

    def on_rtcp_datagram(self, data: bytes, now_us: int) -> None:
        """One RTCP datagram from the receiver arrived at ``now_us`` (RFC 5761: the
        caller has told it from RTP and from strangers)."""
        self.counters.rtcp_received += 1
        try:
            packets = decode_compound(data)
        except PacketError:
            self.counters.rtcp_malformed += 1
            return
        self.on_rtcp(packets, now_us)

    def _account(self, results: Sequence[PacketResult]) -> None:
        self.counters.packets_reported += len(results)
        for result in results:
            if result.arrival_time_us is None:
                self.counters.packets_reported_lost += 1
