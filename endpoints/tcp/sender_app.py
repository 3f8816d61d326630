"""TCP sender process: bulk or application-limited, any kernel congestion
control, TCP_INFO every 10 ms, optional externally driven pacing rate.

    python -m endpoints.tcp.sender_app --dest HOST:PORT --cc bbr \
        --mode bulk|rate:5Mbit|onoff:ON_S,OFF_S[,RATE] --duration S \
        --log-dir DIR [--pacing-control UNIX_SOCKET_PATH | --policy AGENT_SOCKET?...]

One thread, one ``select()`` loop: the socket is non-blocking, and the loop
wakes for whichever comes first of the next TCP_INFO deadline (a fixed
10 ms grid from the start on CLOCK_MONOTONIC, so sampling does not drift),
the next live-view line (250 ms), the token bucket allowing another write,
an on/off switch, a pacing command, a policy step, or room in the socket
buffer. With ``--policy`` the host's agent sets the pacing rate every
monitor interval (:mod:`endpoints.agent_tcp`). Log formats:
:mod:`endpoints.tcp.logs`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from endpoints.agent_tcp import PolicyRateController, RateChange, parse_policy_option
from endpoints.ready import ready_then_start_instant
from endpoints.tcp import logs
from endpoints.tcp.common import StopFlag, available_congestion_controls, parse_host_port
from endpoints.tcp.errors import TcpEndpointError
from endpoints.tcp.modes import SendMode, TokenBucket, parse_mode, parse_seconds
from endpoints.tcp.pacing import UNLIMITED, PacingControl, set_max_pacing_rate
from endpoints.tcp.tcp_info import (
    KERNEL_FIELD_NAMES,
    TCP_CONGESTION,
    TCP_INFO,
    TCP_INFO_REQUEST_LEN,
    read_tcp_info_raw,
    unpack_tcp_info,
)
from labcore.startgate import sleep_until_ns

CHUNK_BYTES: Final = 128 * 1024
CONNECT_RETRY_S: Final = 0.05
_NS: Final = 1_000_000_000

_APP_LIMITED_INDEX: Final = KERNEL_FIELD_NAMES.index("flags7")
_RTT_INDEX: Final = KERNEL_FIELD_NAMES.index("rtt_us")
_CWND_INDEX: Final = KERNEL_FIELD_NAMES.index("snd_cwnd")
_RETRANS_INDEX: Final = KERNEL_FIELD_NAMES.index("total_retrans")
_ACKED_INDEX: Final = KERNEL_FIELD_NAMES.index("bytes_acked")


@dataclass(frozen=True)
class SenderConfig:
    host: str
    port: int
    family: socket.AddressFamily
    cc: str
    mode: SendMode
    duration_s: float
    log_dir: Path
    pacing_control: Path | None = None
    connect_timeout_s: float = 5.0
    policy: str | None = None  # endpoints.agent_tcp option: SOCKET?deadline=...
    wait_start: bool = False  # ready.json, then the start instant on stdin (--wait-start)


def open_connection(config: SenderConfig, stop: StopFlag) -> tuple[socket.socket, str]:
    """Connect with ``config.cc`` set before the SYN, retrying while the
    receiver is not listening yet. Returns the socket and the congestion
    control the kernel reports for it."""
    deadline = time.monotonic() + config.connect_timeout_s
    where = f"--dest {config.host}:{config.port}"
    while True:
        sock = socket.socket(config.family, socket.SOCK_STREAM)
        try:
            set_congestion_control(sock, config.cc)
        except TcpEndpointError:
            sock.close()
            raise
        try:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.connect((config.host, config.port))
        except OSError as exc:
            sock.close()
            retryable = isinstance(exc, ConnectionRefusedError | TimeoutError) or (
                exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH))
            if not retryable or time.monotonic() >= deadline or stop.is_set:
                raise TcpEndpointError(
                    f"cannot connect to the receiver: {exc}", where=where,
                    fix="start the receiver first (python -m endpoints.tcp.receiver_app "
                        "--bind ...) and check the address and route") from exc
            time.sleep(CONNECT_RETRY_S)
            continue
        effective = sock.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16)
        return sock, effective.split(b"\0", 1)[0].decode("ascii")


def set_congestion_control(sock: socket.socket, cc: str) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, cc.encode("ascii"))
    except OSError as exc:
        available = available_congestion_controls()
        raise TcpEndpointError(
            f"the kernel refuses congestion control {cc!r} ({exc.strerror})", where="--cc",
            fix=f"use one of {' '.join(available) or '(none listed)'} "
                f"(tcp_available_congestion_control) or load it: modprobe tcp_{cc}") from exc


class TcpSender:
    """The sending loop and its logs (see the module docstring)."""

    def __init__(self, config: SenderConfig, stop: StopFlag) -> None:
        self.config = config
        self.stop = stop
        self.app_bytes = 0
        self.missed_samples = 0
        self.pacing_commands = 0
        self._last_sample: tuple[int, ...] | None = None
        self._live_prev: tuple[int, int] | None = None  # (t_ns, bytes_acked)
        self._chunk = memoryview(bytes(CHUNK_BYTES))
        self.policy: PolicyRateController | None = None

    def run(self) -> int:
        config = self.config
        config.log_dir.mkdir(parents=True, exist_ok=True)
        control = PacingControl(config.pacing_control) if config.pacing_control else None
        start_at_ns = None
        try:
            if config.wait_start:  # connect at the flow's start, as an application would
                start_at_ns = ready_then_start_instant(
                    config.log_dir, "waiting for the run's start", lambda: self.stop.is_set)
                if start_at_ns is None:
                    print("sender_app: stopped before its start", file=sys.stderr)
                    if control is not None:
                        control.close()
                    return 0
                sleep_until_ns(start_at_ns)
            sock, effective_cc = open_connection(config, self.stop)
            if config.policy is not None:
                self.policy = PolicyRateController.connect(config.policy, config.log_dir)
        except BaseException:
            if control is not None:
                control.close()
            raise
        info_log = logs.RecordLog(config.log_dir / logs.TCP_INFO_FILE, logs.TCP_INFO_DTYPE)
        pacing_log = logs.RecordLog(config.log_dir / logs.PACING_FILE, logs.PACING_DTYPE)
        live = logs.LiveLog(config.log_dir / logs.LIVE_FILE)
        start_ns = time.monotonic_ns()
        meta: dict[str, Any] = {
            "format": logs.SENDER_FORMAT, "role": "sender", "pid": os.getpid(),
            "dest": f"{config.host}:{config.port}",
            "local": "{}:{}".format(*sock.getsockname()[:2]),
            "cc": config.cc, "cc_effective": effective_cc, "mode": config.mode.describe(),
            "duration_s": config.duration_s,
            "pacing_control": str(config.pacing_control) if config.pacing_control else None,
            "policy": config.policy,
            "clock": "CLOCK_MONOTONIC", "start_ns": start_ns, "start_at_ns": start_at_ns,
            "started_ns": start_ns,  # connected: its start, as the RTC sender's
            "wall_start": time.time(),
            "sample_interval_ns": logs.SAMPLE_INTERVAL_NS,
            "tcp_info_len": len(sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO,
                                                TCP_INFO_REQUEST_LEN)),
            "end_ns": None, "end_reason": None,
        }
        logs.write_meta(config.log_dir / logs.SENDER_META_FILE, meta)
        end_reason = "error"
        try:
            end_reason = self._loop(sock, control, info_log, pacing_log, live, start_ns)
        finally:
            end_ns = time.monotonic_ns()
            with contextlib.suppress(OSError):  # the socket may already be dead
                self._sample(sock, info_log, end_ns, end_ns)
                if control is not None or self.policy is not None:
                    # Lift the limit so the unsent tail (and the FIN behind it)
                    # is not drained at a crawl after this process is gone.
                    set_max_pacing_rate(sock, UNLIMITED)
            sock.close()
            for log in (info_log, pacing_log):
                log.close()
            live.close()
            if control is not None:
                meta["bad_pacing_commands"] = control.bad_commands
                control.close()
            if self.policy is not None:
                self.policy.close()
                meta["policy_steps"] = self.policy.policy_steps
                meta["policy_fallback_steps"] = self.policy.fallback_steps
            meta.update(end_ns=end_ns, end_reason=end_reason, app_bytes=self.app_bytes,
                        samples=info_log.records_written, missed_samples=self.missed_samples,
                        pacing_commands=self.pacing_commands)
            logs.write_meta(config.log_dir / logs.SENDER_META_FILE, meta)
        return 0

    def _loop(self, sock: socket.socket, control: PacingControl | None,
              info_log: logs.RecordLog, pacing_log: logs.RecordLog, live: logs.LiveLog,
              start_ns: int) -> str:
        mode = self.config.mode
        sock.setblocking(False)
        # select(), not poll(): its timeout has µs resolution (poll's is ms,
        # rounded up), which keeps TCP_INFO samples within ~0.1 ms of the grid.
        read_set: list[Any] = [sock] if control is None else [sock, control.sock]
        bucket = TokenBucket(mode.rate_bps, start_ns) if mode.rate_bps is not None else None
        end_ns = start_ns + round(self.config.duration_s * _NS)
        next_sample = start_ns
        next_live = start_ns + logs.LIVE_INTERVAL_NS
        policy = self.policy
        if policy is not None:
            self._log_rate(pacing_log, policy.begin(sock, start_ns))
        was_on = True
        writable = True  # until a send says otherwise
        while True:
            now = time.monotonic_ns()
            if self.stop.is_set:
                return "sigterm"
            if now >= end_ns:
                return "duration"
            if now >= next_sample:
                self._sample(sock, info_log, now, next_sample)
                next_sample, missed = _advance(next_sample, logs.SAMPLE_INTERVAL_NS, now)
                self.missed_samples += missed
            if policy is not None and now >= policy.next_step_ns:
                self._log_rate(pacing_log, policy.step(sock, now))
            if now >= next_live:
                self._live(live, now, start_ns)
                info_log.flush()
                pacing_log.flush()
                if policy is not None:
                    policy.flush()
                next_live, _ = _advance(next_live, logs.LIVE_INTERVAL_NS, now)

            elapsed = now - start_ns
            is_on = mode.is_on(elapsed)
            wake = min(next_sample, next_live, end_ns)
            if policy is not None:
                wake = min(wake, policy.next_step_ns)
            switch = mode.next_switch_ns(elapsed)
            if switch is not None:
                wake = min(wake, start_ns + switch)
            allowance = 0
            if is_on:
                if bucket is None:
                    allowance = CHUNK_BYTES
                else:
                    if not was_on:
                        bucket.reset(now)
                    bucket.refill(now)
                    allowance = min(bucket.allowance(), CHUNK_BYTES)
                    if allowance == 0:
                        wake = min(wake, now + bucket.wait_ns())
            was_on = is_on

            timeout_s = 0.0 if (allowance and writable) else max(0.0, (wake - now) / 1e9)
            readable, ready, _ = select.select(
                read_set, [sock] if allowance and not writable else [], [], timeout_s)
            if control is not None and control.sock in readable:
                self._apply_pacing(control, sock, pacing_log)
            if sock in readable and _peer_closed(sock):
                return "peer_closed"
            if ready:
                writable = True
            if allowance and writable:
                try:
                    sent = sock.send(self._chunk[:allowance])
                except (BlockingIOError, InterruptedError):
                    writable = False
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    return "peer_closed"
                self.app_bytes += sent
                if bucket is not None:
                    bucket.consume(sent)

    def _apply_pacing(self, control: PacingControl, sock: socket.socket,
                      pacing_log: logs.RecordLog) -> None:
        applied = control.apply_pending(sock)
        if applied is not None:
            self.pacing_commands += 1
            pacing_log.append((applied.t_recv_ns, applied.t_applied_ns, applied.requested_Bps,
                               applied.applied_Bps))

    def _log_rate(self, pacing_log: logs.RecordLog, change: RateChange | None) -> None:
        if change is not None:
            self.pacing_commands += 1
            pacing_log.append((change.t_sent_ns, change.t_applied_ns, change.requested_Bps,
                               change.applied_Bps))

    def _sample(self, sock: socket.socket, info_log: logs.RecordLog, now: int,
                deadline: int) -> None:
        values = list(unpack_tcp_info(read_tcp_info_raw(sock)))
        values[_APP_LIMITED_INDEX] &= 1
        self._last_sample = tuple(values)
        info_log.append((now, deadline, self.app_bytes, *values))
        if self.policy is not None:
            self.policy.on_sample(now, values)

    def _live(self, live: logs.LiveLog, now: int, start_ns: int) -> None:
        sample = self._last_sample
        if sample is None:
            return
        acked = sample[_ACKED_INDEX]
        rate_bps = None
        if self._live_prev is not None and now > self._live_prev[0]:
            rate_bps = (acked - self._live_prev[1]) * 8 * _NS / (now - self._live_prev[0])
        self._live_prev = (now, acked)
        live.write({"time": now / _NS, "t_s": round((now - start_ns) / _NS, 3),
                    "role": "sender", "rate_bps": rate_bps,
                    "srtt_ms": sample[_RTT_INDEX] / 1000.0, "cwnd": sample[_CWND_INDEX],
                    "retrans": sample[_RETRANS_INDEX]})


def _peer_closed(sock: socket.socket) -> bool:
    """The receiver never sends data, so a readable socket means EOF or an error."""
    try:
        return sock.recv(4096) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _advance(deadline: int, interval: int, now: int) -> tuple[int, int]:
    """The next grid point after ``now`` and how many were skipped (the
    grid stays fixed: a late wake-up does not shift later deadlines)."""
    nxt = deadline + interval
    if nxt > now:
        return nxt, 0
    skipped = (now - nxt) // interval + 1
    return nxt + skipped * interval, skipped


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m endpoints.tcp.sender_app",
        description="Kernel TCP sender with TCP_INFO logging every 10 ms.")
    parser.add_argument("--dest", required=True, help="receiver HOST:PORT")
    parser.add_argument("--cc", default="cubic",
                        help="congestion control (any in tcp_available_congestion_control)")
    parser.add_argument("--mode", default="bulk",
                        help="bulk | rate:RATE (e.g. rate:5Mbit) | onoff:ON_S,OFF_S[,RATE]")
    parser.add_argument("--duration", required=True, help="seconds to send (e.g. 30 or 30s)")
    parser.add_argument("--log-dir", required=True, type=Path, help="directory for the logs")
    parser.add_argument("--pacing-control", type=Path, default=None,
                        help="Unix datagram socket path for 8-byte rate commands "
                             "(little-endian u64 bytes/s) applied as SO_MAX_PACING_RATE")
    parser.add_argument("--policy", default=None, metavar="SOCKET?OPTIONS",
                        help="let the host's policy agent set the pacing rate every monitor "
                             "interval: SOCKET?deadline=1ms&fallback=keep|kernel&"
                             "interval=100ms[&flow=N&start=RATE&min=RATE&max=RATE]")
    parser.add_argument("--connect-timeout", default="5",
                        help="seconds to keep retrying while the receiver is not up")
    parser.add_argument("--wait-start", action="store_true",
                        help="write ready.json to --log-dir, wait for 'start NS' on stdin "
                             "(CLOCK_MONOTONIC ns), connect at NS: how netlab starts every "
                             "flow on the run's one time zero")
    return parser


def config_from_args(args: argparse.Namespace) -> SenderConfig:
    host, port, family = parse_host_port(args.dest, where="--dest")
    duration = parse_seconds(args.duration, where="--duration")
    if duration <= 0:
        raise TcpEndpointError(f"duration {args.duration!r} is not positive",
                               where="--duration", fix="give seconds above zero")
    if args.policy is not None:
        if args.pacing_control is not None:
            raise TcpEndpointError("--policy and --pacing-control both set the pacing rate",
                                   where="--policy", fix="give one of them")
        parse_policy_option(args.policy)  # report a bad option before connecting
    return SenderConfig(host=host, port=port, family=family, cc=args.cc,
                        mode=parse_mode(args.mode), duration_s=duration, log_dir=args.log_dir,
                        pacing_control=args.pacing_control,
                        connect_timeout_s=parse_seconds(args.connect_timeout,
                                                        where="--connect-timeout"),
                        policy=args.policy, wait_start=args.wait_start)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = StopFlag()
    stop.install()
    try:
        return TcpSender(config_from_args(args), stop).run()
    except TcpEndpointError as exc:
        print(f"sender_app: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
