"""RTC receiver process: ``python -m endpoints.rtc.receiver_app --bind HOST:PORT ...``.

One process per flow end, one selector loop, one UDP socket: RTP in, RTCP
back to wherever the RTP came from (symmetric RTP, RFC 4961), both on one
port (RFC 5761). It

* logs every RTP packet on arrival (:mod:`endpoints.rtc.logs`), with the
  exact one-way delay from the sender's payload stamp (:mod:`endpoints.rtc.clock`);
* sends transport-wide feedback (RTPFB FMT 15) every ``--feedback-interval``
  (50–100 ms), with RR (fraction lost, cumulative loss, jitter, LSR/DLSR)
  and SDES every 500 ms in the same compound packet;
* with a receiver-side estimator, hands it every packet's AlphaRTC stats and
  polls it every ``--poll-interval`` (200 ms, AlphaRTC's default); each
  answer is logged and sent in REMB (PSFB FMT 15);
* appends a live line every 250 ms (:mod:`endpoints.rtc.live`; receiver keys
  besides the common ones: ``owd_max_ms``, ``packets_received``,
  ``packets_lost``).

The estimate source is pluggable: anything with AlphaRTC's
``report_states(stats)`` / ``get_estimated_bandwidth()`` (the
:class:`~endpoints.rtc.estimators.ReceiverEstimator` protocol). Built in:
``none`` (the sender runs GCC), ``gcc``, ``fixed:BPS``,
``plugin:PATH/BandwidthEstimator.py``; more kinds (e.g. a policy agent's
client) join with :func:`register_estimator_kind`, or pass an object to
:class:`RtcReceiver` directly. ``report_states`` runs inside the receive
loop, so an estimator must not block.

Exit status: 0 on a clean stop (``--duration`` or SIGTERM/SIGINT, logs
flushed, ``receiver_meta.json`` written), 1 on an error (what / where /
fix on stderr), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from endpoints.rtc import logs
from endpoints.rtc.app_common import (
    LOG_FLUSH_INTERVAL_NS,
    StopSignals,
    open_udp_socket,
    parse_address,
    parse_duration,
    prepare_log_dir,
    write_meta,
)
from endpoints.rtc.clock import NO_FRAME, now_ns, read_stamp
from endpoints.rtc.errors import PacketError, PluginError, RtcError
from endpoints.rtc.estimators import (
    DEFAULT_POLL_INTERVAL_S,
    GccEstimator,
    ReceiverEstimator,
    estimator_from_spec,
)
from endpoints.rtc.live import LIVE_INTERVAL_NS, LiveWriter, median
from endpoints.rtc.packetizer import AUDIO_PAYLOAD_TYPE
from endpoints.rtc.rtcp import (
    ReceiverReport,
    Remb,
    RtcpPacket,
    Sdes,
    SenderReport,
    decode_compound,
)
from endpoints.rtc.rtp import AbsSendTimeUnwrapper, RtpPacket, SequenceUnwrapper, is_rtcp
from endpoints.rtc.stats import ReceptionStats
from endpoints.rtc.twcc import FeedbackBuilder

RECEIVER_SSRC = 0x52454356  # "RECV"
MIN_FEEDBACK_INTERVAL_S, MAX_FEEDBACK_INTERVAL_S = 0.05, 0.1  # the 50–100 ms
REPORT_INTERVAL_NS = 500_000_000
MAX_READS_PER_WAKE = 256
MAX_RTCP_DATAGRAM = 1200  # stays under a 1500-byte MTU with IP/UDP headers
MAX_REMB_BPS = (1 << 18) << 40

EstimatorFactory = Callable[[str], ReceiverEstimator]
_ESTIMATOR_KINDS: dict[str, EstimatorFactory] = {}
_BUILTIN_KINDS = ("none", "gcc", "fixed:BPS", "plugin:PATH")


def register_estimator_kind(kind: str, factory: EstimatorFactory) -> None:
    """Make ``--estimator KIND:ARG`` build ``factory(ARG)`` (e.g. a policy agent client)."""
    if not kind.isidentifier() or kind in ("none", "gcc", "fixed", "plugin"):
        raise ValueError(f"estimator kind {kind!r} is reserved or not an identifier")
    _ESTIMATOR_KINDS[kind] = factory


def make_estimator(spec: str) -> ReceiverEstimator | None:
    """The estimator a ``--estimator`` value names; ``None`` for ``none``."""
    if spec == "none":
        return None
    kind, _, argument = spec.partition(":")
    factory = _ESTIMATOR_KINDS.get(kind)
    if factory is not None:
        return factory(argument)
    if kind in ("gcc", "fixed", "plugin"):
        return estimator_from_spec(spec)
    kinds = ", ".join([*_BUILTIN_KINDS, *(f"{k}:..." for k in _ESTIMATOR_KINDS)])
    raise PluginError(f"unknown receiver estimator {spec!r}", where=f"--estimator {spec}",
                      fix=f"use one of: {kinds}")


@dataclass(frozen=True)
class ReceiverConfig:
    bind: tuple[str, int]
    duration_s: float | None = None
    estimator: str = "none"
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    feedback_interval_s: float = 0.05
    log_dir: Path | None = None
    cname: str = "receiver@netlab"


@dataclass
class ReceiverCounters:
    packets_received: int = 0
    bytes_received: int = 0
    packets_unstamped: int = 0
    rtp_malformed: int = 0
    rtcp_received: int = 0
    rtcp_sent: int = 0
    feedback_sent: int = 0
    remb_sent: int = 0
    send_errors: int = 0
    estimator_polls: int = 0
    other_sources: int = 0
    last_estimate_bps: int | None = None
    late_feedback_packets: int = 0
    per_ssrc: dict[str, dict[str, float]] = field(default_factory=dict)


class RtcReceiver:
    """The receiver's state and event loop; ``run()`` returns why it stopped."""

    def __init__(self, config: ReceiverConfig, sock: socket.socket,
                 estimator: ReceiverEstimator | None = None,
                 stop: StopSignals | None = None) -> None:
        self.config = config
        self.sock = sock
        self.estimator = estimator
        self.stop = stop
        #: The built-in GCC gets send/arrival times as float ms (AlphaRTC's ints would
        #: quantise its delay gradient to 1 ms); plugins get AlphaRTC's ints.
        self._float_stats = isinstance(estimator, GccEstimator)
        self.start_ns = now_ns()
        #: TWCC carries arrival times from an epoch in 24 bits of 64 ms (≈ 6 days):
        #: count from this process's start, not from boot.
        self._epoch_us = self.start_ns // 1000
        self.builder = FeedbackBuilder(RECEIVER_SSRC, 0, interval_us=int(
            config.feedback_interval_s * 1e6))
        self.reception: dict[int, ReceptionStats] = {}
        self._last_sr: dict[int, tuple[int, int]] = {}  # ssrc → (LSR, arrival ns)
        self._abs_send_time = AbsSendTimeUnwrapper()
        self._transport_unwrapper = SequenceUnwrapper()
        self.sender_address: Any = None
        self.counters = ReceiverCounters()
        log_dir = config.log_dir
        self.packet_log = logs.open_writer(log_dir, logs.RECEIVER_PACKETS)
        self.estimate_log = logs.open_writer(log_dir, logs.RECEIVER_ESTIMATES)
        self.live = LiveWriter(log_dir)
        self._live_bytes = 0
        self._live_owd_ms: list[float] = []
        self.stop_reason = "running"

    # ---- RTP in --------------------------------------------------------------------------

    def _read_socket(self) -> None:
        for _ in range(MAX_READS_PER_WAKE):
            try:
                data, address = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error reported on the socket: not a datagram
            arrival_ns = now_ns()
            if self.sender_address is not None and address != self.sender_address:
                self.counters.other_sources += 1
                continue
            if is_rtcp(data):
                self.counters.rtcp_received += 1
                self._on_rtcp(data, arrival_ns)
            else:
                self._on_rtp(data, address, arrival_ns)

    def _on_rtp(self, data: bytes, address: Any, arrival_ns: int) -> None:
        try:
            packet = RtpPacket.decode(data)
        except PacketError:
            self.counters.rtp_malformed += 1
            return
        if self.sender_address is None:
            self.sender_address = address
        wire_seq = packet.transport_sequence_number()
        stamp = read_stamp(packet.payload, wire_seq)
        if stamp is not None:
            send_ns, transport_seq, frame_id = stamp
            self._live_owd_ms.append((arrival_ns - send_ns) / 1e6)
        else:
            self.counters.packets_unstamped += 1
            send_ns, frame_id = -1, NO_FRAME
            transport_seq = (self._transport_unwrapper.unwrap(wire_seq) & 0xFFFFFFFF
                             if wire_seq is not None else 0xFFFFFFFF)
        arrival_us = arrival_ns // 1000
        if wire_seq is not None:
            self.builder.on_packet(wire_seq, arrival_us - self._epoch_us)
        stats = self.reception.get(packet.ssrc)
        if stats is None:
            clock = 48_000 if packet.payload_type == AUDIO_PAYLOAD_TYPE else 90_000
            stats = self.reception[packet.ssrc] = ReceptionStats(packet.ssrc, clock)
            if self.builder.media_ssrc == 0:
                self.builder.media_ssrc = packet.ssrc
        stats.on_packet(packet.sequence_number, packet.timestamp, arrival_us)
        header_length = len(data) - len(packet.payload) - packet.padding_size
        self.packet_log.append(arrival_ns, send_ns, transport_seq, packet.ssrc, frame_id,
                               packet.sequence_number, len(data), header_length,
                               packet.payload_type, packet.marker)
        self.counters.packets_received += 1
        self.counters.bytes_received += len(data)
        self._live_bytes += len(data)
        if self.estimator is not None:
            self._report_states(packet, arrival_ns, send_ns, header_length)

    def _report_states(self, packet: RtpPacket, arrival_ns: int, send_ns: int,
                       header_length: int) -> None:
        """AlphaRTC's per-packet stats; its send time is abs-send-time, as AlphaRTC's is."""
        abs_send_time = packet.abs_send_time()
        if abs_send_time is not None:
            send_ms = self._abs_send_time.unwrap(abs_send_time) / 1000
        else:
            send_ms = send_ns / 1e6
        arrival_ms = arrival_ns / 1e6
        assert self.estimator is not None
        self.estimator.report_states({
            "send_time_ms": send_ms if self._float_stats else int(send_ms),
            "arrival_time_ms": arrival_ms if self._float_stats else int(arrival_ms),
            "payload_type": packet.payload_type,
            "sequence_number": packet.sequence_number,
            "ssrc": packet.ssrc,
            "padding_length": packet.padding_size,
            "header_length": header_length,
            "payload_size": len(packet.payload),
        })

    def _on_rtcp(self, data: bytes, arrival_ns: int) -> None:
        try:
            packets = decode_compound(data)
        except PacketError:
            return
        for rtcp in packets:
            if isinstance(rtcp, SenderReport):
                # RFC 3550 §6.4.1: LSR is the middle 32 bits of the SR's NTP timestamp.
                self._last_sr[rtcp.ssrc] = ((rtcp.ntp_timestamp >> 16) & 0xFFFFFFFF, arrival_ns)

    # ---- RTCP out -----------------------------------------------------------------------

    def _send_rtcp(self, packets: Sequence[RtcpPacket]) -> None:
        """Pack RTCP packets into datagrams of at most MAX_RTCP_DATAGRAM bytes (one
        oversized packet goes alone); feedback-only datagrams are reduced-size (RFC 5506)."""
        datagram = bytearray()
        for packet in packets:
            encoded = packet.encode()
            if datagram and len(datagram) + len(encoded) > MAX_RTCP_DATAGRAM:
                self._sendto(bytes(datagram))
                datagram.clear()
            datagram += encoded
        if datagram:
            self._sendto(bytes(datagram))

    def _sendto(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, self.sender_address)
            self.counters.rtcp_sent += 1
        except OSError:
            self.counters.send_errors += 1

    def _report_packets(self, now: int) -> list[RtcpPacket]:
        blocks = []
        for ssrc, stats in self.reception.items():
            lsr, dlsr = 0, 0
            if ssrc in self._last_sr:
                lsr, sr_arrival = self._last_sr[ssrc]
                dlsr = (now - sr_arrival) * 65536 // 1_000_000_000
            blocks.append(stats.report_block(lsr, dlsr))
        return [ReceiverReport(RECEIVER_SSRC, tuple(blocks[:31])),
                Sdes(((RECEIVER_SSRC, self.config.cname),))]

    def _feedback(self, now: int, with_report: bool) -> None:
        feedback = self.builder.build()
        self.counters.feedback_sent += len(feedback)
        out: list[RtcpPacket] = self._report_packets(now) if with_report else []
        out.extend(feedback)
        if out:
            self._send_rtcp(out)

    def _poll_estimator(self, now: int) -> None:
        assert self.estimator is not None
        estimate = min(MAX_REMB_BPS - 1, max(0, int(self.estimator.get_estimated_bandwidth())))
        self.counters.estimator_polls += 1
        self.counters.last_estimate_bps = estimate
        self.estimate_log.append(now, estimate)
        self._send_rtcp([Remb(RECEIVER_SSRC, estimate, tuple(self.reception)[:255])])
        self.counters.remb_sent += 1

    # ---- live ----------------------------------------------------------------------------

    def _totals(self) -> tuple[int, int]:
        expected = sum(s.expected for s in self.reception.values())
        lost = sum(max(0, s.cumulative_lost) for s in self.reception.values())
        return expected, lost

    def _write_live(self, now: int, interval_ns: int) -> None:
        expected, lost = self._totals()
        owd = median(self._live_owd_ms)
        self.live.write({
            "role": "receiver", "time_ns": now, "t_s": round((now - self.start_ns) / 1e9, 3),
            "rate_bps": round(self._live_bytes * 8e9 / max(1, interval_ns)),
            "loss": round(lost / expected, 5) if expected else 0.0,
            "owd_ms": None if owd is None else round(owd, 3),
            "owd_max_ms": round(max(self._live_owd_ms), 3) if self._live_owd_ms else None,
            "estimate_bps": self.counters.last_estimate_bps,
            "packets_received": self.counters.packets_received, "packets_lost": lost})
        self._live_bytes = 0
        self._live_owd_ms = []

    # ---- loop ----------------------------------------------------------------------------

    def run(self) -> str:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, "socket")
        if self.stop is not None:
            selector.register(self.stop.reader, selectors.EVENT_READ, "signal")
        duration = self.config.duration_s
        end_ns = self.start_ns + int(duration * 1e9) if duration is not None else None
        feedback_ns = int(self.config.feedback_interval_s * 1e9)
        poll_ns = int(self.config.poll_interval_s * 1e9)
        next_feedback_ns = next_poll_ns = None  # armed by the first packet
        next_report_ns = self.start_ns
        next_live_ns = self.start_ns + LIVE_INTERVAL_NS
        next_flush_ns = self.start_ns + LOG_FLUSH_INTERVAL_NS
        last_live_ns = self.start_ns
        self._write_meta("running")
        try:
            while True:
                if self.stop is not None and self.stop.received:
                    self.stop_reason = f"signal {self.stop.received}"
                    break
                now = now_ns()
                if end_ns is not None and now >= end_ns:
                    self.stop_reason = "duration"
                    break
                if self.sender_address is not None:
                    if next_feedback_ns is None or next_poll_ns is None:
                        next_feedback_ns, next_poll_ns = now + feedback_ns, now + poll_ns
                    if now >= next_feedback_ns:
                        with_report = now >= next_report_ns
                        self._feedback(now, with_report)
                        if with_report:
                            next_report_ns = now + REPORT_INTERVAL_NS
                        next_feedback_ns = max(next_feedback_ns + feedback_ns,
                                               now + feedback_ns // 2)
                    if self.estimator is not None and now >= next_poll_ns:
                        self._poll_estimator(now)
                        next_poll_ns = max(next_poll_ns + poll_ns, now + poll_ns // 2)
                if now >= next_live_ns:
                    self._write_live(now, now - last_live_ns)
                    last_live_ns = now
                    next_live_ns = max(next_live_ns + LIVE_INTERVAL_NS,
                                       now + LIVE_INTERVAL_NS // 2)
                if now >= next_flush_ns:
                    self.packet_log.flush()
                    self.estimate_log.flush()
                    next_flush_ns = now + LOG_FLUSH_INTERVAL_NS
                deadlines = [next_live_ns]
                if next_feedback_ns is not None:
                    deadlines.append(next_feedback_ns)
                if self.estimator is not None and next_poll_ns is not None:
                    deadlines.append(next_poll_ns)
                if end_ns is not None:
                    deadlines.append(end_ns)
                timeout = max(0.0, (min(deadlines) - now_ns()) / 1e9)
                for key, _events in selector.select(timeout):
                    if key.data == "socket":
                        self._read_socket()
                    elif self.stop is not None:
                        self.stop.drain()
        finally:
            selector.close()
            self.close()
        return self.stop_reason

    def close(self) -> None:
        self.packet_log.close()
        self.estimate_log.close()
        self.live.close()
        self._write_meta(self.stop_reason)

    def _write_meta(self, state: str) -> None:
        if self.config.log_dir is None:
            return
        self.counters.late_feedback_packets = self.builder.late_packets
        self.counters.per_ssrc = {
            f"{ssrc:08x}": {"received": s.received, "expected": s.expected,
                            "cumulative_lost": s.cumulative_lost,
                            "jitter_s": s.jitter / s.clock_rate}
            for ssrc, s in self.reception.items()}
        write_meta(self.config.log_dir / "receiver_meta.json", {
            "role": "receiver", "state": state, "clock": "CLOCK_MONOTONIC",
            "start_ns": self.start_ns, "end_ns": now_ns() if state != "running" else None,
            "config": asdict(self.config), "receiver_ssrc": RECEIVER_SSRC,
            "bound_address": list(self.sock.getsockname()[:2]),
            "sender_address": (list(self.sender_address) if self.sender_address else None),
            "counters": asdict(self.counters),
            "records": {"receiver_packets": self.packet_log.records,
                        "receiver_estimates": self.estimate_log.records}})


# ---- command line ---------------------------------------------------------------------


def _interval(low: float, high: float, name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text.removesuffix("s"))
        except ValueError:
            value = -1.0
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{name} {text!r}: fix: seconds in [{low}, {high}]")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m endpoints.rtc.receiver_app",
        description="RTC receiver: logs RTP arrivals, sends transport-wide feedback, "
                    "receiver reports and (with a receiver-side estimator) REMB.")
    parser.add_argument("--bind", required=True,
                        type=lambda text: parse_address(text, default_host="0.0.0.0"),
                        help="HOST:PORT to receive on (RTP in, RTCP out, one port)")
    parser.add_argument("--duration", type=parse_duration, default=None,
                        help="seconds to run; default until SIGTERM/SIGINT")
    parser.add_argument("--estimator", default="none",
                        help="none (sender runs GCC) | gcc | fixed:BPS | "
                             "plugin:PATH/BandwidthEstimator.py (estimate → REMB)")
    parser.add_argument("--poll-interval", default=DEFAULT_POLL_INTERVAL_S,
                        type=_interval(0.01, 10.0, "--poll-interval"),
                        help="seconds between estimator polls / REMBs (default 0.2)")
    parser.add_argument("--feedback-interval", default=0.05,
                        type=_interval(MIN_FEEDBACK_INTERVAL_S, MAX_FEEDBACK_INTERVAL_S,
                                       "--feedback-interval"),
                        help="seconds between transport feedback packets, 0.05..0.1")
    parser.add_argument("--log-dir", default=None,
                        help="write logs, live.jsonl and receiver_meta.json here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stop = StopSignals()
    try:
        estimator = make_estimator(args.estimator)
        config = ReceiverConfig(bind=args.bind, duration_s=args.duration,
                                estimator=args.estimator, poll_interval_s=args.poll_interval,
                                feedback_interval_s=args.feedback_interval,
                                log_dir=prepare_log_dir(args.log_dir))
        try:
            sock = open_udp_socket(config.bind)
        except OSError as exc:
            raise RtcError(f"cannot bind the receiver's UDP socket: {exc.strerror}",
                           where=f"--bind {config.bind[0]}:{config.bind[1]}",
                           fix="use a free port and an address of this namespace") from exc
        with sock:
            receiver = RtcReceiver(config, sock, estimator, stop)
            reason = receiver.run()
    except RtcError as exc:
        print(f"receiver_app: error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop.close()
    print(f"receiver_app: stopped ({reason}); received {receiver.counters.packets_received} "
          "packets", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
