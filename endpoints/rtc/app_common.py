"""What the sender and receiver processes share: argument parsing of
addresses and rates, the UDP socket, clean stopping on SIGTERM/SIGINT, and
the run's metadata file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
from pathlib import Path
from types import FrameType
from typing import Any

_RATE_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
SOCKET_BUFFER_BYTES = 4 << 20
LOG_FLUSH_INTERVAL_NS = 1_000_000_000


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
    """A bitrate in bit/s: ``300000``, ``300k``, ``2.5M``, ``1e6``, ``2.5Mbit``."""
    cleaned = text.strip().lower().removesuffix("bps").removesuffix("bit").removesuffix("/s")
    suffix = cleaned[-1:] if cleaned[-1:] in ("k", "m", "g") else ""
    number = cleaned[:len(cleaned) - len(suffix)]
    try:
        value = float(number) * _RATE_SUFFIXES[suffix]
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"bad rate {text!r}; fix: a positive bitrate such as 300000, 300k or 2.5M (bit/s)")
    return value


def parse_duration(text: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}; fix: seconds > 0, e.g. 30")
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
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(meta, indent=1, default=str) + "\n")
    os.replace(temporary, path)


def prepare_log_dir(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    path.mkdir(parents=True, exist_ok=True)
    return path
