"""Pieces both TCP endpoint processes need: address parsing, the stop flag
set by SIGTERM/SIGINT, and the kernel's list of congestion controls."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from types import FrameType
from typing import Final

from endpoints.tcp.errors import TcpEndpointError

AVAILABLE_CC_PATH: Final = Path("/proc/sys/net/ipv4/tcp_available_congestion_control")


def parse_host_port(text: str, *, where: str) -> tuple[str, int, socket.AddressFamily]:
    """``"10.0.0.2:5201"`` or ``"[fd00::2]:5201"`` -> (host, port, family)."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TcpEndpointError(f"cannot read address {text!r}", where=where,
                               fix="write HOST:PORT, e.g. 10.0.0.2:5201 or [fd00::2]:5201")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return host, int(port_text), family


def available_congestion_controls() -> list[str]:
    """What ``tcp_available_congestion_control`` lists (empty if unreadable)."""
    try:
        return AVAILABLE_CC_PATH.read_text(encoding="ascii").split()
    except OSError:
        return []


class StopFlag:
    """Set by SIGTERM or SIGINT. The endpoints' loops wake at least every
    10 ms, so they notice it within one sampling interval and then flush
    their logs on the normal exit path."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name

    @property
    def is_set(self) -> bool:
        return self.signal_name is not None
