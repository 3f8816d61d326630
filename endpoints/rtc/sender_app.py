"""RTC sender process: ``python -m endpoints.rtc.sender_app --dest HOST:PORT ...``.

One process per flow end, one selector loop, one UDP socket carrying RTP out
and RTCP in (RFC 5761). Each turn of the loop:

1. the media models hand over due frames (video at ``--fps`` following the
   target, or sizes from ``--frames-file``; 32 kbit/s audio unless
   ``--no-audio``), which are packetized and queued in the pacer;
2. every 5 ms the pacer (2.5 × target) releases packets; each gets the
   transport-wide sequence number, abs-send-time and the payload stamp
   (:mod:`endpoints.rtc.clock`) the moment it is sent;
3. RTCP from the receiver is read: transport feedback drives sender-side
   GCC (``--estimator gcc``; a REMB, if any, caps it as in libwebrtc), or
   the target simply follows REMB (``--estimator remb``); with GCC, probe
   clusters (3x and 6x the start rate at the start, further ones while the
   results keep rising, and a periodic one at 2x every ``--probe-interval``
   seconds without an overuse decrease: :mod:`endpoints.rtc.gcc.probe_controller`) go out
   paced at their rate, queued video first and padding packets (their own
   SSRC, payload type 97) for the rest, unless ``--no-probing``;
4. logs (:mod:`endpoints.rtc.logs`), the 50 ms rate log and the 250 ms live
   line (:mod:`endpoints.rtc.live`; sender keys besides the common ones:
   ``target_bps``, ``pacer_queue_bytes``, ``rtt_ms``, ``usage``,
   ``packets_sent``) are written; SR + SDES go out every second.

Start the receiver first (with ``--bind HOST:0`` it writes the port it got
to ``receiver_meta.json`` as ``bound_address``): packets sent before it
binds are lost and appear in no feedback.

It stops after ``--duration`` or on SIGTERM/SIGINT, flushes every log and
writes ``sender_meta.json``. Exit status: 0 on a clean stop, 1 on an error
(printed as what / where / fix), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import math
import random
import selectors
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from endpoints.rtc import logs
from endpoints.rtc.app_common import (
    LOG_FLUSH_INTERVAL_NS,
    StopSignals,
    open_udp_socket,
    parse_address,
    parse_duration,
    parse_rate,
    prepare_log_dir,
    write_meta,
)
from endpoints.rtc.clock import now_ns, stamp_payload
from endpoints.rtc.errors import PacketError, RtcError
from endpoints.rtc.gcc import BandwidthUsage, SendSideBwe
from endpoints.rtc.gcc.congestion_window import DEFAULT_QUEUE_MS, frame_drop_interval
from endpoints.rtc.gcc.probe_controller import DEFAULT_PERIODIC_PROBE_INTERVAL_MS
from endpoints.rtc.live import LIVE_INTERVAL_NS, LiveWriter
from endpoints.rtc.media import AUDIO_PACKETS_PER_SECOND, AudioModel, FrameSizeFile, VideoModel
from endpoints.rtc.pacer import Pacer
from endpoints.rtc.packetizer import AUDIO_PAYLOAD_TYPE, VIDEO_PAYLOAD_TYPE, Packetizer
from endpoints.rtc.probing import ProbeCluster
from endpoints.rtc.rtcp import (
    ReceiverReport,
    Remb,
    Sdes,
    SenderReport,
    TransportFeedback,
    decode_compound,
    encode_compound,
)
from endpoints.rtc.rtp import MAX_PAYLOAD_SIZE, RtpPacket, is_rtcp
from endpoints.rtc.twcc import FeedbackAdapter, PacketResult

RATE_LOG_INTERVAL_NS = 50_000_000
PROCESS_INTERVAL_NS = 25_000_000  # libwebrtc's GoogCC process interval (congestion window)
SENDER_REPORT_INTERVAL_NS = 1_000_000_000
AUDIO_BPS = 32_000
# Bytes each packet carries besides media: RTP header with the transport-seq and
# abs-send-time extensions (24) + UDP (8) + IPv4 (20).
PACKET_OVERHEAD_BYTES = 24 + 8 + 20
AUDIO_WIRE_BPS = AUDIO_BPS + AUDIO_PACKETS_PER_SECOND * PACKET_OVERHEAD_BYTES * 8
MAX_READS_PER_WAKE = 64
NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01 (RFC 5905)
PADDING_PAYLOAD_TYPE = 97  # the RTX payload type browsers pair with 96
PADDING_SSRC_MASK = 0x50414444  # "PADD": the padding SSRC derives from the video one
PADDING_HEADER_BYTES = 24  # RTP header + transport-seq and abs-send-time extensions
_USAGE_CODE = {BandwidthUsage.UNDERUSING: -1, BandwidthUsage.NORMAL: 0,
               BandwidthUsage.OVERUSING: 1}

EstimatorMode = Literal["gcc", "remb"]


@dataclass(frozen=True)
class SenderConfig:
    dest: tuple[str, int]
    bind: tuple[str, int] = ("0.0.0.0", 0)
    duration_s: float | None = None
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
    log_dir: Path | None = None
    seed: int = 1
    cname: str = "sender@netlab"


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
    foreign_datagrams: int = 0
    probe_clusters: int = 0
    probe_packets: int = 0
    frames_dropped_cwnd: int = 0
    padding_packets: int = 0
    last_fraction_lost: dict[str, int] = field(default_factory=dict)


class RtcSender:
    """The sender's state and event loop; ``run()`` returns why it stopped."""

    def __init__(self, config: SenderConfig, sock: socket.socket,
                 stop: StopSignals | None = None) -> None:
        self.config = config
        self.sock = sock
        self.stop = stop
        rng = random.Random(config.seed)
        self.video_ssrc, self.audio_ssrc = rng.sample(range(1, 1 << 32), 2)
        self.padding_ssrc = (self.video_ssrc ^ PADDING_SSRC_MASK) or 1
        self._padding_seq = 0
        self.start_ns = now_ns()
        start_us = self.start_ns // 1000
        self.video: VideoModel | FrameSizeFile
        if config.frames_file is not None:
            self.video = FrameSizeFile.from_file(config.frames_file, fps=config.fps,
                                                 start_us=start_us)
        else:
            self.video = VideoModel(self._video_share(config.start_bps), fps=config.fps,
                                    seed=rng.randrange(1 << 30), start_us=start_us)
        self.audio = AudioModel(AUDIO_BPS, start_us=start_us) if config.audio else None
        self.video_packetizer = Packetizer(self.video_ssrc, VIDEO_PAYLOAD_TYPE,
                                           self.video.clock_rate, seed=rng.randrange(1 << 30))
        self.audio_packetizer = Packetizer(self.audio_ssrc, AUDIO_PAYLOAD_TYPE,
                                           AudioModel.clock_rate, seed=rng.randrange(1 << 30),
                                           marker_on_last=False)
        self.target_bps = self._clamp(config.start_bps)
        self.pacer = Pacer(self.target_bps)
        self.bwe = SendSideBwe(self.target_bps, min_bitrate_bps=config.min_bps,
                               max_bitrate_bps=config.max_bps,
                               periodic_probe_interval_ms=config.probe_interval_s * 1000,
                               congestion_window_queue_ms=(config.congestion_window_ms
                                                           if config.estimator == "gcc" else 0))
        self._drop_interval: int | None = None
        self.adapter = FeedbackAdapter()
        self.remb_bps: float | None = None
        self.counters = SenderCounters()
        self._transport_seq = 0
        #: id(packet) → (frame id, last packet of its frame) while it waits in the pacer.
        self._frame_of: dict[int, tuple[int, bool]] = {}
        log_dir = config.log_dir
        self.packet_log = logs.open_writer(log_dir, logs.SENDER_PACKETS)
        self.frame_log = logs.open_writer(log_dir, logs.SENDER_FRAMES)
        self.rate_log = logs.open_writer(log_dir, logs.SENDER_RATE)
        self.live = LiveWriter(log_dir)
        self._bytes_since_rate_log = 0
        self._bytes_since_live = 0
        self.stop_reason = "running"

    # ---- rates -------------------------------------------------------------------

    def _clamp(self, bps: float) -> float:
        return min(self.config.max_bps, max(self.config.min_bps, bps))

    def _video_share(self, target_bps: float) -> float:
        return video_share_bps(target_bps, audio=self.config.audio, min_bps=self.config.min_bps)

    def _set_target(self, bps: float, now_us: int) -> None:
        self.target_bps = self._clamp(bps)
        self.pacer.set_target(self.target_bps)  # the pacer ignores the pushback (libwebrtc)
        self._update_encoder(now_us, force=True)

    def _update_encoder(self, now_us: int, *, force: bool = False) -> None:
        """The encoder's rate: the target, less GCC's congestion-window pushback.

        With the pushback, libwebrtc drops one frame in N and encodes at
        target - target / N (``DropFrame:true``, see ``gcc.congestion_window``).
        """
        if self.bwe.congestion_window is not None and isinstance(self.video, VideoModel):
            pushback = self.bwe.pushback_bps(self.adapter.in_flight_bytes)
            interval = frame_drop_interval(self.target_bps, pushback, self.config.min_bps)
            if interval != self._drop_interval:
                self._drop_interval = interval
                self.video.set_frame_drop_interval(interval)
                force = True
        if force:
            interval = self._drop_interval
            encoder_bps = self.target_bps - (self.target_bps / interval if interval else 0.0)
            self.video.set_target(self._video_share(encoder_bps), now_us)

    # ---- media → pacer -------------------------------------------------------------

    def _next_media_us(self) -> int:
        times = [self.video.next_frame_time_us()]
        if self.audio is not None:
            times.append(self.audio.next_frame_time_us())
        return min(times)

    def _produce(self, now_us: int) -> None:
        for source, packetizer, audio in ((self.video, self.video_packetizer, False),
                                          (self.audio, self.audio_packetizer, True)):
            if source is None:
                continue
            for frame in source.frames_due(now_us):
                self.frame_log.append(frame.capture_time_us * 1000, frame.index & 0xFFFFFFFF,
                                      packetizer.ssrc, frame.size, frame.key)
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

    def _send_probe(self, now_us: int) -> None:
        due = self.pacer.process_probe(now_us)
        if due is None:
            return
        cluster, packets, padding = due
        if padding > 0:
            packets.append(self._padding_packet(padding, now_us))
        sent = self._send(packets, cluster)
        self.counters.probe_packets += len(packets)
        self.pacer.on_probe_sent(now_us, sent)

    def _send(self, packets: Sequence[RtpPacket], cluster: ProbeCluster | None = None) -> int:
        """Send ``packets`` (``cluster``: they are a probe); returns the bytes sent."""
        total = 0
        for packet in packets:
            frame_id, last = self._frame_of.pop(id(packet), (0xFFFFFFFF, False))
            seq = self._transport_seq
            self._transport_seq += 1
            send_ns = now_ns()
            packet.set_transport_sequence_number(seq & 0xFFFF)
            packet.set_abs_send_time(send_ns // 1000)
            packet.payload = stamp_payload(packet.payload, send_ns, seq, frame_id)
            data = packet.encode()
            error = False
            try:
                self.sock.sendto(data, self.config.dest)
            except OSError:
                # Socket buffer full (or a transient route error): the packet is lost at
                # the sender; it stays in the history so feedback reports it missing.
                error = True
                self.counters.send_errors += 1
            unwrapped = self.adapter.on_packet_sent(seq & 0xFFFF, send_ns // 1000, len(data))
            if cluster is not None:
                self.bwe.on_probe_sent(unwrapped, cluster)
            if self.bwe.congestion_window is not None:
                self._update_encoder(send_ns // 1000)  # libwebrtc: on every sent packet
            total += len(data)
            self.packet_log.append(send_ns, seq & 0xFFFFFFFF, packet.ssrc, frame_id & 0xFFFFFFFF,
                                   packet.sequence_number, len(data), packet.payload_type,
                                   last, error)
            self.counters.packets_sent += 1
            self.counters.bytes_sent += len(data)
            self._bytes_since_rate_log += len(data)
            self._bytes_since_live += len(data)
        return total

    # ---- RTCP in -----------------------------------------------------------------------

    def _read_socket(self) -> None:
        for _ in range(MAX_READS_PER_WAKE):
            try:
                data, _address = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. ICMP port unreachable reported on the socket: ignore
            if not is_rtcp(data):
                self.counters.foreign_datagrams += 1
                continue
            self.counters.rtcp_received += 1
            try:
                rtcp_packets = decode_compound(data)
            except PacketError:
                self.counters.rtcp_malformed += 1
                continue
            for rtcp in rtcp_packets:
                self._on_rtcp(rtcp)

    def _on_rtcp(self, rtcp: object) -> None:
        now_us = now_ns() // 1000
        if isinstance(rtcp, TransportFeedback):
            self.counters.feedback_received += 1
            results = self.adapter.on_feedback(rtcp)
            self._account(results, now_us)
            if self.config.estimator == "gcc":
                self._set_target(self.bwe.on_feedback(results, now_us), now_us)
                if self.config.probing:
                    self._add_probe_clusters(self.bwe.take_probe_clusters(), now_us)
        elif isinstance(rtcp, Remb):
            self.counters.remb_received += 1
            self.remb_bps = float(rtcp.bitrate_bps)
            if self.config.estimator == "remb":
                self._set_target(self.remb_bps if self.remb_bps > 0 else self.config.min_bps,
                                 now_us)
            else:
                self._set_target(self.bwe.on_remb(rtcp.bitrate_bps), now_us)
        elif isinstance(rtcp, ReceiverReport):
            for block in rtcp.reports:
                self.counters.last_fraction_lost[f"{block.ssrc:08x}"] = block.fraction_lost

    def _account(self, results: Sequence[PacketResult], now_us: int) -> None:
        self.counters.packets_reported += len(results)
        for result in results:
            if result.arrival_time_us is None:
                self.counters.packets_reported_lost += 1

    # ---- periodic outputs ------------------------------------------------------------

    def _send_report(self, now: int) -> None:
        wall = time.time_ns()
        ntp = ((wall // 1_000_000_000 + NTP_UNIX_OFFSET_S) << 32) | (
            (wall % 1_000_000_000) << 32) // 1_000_000_000
        reports: list[SenderReport | Sdes] = []
        chunks: list[tuple[int, str]] = []
        for packetizer in (self.video_packetizer, self.audio_packetizer):
            if packetizer.packets_sent == 0:
                continue
            reports.append(SenderReport(packetizer.ssrc, ntp,
                                        packetizer.rtp_timestamp(now // 1000),
                                        packetizer.packets_sent, packetizer.octets_sent))
            chunks.append((packetizer.ssrc, self.config.cname))
        if reports:
            reports.append(Sdes(tuple(chunks)))
            try:
                self.sock.sendto(encode_compound(reports), self.config.dest)
            except OSError:
                self.counters.send_errors += 1

    def _loss_fraction(self) -> float:
        reported = self.counters.packets_reported
        return self.counters.packets_reported_lost / reported if reported else 0.0

    def _write_rate_log(self, now: int, interval_ns: int) -> None:
        rtt = self.bwe.rtt_ms
        encoder = getattr(self.video, "encoder_bps", math.nan)
        self.rate_log.append(
            now, self.target_bps, self._bytes_since_rate_log * 8e9 / max(1, interval_ns),
            float(encoder) + (AUDIO_BPS if self.audio else 0), self.pacer.queued_bytes,
            self.pacer.queued_packets, self.bwe.delay_based_bps, self.bwe.loss_based_bps,
            self._loss_fraction(), math.nan if rtt is None else rtt,
            math.nan if self.remb_bps is None else self.remb_bps, _USAGE_CODE[self.bwe.usage])
        self._bytes_since_rate_log = 0

    def _write_live(self, now: int, interval_ns: int) -> None:
        rtt = self.bwe.rtt_ms
        self.live.write({
            "role": "sender", "time_ns": now, "t_s": round((now - self.start_ns) / 1e9, 3),
            "rate_bps": round(self._bytes_since_live * 8e9 / max(1, interval_ns)),
            "loss": round(self._loss_fraction(), 5), "owd_ms": None,
            "estimate_bps": round(self.target_bps), "target_bps": round(self.target_bps),
            "pacer_queue_bytes": self.pacer.queued_bytes,
            "rtt_ms": None if rtt is None else round(rtt, 2),
            "usage": self.bwe.usage.value, "packets_sent": self.counters.packets_sent})
        self._bytes_since_live = 0

    # ---- loop ----------------------------------------------------------------------------

    def run(self) -> str:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, "socket")
        if self.stop is not None:
            selector.register(self.stop.reader, selectors.EVENT_READ, "signal")
        duration = self.config.duration_s
        end_ns = self.start_ns + int(duration * 1e9) if duration is not None else None
        next_rate_ns = self.start_ns + RATE_LOG_INTERVAL_NS
        next_process_ns = self.start_ns + PROCESS_INTERVAL_NS
        next_live_ns = self.start_ns + LIVE_INTERVAL_NS
        next_report_ns = self.start_ns + SENDER_REPORT_INTERVAL_NS
        next_flush_ns = self.start_ns + LOG_FLUSH_INTERVAL_NS
        last_rate_ns = last_live_ns = self.start_ns
        self._write_meta("running")
        if self.config.estimator == "gcc" and self.config.probing:
            self._add_probe_clusters(self.bwe.start_probing(self.start_ns // 1000),
                                     self.start_ns // 1000)
        try:
            while True:
                if self.stop is not None and self.stop.received:
                    self.stop_reason = f"signal {self.stop.received}"
                    break
                now = now_ns()
                if end_ns is not None and now >= end_ns:
                    self.stop_reason = "duration"
                    break
                now_us = now // 1000
                self._produce(now_us)
                if now_us >= self.pacer.next_process_time_us():
                    self._send(self.pacer.process(now_us))
                self._send_probe(now_us)
                if now >= next_process_ns:
                    if self.bwe.congestion_window is not None:
                        self.bwe.on_process_interval()
                        self._update_encoder(now_us)
                    next_process_ns = max(next_process_ns + PROCESS_INTERVAL_NS,
                                          now + PROCESS_INTERVAL_NS // 2)
                if now >= next_rate_ns:
                    self._write_rate_log(now, now - last_rate_ns)
                    last_rate_ns, next_rate_ns = now, next_rate_ns + RATE_LOG_INTERVAL_NS
                    next_rate_ns = max(next_rate_ns, now + RATE_LOG_INTERVAL_NS // 2)
                if now >= next_live_ns:
                    self._write_live(now, now - last_live_ns)
                    last_live_ns, next_live_ns = now, max(next_live_ns + LIVE_INTERVAL_NS,
                                                          now + LIVE_INTERVAL_NS // 2)
                if now >= next_report_ns:
                    self._send_report(now)
                    next_report_ns = now + SENDER_REPORT_INTERVAL_NS
                if now >= next_flush_ns:
                    self._flush()
                    next_flush_ns = now + LOG_FLUSH_INTERVAL_NS
                deadline_ns = min(self.pacer.next_process_time_us() * 1000,
                                  self._next_media_us() * 1000, next_rate_ns, next_live_ns)
                if self.bwe.congestion_window is not None:
                    deadline_ns = min(deadline_ns, next_process_ns)
                probe_us = self.pacer.next_probe_time_us(now_us)
                if probe_us is not None:
                    deadline_ns = min(deadline_ns, probe_us * 1000)
                if end_ns is not None:
                    deadline_ns = min(deadline_ns, end_ns)
                timeout = max(0.0, (deadline_ns - now_ns()) / 1e9)
                for key, _events in selector.select(timeout):
                    if key.data == "socket":
                        self._read_socket()
                    elif self.stop is not None:
                        self.stop.drain()
        finally:
            selector.close()
            self.close()
        return self.stop_reason

    def _flush(self) -> None:
        for log in (self.packet_log, self.frame_log, self.rate_log):
            log.flush()

    def close(self) -> None:
        for log in (self.packet_log, self.frame_log, self.rate_log):
            log.close()
        self.live.close()
        self._write_meta(self.stop_reason)

    def _write_meta(self, state: str) -> None:
        if self.config.log_dir is None:
            return
        self.counters.frames_dropped_cwnd = getattr(self.video, "dropped_frames", 0)
        write_meta(self.config.log_dir / "sender_meta.json", {
            "role": "sender", "state": state, "clock": "CLOCK_MONOTONIC",
            "start_ns": self.start_ns, "end_ns": now_ns() if state != "running" else None,
            "config": asdict(self.config), "video_ssrc": self.video_ssrc,
            "audio_ssrc": self.audio_ssrc if self.config.audio else None,
            "final_target_bps": self.target_bps, "counters": asdict(self.counters),
            "feedback_unknown_reports": self.adapter.unknown_reports,
            "records": {"sender_packets": self.packet_log.records,
                        "sender_frames": self.frame_log.records,
                        "sender_rate": self.rate_log.records}})


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


# ---- command line ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m endpoints.rtc.sender_app",
        description="RTC sender: synthetic video (+ audio) over RTP/UDP, paced, with "
                    "sender-side GCC on transport-wide feedback or a REMB-driven target.")
    parser.add_argument("--dest", required=True, type=parse_address,
                        help="receiver HOST:PORT (RTP out, RTCP back on the same port)")
    parser.add_argument("--bind", default=None,
                        help="local HOST:PORT or PORT to bind (default: any address, any port)")
    parser.add_argument("--duration", type=parse_duration, default=None,
                        help="seconds to send; default until SIGTERM/SIGINT")
    parser.add_argument("--start-rate", type=parse_rate, default=300_000.0,
                        help="initial target bitrate, e.g. 300k (default 300k)")
    parser.add_argument("--min-rate", type=parse_rate, default=50_000.0,
                        help="lowest target (default 50k)")
    parser.add_argument("--max-rate", type=parse_rate, default=30_000_000.0,
                        help="highest target (default 30M)")
    parser.add_argument("--fps", type=float, default=30.0, help="video frame rate (default 30)")
    parser.add_argument("--frames-file", type=Path, default=None,
                        help="replay video frame sizes from this file (SIZE [KEY] per line)")
    parser.add_argument("--no-audio", action="store_true", help="send video only")
    parser.add_argument("--estimator", choices=("gcc", "remb"), default="gcc",
                        help="gcc: sender-side GCC from transport feedback (REMB caps it); "
                             "remb: the target follows the receiver's REMB")
    parser.add_argument("--no-probing", action="store_true",
                        help="with gcc: send no probe clusters (initial and further "
                             "exponential probing are on by default, as in libwebrtc)")
    parser.add_argument("--probe-interval", type=float,
                        default=DEFAULT_PERIODIC_PROBE_INTERVAL_MS / 1000,
                        help="with gcc: seconds between periodic probes at 2x the estimate "
                             "when no overuse cut the rate (libwebrtc's ALR probe, run for "
                             "every stream; default %(default)s; 0: none, as libwebrtc "
                             "does for a camera stream)")
    parser.add_argument("--congestion-window", type=float, default=DEFAULT_QUEUE_MS,
                        metavar="MS",
                        help="with gcc: the congestion window's allowance for queueing, in "
                             "ms beyond the feedback RTT; bytes in flight beyond it make the "
                             "encoder drop frames (libwebrtc's default WebRTC-CongestionWindow "
                             "QueueSize, %(default)s; 0: no congestion window)")
    parser.add_argument("--log-dir", default=None,
                        help="write logs, live.jsonl and sender_meta.json here")
    parser.add_argument("--seed", type=int, default=1, help="seed of SSRCs and frame sizes")
    return parser


def config_from_args(args: argparse.Namespace,
                     parser: argparse.ArgumentParser) -> SenderConfig:
    dest: tuple[str, int] = args.dest
    if dest[1] == 0:
        parser.error(f"--dest {dest[0]}:0: port 0 cannot be sent to; fix: give the "
                     "receiver's --bind port")
    any_host = "::" if ":" in dest[0] else "0.0.0.0"
    try:
        bind = parse_address(args.bind, default_host=any_host) if args.bind else (any_host, 0)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--bind: {exc}")
    if not args.min_rate <= args.start_rate <= args.max_rate:
        parser.error(f"--start-rate {args.start_rate:.0f} is outside --min-rate "
                     f"{args.min_rate:.0f} .. --max-rate {args.max_rate:.0f}; fix: pick a "
                     "start rate between them")
    if args.probe_interval < 0:
        parser.error(f"--probe-interval {args.probe_interval}: fix: seconds >= 0 "
                     "(0 turns periodic probing off)")
    if args.congestion_window < 0:
        parser.error(f"--congestion-window {args.congestion_window}: fix: ms >= 0 "
                     "(0 turns the congestion window off)")
    if not 0 < args.fps <= 240:
        parser.error(f"--fps {args.fps}: fix: a frame rate in (0, 240]")
    return SenderConfig(dest=dest, bind=bind, duration_s=args.duration,
                        start_bps=args.start_rate, min_bps=args.min_rate,
                        max_bps=args.max_rate, fps=args.fps, frames_file=args.frames_file,
                        audio=not args.no_audio, estimator=args.estimator,
                        probing=not args.no_probing, probe_interval_s=args.probe_interval,
                        congestion_window_ms=args.congestion_window,
                        log_dir=prepare_log_dir(args.log_dir), seed=args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    stop = StopSignals()
    try:
        try:
            sock = open_udp_socket(config.bind)
        except OSError as exc:
            raise RtcError(f"cannot bind the sender's UDP socket: {exc.strerror}",
                           where=f"--bind {config.bind[0]}:{config.bind[1]}",
                           fix="use a free port and an address of this namespace") from exc
        with sock:
            sender = RtcSender(config, sock, stop)
            reason = sender.run()
    except RtcError as exc:
        print(f"sender_app: error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop.close()
    print(f"sender_app: stopped ({reason}); sent {sender.counters.packets_sent} packets, "
          f"final target {sender.target_bps:.0f} bit/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
