"""What the sender and receiver processes share: argument parsing of
addresses and rates, the UDP socket, clean stopping on SIGTERM/SIGINT, and
the run's metadata file.
"""

from __future__ import annotations

import argparse
import signal
import socket
from pathlib import Path
from types import FrameType
from typing import Any

from labcore import units
from labcore.jsonfile import write_json_atomic

SOCKET_BUFFER_BYTES = 4 << 20
LOG_FLUSH_INTERVAL_NS = 1_000_000_000
_rate_option = units.option(units.parse_rate, bare="bit")
_duration_option = units.option(units.parse_duration, bare="s")


def parse_address(text: str, *, default_host: str | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6); ``:PORT`` or ``PORT`` if a default host is given."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]")
    if not host:
        if default_host is None:
            raise argparse.ArgumentTypeError(
                f"{text!r} has no host; fix: write HOST:PORT, e.g. 10.0.0.2:5004")
        host = default_host
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 0xFFFF:
        raise argparse.ArgumentTypeError(
            f"{text!r}: port must be 0..65535; fix: write HOST:PORT, e.g. 10.0.0.2:5004")
    return host, port


def parse_rate(text: str) -> float:
    """A bitrate in bit/s in the one unit grammar (:mod:`labcore.units`): ``2.5Mbit``,
    ``300kbps``; a bare number (``300000``) is bit/s."""
    return float(_rate_option(text))


def parse_seconds(text: str) -> float:
    """Seconds >= 0 in the one unit grammar: ``30``, ``30s``, ``500ms``."""
    return _duration_option(text)


def parse_duration(text: str) -> float:
    """Seconds > 0 in the one unit grammar: ``30``, ``30s``, ``500ms``."""
    value = _duration_option(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}; fix: a duration > 0, e.g. 30s")
    return value


def open_udp_socket(bind: tuple[str, int]) -> socket.socket:
    """One non-blocking UDP socket for RTP and RTCP together (RFC 5761 multiplexing)."""
    family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
    sock.bind(bind)
    sock.setblocking(False)
    return sock


class StopSignals:
    """SIGTERM/SIGINT end the event loop at once: the signal number is written to a
    socket the loop waits on (``signal.set_wakeup_fd``), so a wait never outlasts it."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)
        self.received: str | None = None
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name

    def drain(self) -> None:
        try:
            while self.reader.recv(64):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self.reader.close()
        self._writer.close()


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Atomically (re)write the run's metadata JSON."""
    write_json_atomic(path, meta, indent=1, default=str, trailing_newline=True)


def prepare_log_dir(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    path.mkdir(parents=True, exist_ok=True)
    return path
