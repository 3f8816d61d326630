"""RTC sender process: ``python -m endpoints.rtc.sender_app --dest HOST:PORT ...``.

One process per flow end, one selector loop, one UDP socket carrying RTP out
and RTCP in (RFC 5761). What the sender decides (steps 1-3) is
:class:`~endpoints.rtc.sender_core.SenderCore`, which the simulator drives
too; this module gives it the clock and the socket. Each turn of the loop:

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
import selectors
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from endpoints.ready import ready_then_start_instant
from endpoints.rtc import logs
from endpoints.rtc.app_common import (
    LOG_FLUSH_INTERVAL_NS,
    StopSignals,
    open_udp_socket,
    parse_address,
    parse_duration,
    parse_rate,
    parse_seconds,
    prepare_log_dir,
    write_meta,
)
from endpoints.rtc.clock import now_ns
from endpoints.rtc.errors import RtcError
from endpoints.rtc.gcc import BandwidthUsage, SendSideBwe
from endpoints.rtc.gcc.congestion_window import DEFAULT_QUEUE_MS
from endpoints.rtc.gcc.probe_controller import DEFAULT_PERIODIC_PROBE_INTERVAL_MS
from endpoints.rtc.live import LIVE_INTERVAL_NS, LiveWriter
from endpoints.rtc.media import FrameSizeFile, VideoModel
from endpoints.rtc.rtcp import Sdes, SenderReport, encode_compound
from endpoints.rtc.rtp import is_rtcp
from endpoints.rtc.sender_core import (
    AUDIO_BPS,
    Departure,
    EstimatorMode,
    SenderCore,
    SenderCounters,
    SenderSettings,
    video_share_bps,
)
from endpoints.rtc.twcc import FeedbackAdapter
from labcore.startgate import sleep_until_ns

__all__ = ["AUDIO_BPS", "RtcSender", "SenderConfig", "SenderCounters", "build_parser",
           "config_from_args", "main", "video_share_bps"]

RATE_LOG_INTERVAL_NS = 50_000_000
SENDER_REPORT_INTERVAL_NS = 1_000_000_000
MAX_READS_PER_WAKE = 64
NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01 (RFC 5905)
_USAGE_CODE = {BandwidthUsage.UNDERUSING: -1, BandwidthUsage.NORMAL: 0,
               BandwidthUsage.OVERUSING: 1}
_DEFAULT = SenderSettings()


@dataclass(frozen=True)
class SenderConfig:
    """The process's options: :class:`SenderSettings` plus where it sends and logs."""

    dest: tuple[str, int]
    bind: tuple[str, int] = ("0.0.0.0", 0)
    duration_s: float | None = None
    start_bps: float = _DEFAULT.start_bps
    min_bps: float = _DEFAULT.min_bps
    max_bps: float = _DEFAULT.max_bps
    fps: float = _DEFAULT.fps
    frames_file: Path | None = None
    audio: bool = _DEFAULT.audio
    estimator: EstimatorMode = _DEFAULT.estimator
    probing: bool = _DEFAULT.probing
    probe_interval_s: float = _DEFAULT.probe_interval_s
    congestion_window_ms: float = _DEFAULT.congestion_window_ms
    log_dir: Path | None = None
    seed: int = 1
    cname: str = "sender@netlab"

    def settings(self) -> SenderSettings:
        return SenderSettings(
            start_bps=self.start_bps, min_bps=self.min_bps, max_bps=self.max_bps, fps=self.fps,
            frames_file=self.frames_file, audio=self.audio, estimator=self.estimator,
            probing=self.probing, probe_interval_s=self.probe_interval_s,
            congestion_window_ms=self.congestion_window_ms)


def _unmapped(host: str) -> str:
    """``::ffff:10.0.0.2`` (an IPv4 peer seen on an IPv6 socket) → ``10.0.0.2``."""
    return host.removeprefix("::ffff:")


def _numeric(dest: tuple[str, int], family: int) -> tuple[str, int]:
    """``dest`` as recvfrom reports it: a numeric host (names resolved once), a port."""
    try:
        info = socket.getaddrinfo(dest[0], dest[1], family, socket.SOCK_DGRAM)
    except OSError:
        return dest
    return _unmapped(str(info[0][4][0])), dest[1]


class RtcSender:
    """The sender's process: :class:`SenderCore` on CLOCK_MONOTONIC and a UDP socket,
    with its logs; ``run()`` returns why it stopped."""

    def __init__(self, config: SenderConfig, sock: socket.socket,
                 stop: StopSignals | None = None, *, start_ns: int | None = None) -> None:
        """``start_ns``: the instant the call starts (CLOCK_MONOTONIC; default now);
        ``run`` is called then."""
        self.config = config
        self.sock = sock
        #: RTCP is taken only from the receiver's address, resolved as ``sendto`` does.
        self._receiver = _numeric(config.dest, sock.family)
        self.stop = stop
        self.start_at_ns = start_ns  # given by the lab (--wait-start), or None
        self.start_ns = now_ns() if start_ns is None else start_ns
        self.started_ns = self.start_ns  # when it really started (woke for start_at_ns)
        self.core = SenderCore(config.settings(), seed=config.seed,
                               start_us=self.start_ns // 1000)
        log_dir = config.log_dir
        self.packet_log = logs.open_writer(log_dir, logs.SENDER_PACKETS)
        self.frame_log = logs.open_writer(log_dir, logs.SENDER_FRAMES)
        self.rate_log = logs.open_writer(log_dir, logs.SENDER_RATE)
        self.live = LiveWriter(log_dir)
        self._bytes_since_rate_log = 0
        self._bytes_since_live = 0
        self.stop_reason = "running"

    # ---- the core's state, as the process reports it -------------------------------------

    @property
    def video_ssrc(self) -> int:
        return self.core.video_ssrc

    @property
    def audio_ssrc(self) -> int:
        return self.core.audio_ssrc

    @property
    def video(self) -> VideoModel | FrameSizeFile:
        return self.core.video

    @property
    def bwe(self) -> SendSideBwe:
        return self.core.bwe

    @property
    def adapter(self) -> FeedbackAdapter:
        return self.core.adapter

    @property
    def counters(self) -> SenderCounters:
        return self.core.counters

    @property
    def target_bps(self) -> float:
        return self.core.target_bps

    def _video_share(self, target_bps: float) -> float:
        return self.core.video_share(target_bps)

    def _update_encoder(self, now_us: int, *, force: bool = False) -> None:
        self.core.update_encoder(now_us, force=force)

    # ---- packets out ------------------------------------------------------------------

    def _turn(self, now_us: int) -> None:
        """Run the core's turn, sending each packet the moment the core releases it."""
        for departure in self.core.turn(now_us):
            self._send(departure)
        for frame, ssrc in self.core.new_frames:
            self.frame_log.append(frame.capture_time_us * 1000, frame.index & 0xFFFFFFFF,
                                  ssrc, frame.size, frame.key)

    def _send(self, departure: Departure) -> None:
        sent = self.core.depart(departure, now_ns())
        data = sent.packet.encode()
        error = False
        try:
            self.sock.sendto(data, self.config.dest)
        except OSError:
            # Socket buffer full (or a transient route error): the packet is lost at
            # the sender; it stays in the history so feedback reports it missing.
            error = True
            self.counters.send_errors += 1
        self.packet_log.append(*sent.log_row(error))
        self.counters.packets_sent += 1
        self.counters.bytes_sent += len(data)
        self._bytes_since_rate_log += len(data)
        self._bytes_since_live += len(data)

    # ---- RTCP in -----------------------------------------------------------------------

    def _read_socket(self) -> None:
        for _ in range(MAX_READS_PER_WAKE):
            try:
                data, address = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. ICMP port unreachable reported on the socket: ignore
            if (_unmapped(address[0]), address[1]) != self._receiver or not is_rtcp(data):
                self.counters.foreign_datagrams += 1
                continue
            self.core.on_rtcp_datagram(data, now_ns() // 1000)

    # ---- periodic outputs ------------------------------------------------------------

    def _send_report(self, now: int) -> None:
        wall = time.time_ns()
        ntp = ((wall // 1_000_000_000 + NTP_UNIX_OFFSET_S) << 32) | (
            (wall % 1_000_000_000) << 32) // 1_000_000_000
        reports: list[SenderReport | Sdes] = []
        chunks: list[tuple[int, str]] = []
        for packetizer in (self.core.video_packetizer, self.core.audio_packetizer):
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

    def _write_rate_log(self, now: int, interval_ns: int) -> None:
        core = self.core
        rtt = core.bwe.rtt_ms
        encoder = getattr(core.video, "encoder_bps", math.nan)
        self.rate_log.append(
            now, core.target_bps, self._bytes_since_rate_log * 8e9 / max(1, interval_ns),
            float(encoder) + (AUDIO_BPS if core.audio else 0), core.pacer.queued_bytes,
            core.pacer.queued_packets, core.bwe.delay_based_bps, core.bwe.loss_based_bps,
            core.loss_fraction(), math.nan if rtt is None else rtt,
            math.nan if core.remb_bps is None else core.remb_bps, _USAGE_CODE[core.bwe.usage])
        self._bytes_since_rate_log = 0

    def _write_live(self, now: int, interval_ns: int) -> None:
        core = self.core
        rtt = core.bwe.rtt_ms
        self.live.write({
            "role": "sender", "time_ns": now, "t_s": round((now - self.start_ns) / 1e9, 3),
            "rate_bps": round(self._bytes_since_live * 8e9 / max(1, interval_ns)),
            "loss": round(core.loss_fraction(), 5), "owd_ms": None,
            "estimate_bps": round(core.target_bps), "target_bps": round(core.target_bps),
            "pacer_queue_bytes": core.pacer.queued_bytes,
            "rtt_ms": None if rtt is None else round(rtt, 2),
            "usage": core.bwe.usage.value, "packets_sent": self.counters.packets_sent})
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
        next_live_ns = self.start_ns + LIVE_INTERVAL_NS
        next_report_ns = self.start_ns + SENDER_REPORT_INTERVAL_NS
        next_flush_ns = self.start_ns + LOG_FLUSH_INTERVAL_NS
        last_rate_ns = last_live_ns = self.start_ns
        self._write_meta("running")
        self.core.start(self.start_ns // 1000)
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
                self._turn(now_us)
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
                deadline_ns = min(self.core.next_deadline_us(now_us) * 1000, next_rate_ns,
                                  next_live_ns)
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
            "start_ns": self.start_ns, "start_at_ns": self.start_at_ns,
            "started_ns": self.started_ns,
            "end_ns": now_ns() if state != "running" else None,
            "config": asdict(self.config), "video_ssrc": self.video_ssrc,
            "bound_address": list(self.sock.getsockname()[:2]),
            "audio_ssrc": self.audio_ssrc if self.config.audio else None,
            "final_target_bps": self.target_bps, "counters": asdict(self.counters),
            "feedback_unknown_reports": self.adapter.unknown_reports,
            "records": {"sender_packets": self.packet_log.records,
                        "sender_frames": self.frame_log.records,
                        "sender_rate": self.rate_log.records}})


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
                        help="how long to send, e.g. 30s (a bare number is seconds); "
                             "default until SIGTERM/SIGINT")
    parser.add_argument("--start-rate", type=parse_rate, default=300_000.0,
                        help="initial target bitrate, e.g. 300kbit (a bare number is bit/s; "
                             "default 300kbit)")
    parser.add_argument("--min-rate", type=parse_rate, default=50_000.0,
                        help="lowest target (default 50kbit)")
    parser.add_argument("--max-rate", type=parse_rate, default=30_000_000.0,
                        help="highest target (default 30Mbit)")
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
    parser.add_argument("--probe-interval", type=parse_seconds,
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
    parser.add_argument("--wait-start", action="store_true",
                        help="once set up, write ready.json to --log-dir and wait for "
                             "'start NS' on stdin (CLOCK_MONOTONIC ns), then start at NS: "
                             "how netlab starts every flow on the run's one time zero")
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
            start_ns = None
            if args.wait_start:
                start_ns = ready_then_start_instant(
                    config.log_dir, "waiting for the run's start",
                    lambda: stop.received is not None)
                if start_ns is None:
                    print("sender_app: stopped before its start", file=sys.stderr)
                    return 0
            sender = RtcSender(config, sock, stop, start_ns=start_ns)
            if start_ns is not None:
                sender.started_ns = sleep_until_ns(start_ns)
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
