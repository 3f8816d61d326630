"""RTC receiver process: ``python -m endpoints.rtc.receiver_app --bind HOST:PORT ...``.

One process per flow end, one selector loop, one UDP socket: RTP in, RTCP
back to wherever the RTP came from (symmetric RTP, RFC 4961), both on one
port (RFC 5761). What it decides (feedback, reports, estimator polls) is
:class:`~endpoints.rtc.receiver_core.ReceiverCore`, which the simulator
drives too; this module gives it the clock, the socket and the logs. It

* logs every RTP packet on arrival (:mod:`endpoints.rtc.logs`), with the
  exact one-way delay from the sender's payload stamp (:mod:`endpoints.rtc.clock`);
* sends transport-wide feedback (RTPFB FMT 15) every ``--feedback-interval``
  (50–100 ms), with RR (fraction lost, cumulative loss, jitter, LSR/DLSR)
  and SDES every 500 ms in the same compound packet;
* with a receiver-side estimator, hands it every packet's AlphaRTC stats
  (:class:`~endpoints.rtc.stats.AlphaRtcStats`) and polls it every
  ``--poll-interval`` (200 ms, AlphaRTC's ``bwe_feedback_duration``); each
  answer is logged and sent in REMB (PSFB FMT 15). A plugin is polled as
  AlphaRTC polls it: right after the report of the first packet that arrives
  more than the interval after the previous poll (no packets, no poll);
  built-in and policy estimators on a timer from the first packet;
* writes ``ready.json`` (:mod:`endpoints.ready`) with what it is doing while
  it binds and loads its estimator, then ``ready`` once both are done; a
  plugin runs with its folder as the process's working directory, and a
  plugin's exception leaves its own traceback on stderr;
* with ``--record FILE``, keeps every RTP packet's header, size and arrival
  (:mod:`endpoints.rtc.recording`) for ``netlab plugin check --packets``;
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
import ipaddress
import selectors
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from endpoints import ready
from endpoints.rtc import logs
from endpoints.rtc.app_common import (
    LOG_FLUSH_INTERVAL_NS,
    StopSignals,
    open_udp_socket,
    parse_address,
    parse_duration,
    parse_seconds,
    prepare_log_dir,
    write_meta,
)
from endpoints.rtc.clock import now_ns
from endpoints.rtc.errors import PacketError, PluginError, RtcError
from endpoints.rtc.estimators import (
    DEFAULT_CALL_BUDGET_S,
    DEFAULT_POLL_INTERVAL_S,
    PluginEstimator,
    ReceiverEstimator,
    estimator_from_spec,
    load_plugin,
    plugin_traceback,
)
from endpoints.rtc.live import LIVE_INTERVAL_NS, LiveWriter, median
from endpoints.rtc.receiver_core import (
    DEFAULT_FEEDBACK_INTERVAL_S,
    MAX_REMB_BPS,
    RECEIVER_SSRC,
    ReceiverCore,
    ReceiverCounters,
    pack_rtcp,
)
from endpoints.rtc.recording import Recorder
from endpoints.rtc.rtcp import Remb, RtcpPacket
from endpoints.rtc.rtp import RtpPacket, is_rtcp

__all__ = ["MAX_REMB_BPS", "RECEIVER_SSRC", "ReceiverConfig", "ReceiverCounters", "RtcReceiver",
           "build_parser", "main", "make_estimator", "register_estimator_kind"]

MIN_FEEDBACK_INTERVAL_S, MAX_FEEDBACK_INTERVAL_S = 0.05, 0.1  # the 50–100 ms
MAX_READS_PER_WAKE = 256

EstimatorFactory = Callable[[str], ReceiverEstimator]
_ESTIMATOR_KINDS: dict[str, EstimatorFactory] = {}
_BUILTIN_KINDS = ("none", "gcc", "fixed:BPS", "plugin:PATH")


def register_estimator_kind(kind: str, factory: EstimatorFactory) -> None:
    """Make ``--estimator KIND:ARG`` build ``factory(ARG)`` (e.g. a policy agent client)."""
    if not kind.isidentifier() or kind in ("none", "gcc", "fixed", "plugin"):
        raise ValueError(f"estimator kind {kind!r} is reserved or not an identifier")
    _ESTIMATOR_KINDS[kind] = factory


def make_estimator(spec: str, *, budget_s: float = DEFAULT_CALL_BUDGET_S,
                   stay_in_folder: bool = False) -> ReceiverEstimator | None:
    """The estimator a ``--estimator`` value names; ``None`` for ``none``."""
    if spec == "none":
        return None
    kind, _, argument = spec.partition(":")
    if kind == "plugin" and argument:
        return load_plugin(argument, budget_s=budget_s, stay_in_folder=stay_in_folder)
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
    feedback_interval_s: float = DEFAULT_FEEDBACK_INTERVAL_S
    log_dir: Path | None = None
    cname: str = "receiver@netlab"
    #: The sender's address: datagrams from any other host are dropped and counted
    #: (None: the first RTP source heard is the sender, as a plain RTP receiver does).
    peer: str | None = None
    plugin_budget_s: float = DEFAULT_CALL_BUDGET_S
    record: Path | None = None


class RtcReceiver:
    """The receiver's process: :class:`ReceiverCore` on CLOCK_MONOTONIC and a UDP
    socket, with its logs; ``run()`` returns why it stopped."""

    def __init__(self, config: ReceiverConfig, sock: socket.socket,
                 estimator: ReceiverEstimator | None = None,
                 stop: StopSignals | None = None) -> None:
        self.config = config
        self.sock = sock
        self.estimator = estimator
        self.stop = stop
        self.start_ns = now_ns()
        self.core = ReceiverCore(estimator, start_ns=self.start_ns,
                                 poll_interval_s=config.poll_interval_s,
                                 feedback_interval_s=config.feedback_interval_s,
                                 cname=config.cname)
        self.counters = self.core.counters
        self.sender_address: Any = None
        log_dir = config.log_dir
        self.packet_log = logs.open_writer(log_dir, logs.RECEIVER_PACKETS)
        self.estimate_log = logs.open_writer(log_dir, logs.RECEIVER_ESTIMATES)
        self.live = LiveWriter(log_dir)
        self.recorder = Recorder(config.record) if config.record is not None else None
        self._live_bytes = 0
        self._live_owd_ms: list[float] = []
        self.stop_reason = "running"
        self.ready_note = ""  # said with "ready" (ready.json), e.g. the estimator's load time

    # ---- datagrams in ----------------------------------------------------------------------

    def _read_socket(self) -> None:
        for _ in range(MAX_READS_PER_WAKE):
            try:
                data, address = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error reported on the socket: not a datagram
            arrival_ns = now_ns()
            if not self._from_sender(address):
                self.counters.foreign_packets += 1
                continue
            if is_rtcp(data):
                self.core.on_rtcp_datagram(data, arrival_ns)
            else:
                self._on_rtp(data, address, arrival_ns)

    def _from_sender(self, address: Any) -> bool:
        """Once RTP has come from the sender, only its address (host and port) is; before,
        any port of the expected host (the sender's port is ephemeral)."""
        if self.sender_address is not None:
            return bool(address == self.sender_address)
        return self.config.peer is None or address[0].removeprefix("::ffff:") == self.config.peer

    def _on_rtp(self, data: bytes, address: Any, arrival_ns: int) -> None:
        try:
            packet = RtpPacket.decode(data)
        except PacketError:
            self.counters.rtp_malformed += 1
            return
        if self.sender_address is None:
            self.sender_address = address
        arrival, remb = self.core.on_rtp(packet, len(data), arrival_ns)
        if arrival.send_ns >= 0:
            self._live_owd_ms.append((arrival_ns - arrival.send_ns) / 1e6)
        self.packet_log.append(*arrival.log_row())
        if self.recorder is not None:
            self.recorder.add(data, packet, arrival_ns)
        self._live_bytes += len(data)
        if remb:
            self._send(remb, arrival_ns)

    # ---- RTCP out -----------------------------------------------------------------------

    def _send(self, packets: Sequence[RtcpPacket], now: int) -> None:
        for packet in packets:
            if isinstance(packet, Remb):
                self.estimate_log.append(now, packet.bitrate_bps)
        for datagram in pack_rtcp(packets):
            try:
                self.sock.sendto(datagram, self.sender_address)
                self.counters.rtcp_sent += 1
            except OSError:
                self.counters.send_errors += 1

    # ---- live ----------------------------------------------------------------------------

    def _write_live(self, now: int, interval_ns: int) -> None:
        expected, lost = self.core.totals()
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
        next_live_ns = self.start_ns + LIVE_INTERVAL_NS
        next_flush_ns = self.start_ns + LOG_FLUSH_INTERVAL_NS
        last_live_ns = self.start_ns
        self._write_meta("running")
        bound = self.sock.getsockname()
        ready.ready(self.config.log_dir, f"receiving on {bound[0]}:{bound[1]}"
                    + (f" ({self.ready_note})" if self.ready_note else ""))
        try:
            while True:
                if self.stop is not None and self.stop.received:
                    self.stop_reason = f"signal {self.stop.received}"
                    break
                now = now_ns()
                if end_ns is not None and now >= end_ns:
                    self.stop_reason = "duration"
                    break
                for compound in self.core.on_timer(now):
                    self._send(compound, now)
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
                timer_ns = self.core.next_deadline_ns()
                if timer_ns is not None:
                    deadlines.append(timer_ns)
                if end_ns is not None:
                    deadlines.append(end_ns)
                timeout = max(0.0, (min(deadlines) - now_ns()) / 1e9)
                for key, _events in selector.select(timeout):
                    if key.data == "socket":
                        self._read_socket()
                    elif self.stop is not None:
                        self.stop.drain()
        except RtcError as exc:
            self.stop_reason = "error"
            self.counters.error = str(exc)
            raise
        finally:
            selector.close()
            self.close()
        return self.stop_reason

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        self.packet_log.close()
        self.estimate_log.close()
        self.live.close()
        self._write_meta(self.stop_reason)

    def _write_meta(self, state: str) -> None:
        if self.config.log_dir is None:
            return
        self.counters.late_feedback_packets = self.core.builder.late_packets
        if isinstance(self.estimator, PluginEstimator):
            self.counters.plugin = self.estimator.summary()
        self.counters.per_ssrc = {
            f"{ssrc:08x}": {"received": s.received, "expected": s.expected,
                            "cumulative_lost": s.cumulative_lost,
                            "jitter_s": s.jitter / s.clock_rate}
            for ssrc, s in self.core.reception.items()}
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
        value = parse_seconds(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{name} {text!r}: fix: seconds in [{low}, {high}]")
        return value
    return parse


def _host_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--peer {text!r}: fix: an IP address such as "
                                         "10.0.0.1") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m endpoints.rtc.receiver_app",
        description="RTC receiver: logs RTP arrivals, sends transport-wide feedback, "
                    "receiver reports and (with a receiver-side estimator) REMB.")
    parser.add_argument("--bind", required=True,
                        type=lambda text: parse_address(text, default_host="0.0.0.0"),
                        help="HOST:PORT to receive on (RTP in, RTCP out, one port)")
    parser.add_argument("--peer", default=None, type=_host_address,
                        help="the sender's IP address: datagrams from other hosts are dropped "
                             "and counted (default: the first RTP source heard)")
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
    parser.add_argument("--plugin-budget", default=DEFAULT_CALL_BUDGET_S,
                        type=_interval(0.0001, 10.0, "--plugin-budget"),
                        help="seconds a plugin call may take before it is counted as "
                             f"over budget (default {DEFAULT_CALL_BUDGET_S})")
    parser.add_argument("--log-dir", default=None,
                        help="write logs, live.jsonl, ready.json and receiver_meta.json here")
    parser.add_argument("--record", default=None,
                        help="also write every RTP packet's header, size and arrival time "
                             "to this file (.gz compresses) for `netlab plugin check`")
    return parser


def _open_socket(config: ReceiverConfig) -> socket.socket:
    ready.starting(config.log_dir, f"binding {config.bind[0]}:{config.bind[1]}")
    try:
        return open_udp_socket(config.bind)
    except OSError as exc:
        raise RtcError(f"cannot bind the receiver's UDP socket: {exc.strerror}",
                       where=f"--bind {config.bind[0]}:{config.bind[1]}",
                       fix="use a free port and an address of this namespace") from exc


def _load_estimator(config: ReceiverConfig) -> ReceiverEstimator | None:
    """The estimator, saying what is loading; a plugin keeps its folder as the cwd."""
    kind, _, argument = config.estimator.partition(":")
    doing = f"loading plugin {argument}" if kind == "plugin" else (
        f"starting estimator {config.estimator}")
    ready.starting(config.log_dir, doing)
    return make_estimator(config.estimator, budget_s=config.plugin_budget_s,
                          stay_in_folder=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stop = StopSignals()
    receiver: RtcReceiver | None = None
    try:
        log_dir = prepare_log_dir(args.log_dir)
        config = ReceiverConfig(bind=args.bind, duration_s=args.duration,
                                estimator=args.estimator, poll_interval_s=args.poll_interval,
                                feedback_interval_s=args.feedback_interval, peer=args.peer,
                                log_dir=log_dir.resolve() if log_dir is not None else None,
                                plugin_budget_s=args.plugin_budget,
                                record=Path(args.record).resolve() if args.record else None)
        with _open_socket(config) as sock:
            started = time.perf_counter()
            estimator = _load_estimator(config)
            receiver = RtcReceiver(config, sock, estimator, stop)
            receiver.ready_note = (f"estimator {config.estimator} loaded in "
                                   f"{time.perf_counter() - started:.3f} s")
            reason = receiver.run()
    except RtcError as exc:
        detail = plugin_traceback(exc) if isinstance(exc, PluginError) else ""
        if detail:
            print(detail, file=sys.stderr, end="")
        print(f"receiver_app: error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop.close()
    assert receiver is not None
    print(f"receiver_app: stopped ({reason}); received {receiver.counters.packets_received} "
          "packets", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
