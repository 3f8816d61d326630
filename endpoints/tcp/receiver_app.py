"""TCP receiver process: reads everything it is sent and logs the bytes read
per 10 ms bin of CLOCK_MONOTONIC.

    python -m endpoints.tcp.receiver_app --bind HOST:PORT --log-dir DIR --duration S

It accepts any number of connections (their bytes are summed), stops when
the duration ends, on SIGTERM/SIGINT, or once every connection it accepted
has closed (unless ``--keep-listening``). ``--bind HOST:0`` picks a free
port; the port chosen is in ``receiver.json`` (``bind_port``) as soon as the
receiver listens, and ``ready.json`` (:mod:`endpoints.ready`) says it is
ready. Log formats: :mod:`endpoints.tcp.logs`.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from endpoints import ready
from endpoints.tcp import logs
from endpoints.tcp.common import StopFlag, parse_host_port
from endpoints.tcp.errors import TcpEndpointError
from endpoints.tcp.modes import parse_seconds

READ_BYTES: Final = 256 * 1024
#: Reads per connection per wake-up before the loop looks at its clocks
#: again, so a fast sender cannot starve bin and live bookkeeping.
MAX_READS_PER_WAKE: Final = 64
_NS: Final = 1_000_000_000


@dataclass(frozen=True)
class ReceiverConfig:
    host: str
    port: int
    family: socket.AddressFamily
    duration_s: float
    log_dir: Path
    keep_listening: bool = False


class BinCounter:
    """Bytes per fixed 10 ms bin on the monotonic grid, written contiguously."""

    def __init__(self, log: logs.RecordLog, start_ns: int) -> None:
        self.log = log
        self.bin_start = start_ns - start_ns % logs.BIN_NS
        self.bytes = 0

    def roll(self, now_ns: int) -> None:
        """Close every bin that ended before ``now_ns`` (empty ones included)."""
        while now_ns >= self.bin_start + logs.BIN_NS:
            self.log.append((self.bin_start, self.bytes))
            self.bin_start += logs.BIN_NS
            self.bytes = 0

    def add(self, now_ns: int, nbytes: int) -> None:
        self.roll(now_ns)
        self.bytes += nbytes

    def close(self, now_ns: int) -> None:
        """Write the bins up to ``now_ns``, the last (partial) one included."""
        self.roll(now_ns)
        self.log.append((self.bin_start, self.bytes))


class TcpReceiver:
    def __init__(self, config: ReceiverConfig, stop: StopFlag) -> None:
        self.config = config
        self.stop = stop
        self.total_bytes = 0
        self.connections: list[str] = []
        self._buffer = bytearray(READ_BYTES)

    def run(self) -> int:
        config = self.config
        config.log_dir.mkdir(parents=True, exist_ok=True)
        ready.starting(config.log_dir, f"listening on {config.host}:{config.port}")
        listener = socket.socket(config.family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((config.host, config.port))
            listener.listen(16)
        except OSError as exc:
            listener.close()
            raise TcpEndpointError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror}",
                where="--bind", fix="use an address of this host (namespace) and a free port, "
                                    "or port 0 to pick one") from exc
        listener.setblocking(False)
        start_ns = time.monotonic_ns()
        bins_log = logs.RecordLog(config.log_dir / logs.RECV_BINS_FILE, logs.RECV_BIN_DTYPE)
        live = logs.LiveLog(config.log_dir / logs.LIVE_FILE)
        meta: dict[str, Any] = {
            "format": logs.RECEIVER_FORMAT, "role": "receiver", "pid": os.getpid(),
            "bind": f"{config.host}:{config.port}", "bind_port": listener.getsockname()[1],
            "duration_s": config.duration_s, "clock": "CLOCK_MONOTONIC",
            "start_ns": start_ns, "wall_start": time.time(), "bin_ns": logs.BIN_NS,
            "end_ns": None, "end_reason": None,
        }
        logs.write_meta(config.log_dir / logs.RECEIVER_META_FILE, meta)
        ready.ready(config.log_dir, f"listening on {config.host}:{meta['bind_port']}")
        bins = BinCounter(bins_log, start_ns)
        open_conns: dict[int, socket.socket] = {}
        end_reason = "error"
        try:
            end_reason = self._loop(listener, open_conns, bins, bins_log, live, start_ns)
        finally:
            end_ns = time.monotonic_ns()
            bins.close(end_ns)
            bins_log.close()
            live.close()
            for conn in open_conns.values():
                conn.close()
            listener.close()
            meta.update(end_ns=end_ns, end_reason=end_reason, bytes=self.total_bytes,
                        connections=self.connections, bins=bins_log.records_written)
            logs.write_meta(config.log_dir / logs.RECEIVER_META_FILE, meta)
        return 0

    def _loop(self, listener: socket.socket, conns: dict[int, socket.socket], bins: BinCounter,
              bins_log: logs.RecordLog, live: logs.LiveLog, start_ns: int) -> str:
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        end_ns = start_ns + round(self.config.duration_s * _NS)
        next_live = start_ns + logs.LIVE_INTERVAL_NS
        live_bytes = 0
        last_live = start_ns
        while True:
            now = time.monotonic_ns()
            if self.stop.is_set:
                return "sigterm"
            if now >= end_ns:
                return "duration"
            if self.connections and not conns and not self.config.keep_listening:
                return "peer_closed"
            bins.roll(now)
            if now >= next_live:
                rate = (self.total_bytes - live_bytes) * 8 * _NS / max(1, now - last_live)
                live.write({"time": now / _NS, "t_s": round((now - start_ns) / _NS, 3),
                            "role": "receiver", "rate_bps": rate, "srtt_ms": None,
                            "cwnd": None, "retrans": None})
                live_bytes, last_live = self.total_bytes, now
                bins_log.flush()
                while next_live <= now:
                    next_live += logs.LIVE_INTERVAL_NS
            wake = min(next_live, end_ns)
            for fd, _events in poller.poll(max(0.0, (wake - now) / 1e6)):
                if fd == listener.fileno():
                    self._accept(listener, conns, poller)
                else:
                    self._read(conns, fd, poller, bins)

    def _accept(self, listener: socket.socket, conns: dict[int, socket.socket],
                poller: select.poll) -> None:
        while True:
            try:
                conn, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            conns[conn.fileno()] = conn
            poller.register(conn, select.POLLIN)
            self.connections.append(f"{peer[0]}:{peer[1]}")

    def _read(self, conns: dict[int, socket.socket], fd: int, poller: select.poll,
              bins: BinCounter) -> None:
        conn = conns[fd]
        for _ in range(MAX_READS_PER_WAKE):
            try:
                got = conn.recv_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionResetError:
                got = 0
            if got == 0:
                poller.unregister(fd)
                del conns[fd]
                conn.close()
                return
            self.total_bytes += got
            bins.add(time.monotonic_ns(), got)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m endpoints.tcp.receiver_app",
        description="TCP receiver logging bytes read per 10 ms bin.")
    parser.add_argument("--bind", required=True, help="HOST:PORT to listen on (port 0: any)")
    parser.add_argument("--log-dir", required=True, type=Path, help="directory for the logs")
    parser.add_argument("--duration", required=True, help="seconds to run at most")
    parser.add_argument("--keep-listening", action="store_true",
                        help="do not stop when the connections close; run the whole duration")
    return parser


def config_from_args(args: argparse.Namespace) -> ReceiverConfig:
    host, port_text = args.bind.rsplit(":", 1) if ":" in args.bind else (args.bind, "")
    if port_text == "0":
        host = host[1:-1] if host.startswith("[") else host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        port = 0
    else:
        host, port, family = parse_host_port(args.bind, where="--bind")
    duration = parse_seconds(args.duration, where="--duration")
    if duration <= 0:
        raise TcpEndpointError(f"duration {args.duration!r} is not positive",
                               where="--duration", fix="give seconds above zero")
    return ReceiverConfig(host=host, port=port, family=family, duration_s=duration,
                          log_dir=args.log_dir, keep_listening=args.keep_listening)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = StopFlag()
    stop.install()
    try:
        return TcpReceiver(config_from_args(args), stop).run()
    except TcpEndpointError as exc:
        print(f"receiver_app: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
