"""UDP echo between lab hosts, measured from one process.

Sockets are opened inside each host's namespace and then driven from this
process, so one monotonic clock timestamps both the request and the reply.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass

from netlab.lab import netns

ECHO_PORT = 7  # RFC 862 echo, inside the lab's own namespaces only
_PROBE = struct.Struct("!IQ")  # sequence, send time (ns)


@dataclass(frozen=True)
class EchoResult:
    sent: int
    received: int
    rtts_s: tuple[float, ...]

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 0.0


class EchoServers:
    """An echo responder in each given namespace, served by one thread."""

    def __init__(self, namespaces: list[str], port: int = ECHO_PORT) -> None:
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        for namespace in namespaces:
            sock = netns.call_inside(namespace, lambda: socket.socket(socket.AF_INET,
                                                                      socket.SOCK_DGRAM))
            sock.bind(("0.0.0.0", port))
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
            self._sockets.append(sock)
        self._thread = threading.Thread(target=self._serve, name="echo", daemon=True)

    def __enter__(self) -> EchoServers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._selector.close()
        for sock in self._sockets:
            sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    while True:
                        data, peer = sock.recvfrom(65536)
                        sock.sendto(data, peer)
                except BlockingIOError:
                    continue


def ping(namespace: str, target: str, *, count: int = 20, interval_s: float = 0.01,
         timeout_s: float = 1.0, port: int = ECHO_PORT, size: int | None = None) -> EchoResult:
    """Send ``count`` echo requests from ``namespace`` and time the replies;
    ``size``: IP packet bytes of each request (20 IP + 8 UDP header bytes
    included), at least the 12 bytes of sequence and time."""
    padding = b"\0" * max(0, (size or 0) - 28 - _PROBE.size)
    sock = netns.call_inside(namespace, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        sock.settimeout(timeout_s)
        rtts: list[float] = []
        for seq in range(count):
            sock.sendto(_PROBE.pack(seq, time.monotonic_ns()) + padding, (target, port))
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except (TimeoutError, ConnectionRefusedError):
                    break
                now = time.monotonic_ns()
                got_seq, sent_ns = _PROBE.unpack_from(data)
                if got_seq == seq:
                    rtts.append((now - sent_ns) / 1e9)
                    break
            time.sleep(interval_s)
        return EchoResult(count, len(rtts), tuple(rtts))
    finally:
        sock.close()
